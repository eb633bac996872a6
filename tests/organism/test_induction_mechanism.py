"""Adding a planted mechanism is one module plus its share: the worked example (induction_mechanism.py)
planted in the tiny profile, through the corpus, organism and behaviour stages."""

from __future__ import annotations

import json
import os
import re

import pytest
from induction_mechanism import FIRST, MECHANISM, OTHER, REPEAT

from transcoder_lab.config import load_profile
from transcoder_lab.data import load_split
from transcoder_lab.organism import corpus as C
from transcoder_lab.paths import corpus_dir, results_dir
from transcoder_lab.stage import load_stage

SHARE = "+profile.corpus.shares.induction_mechanism=0.2"


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The tiny profile with the example mechanism planted, after corpus, organism and behaviour."""
    root = tmp_path_factory.mktemp("induction")
    cfg = load_profile("tiny", root, [SHARE])
    cwd = os.getcwd()
    os.chdir(root)  # checkpoints/ is relative to the working directory
    try:
        for stage in ("corpus", "organism", "behaviour"):
            load_stage(stage).run(cfg)
    finally:
        os.chdir(cwd)
    return cfg


def manifest_vocab(cfg) -> int:
    return json.loads((corpus_dir(cfg) / "manifest.json").read_text())["vocab_size"]


def test_sentences_repeat_their_words_under_their_own_labels(planted) -> None:
    corpus = planted.profile.corpus
    names = C.labels(corpus)
    assert names[-3:] == MECHANISM.labels  # appended after the built-in mechanisms' labels
    documents = C.generate_documents(corpus, 200, seed=5)
    n_sentences = 0
    for document in documents:
        C.check_document(document, len(names))
        spans = [(document.text[s:e], names[label]) for s, e, label in document.spans]
        for i, (text, label) in enumerate(spans):
            if label == FIRST:
                assert spans[i - 1][0].endswith("The tag read") and spans[i - 1][1] == OTHER
                assert spans[i + 1] == (", and the copy read", OTHER) and spans[i + 2] == (text, REPEAT)
                assert re.fullmatch(r"( [a-z]+){3}", text)
                n_sentences += 1
    assert n_sentences > 50  # a fifth of ~1,600 sentences


def test_the_corpus_stage_labels_its_tokens(planted) -> None:
    manifest = json.loads((corpus_dir(planted) / "manifest.json").read_text())
    assert manifest["labels"][-3:] == list(MECHANISM.labels)
    assert manifest["config"]["share_induction_mechanism"] == 0.2
    heldout = load_split(corpus_dir(planted), "heldout")
    repeat = manifest["labels"].index(REPEAT)
    assert (heldout["labels"] == repeat).sum() > 100


def test_the_behaviour_stage_reports_its_metric(planted) -> None:
    behaviour = json.loads((results_dir(planted) / "behaviour.json").read_text())
    assert list(behaviour) == ["profile", "greater_than", "citation", "caught", "estimate", "induction"]
    induction = behaviour["induction"]
    assert induction["n_prompts"] == planted.profile.behaviour.n_prompts
    assert 0 <= induction["value"] <= 1 and induction["chance"] == pytest.approx(1 / manifest_vocab(planted))


def test_prompts_end_where_the_copy_continues(planted) -> None:
    for prompt in MECHANISM.prompts(planted.profile.corpus, seed=3, n=20):
        head, _, copy = prompt.text.partition(", and the copy read ")
        words = head.removeprefix("The tag read ").split()
        assert copy == words[0] and prompt.expected_next == " " + words[1]
