"""build_corpus: files on disk, manifest consistent with the arrays, deterministic builds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from transcoder_lab.organism.build import build_corpus, corpus_hash, heldout_seed
from transcoder_lab.organism.corpus import labels as corpus_labels
from transcoder_lab.paths import corpus_dir
from transcoder_lab.sources.tokens import load_tokenizer, two_digit_token_ids

from helpers.small_corpus import small_cfg

BUILD = dict(n_train_documents=200, n_heldout_documents=20)  # smaller than the shared config: faster
NAMES = corpus_labels(small_cfg())
FILES = {"tokenizer.json", "train.safetensors", "heldout.safetensors", "labels.json", "manifest.json"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("corpus")
    return out, build_corpus(small_cfg(**BUILD), out)


def test_writes_all_files_and_nothing_else(built) -> None:
    out, _ = built
    assert {p.name for p in out.iterdir()} == FILES  # no temporary files left behind


def test_manifest_matches_the_arrays(built) -> None:
    out, manifest = built
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert json.loads((out / "labels.json").read_text()) == list(NAMES) == manifest["labels"]
    cfg = small_cfg(**BUILD)
    expected_docs = {"train": cfg.n_train_documents, "heldout": cfg.n_heldout_documents}
    for split, n_docs in expected_docs.items():
        arrays = load_file(str(out / f"{split}.safetensors"))
        tokens, labels, offsets = arrays["tokens"], arrays["labels"], arrays["doc_offsets"]
        entry = manifest["splits"][split]
        assert tokens.dtype == np.int32 and labels.dtype == np.uint8 and offsets.dtype == np.int64
        assert entry["n_documents"] == n_docs == len(offsets) - 1
        assert entry["n_tokens"] == len(tokens) == len(labels) == offsets[-1]
        assert offsets[0] == 0 and np.all(np.diff(offsets) > 0)
        assert entry["sha256"] == corpus_hash(tokens, labels)
        counts = np.bincount(labels, minlength=len(NAMES))
        assert entry["label_counts"] == {name: int(c) for name, c in zip(NAMES, counts, strict=True)}
        assert tokens.min() >= 0 and tokens.max() < manifest["vocab_size"]
    assert manifest["splits"]["heldout"]["seed"] == heldout_seed(cfg) != cfg.seed
    assert manifest["config"]["n_train_documents"] == cfg.n_train_documents


def test_tokenizer_file_loads_and_decodes_the_corpus(built) -> None:
    out, manifest = built
    tok = load_tokenizer(out / "tokenizer.json")
    assert len(tok) == manifest["vocab_size"] <= small_cfg(**BUILD).vocab_size
    assert len(two_digit_token_ids(tok)) == 100
    arrays = load_file(str(out / "train.safetensors"))
    first_doc = arrays["tokens"][: arrays["doc_offsets"][1]]
    text = tok.decode(first_doc.tolist())
    assert text.endswith(".") and not text.startswith(" ")


def test_build_is_deterministic(built, tmp_path) -> None:
    out, manifest = built
    again = build_corpus(small_cfg(**BUILD), tmp_path / "again")
    assert again == manifest
    for name in FILES:
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name


def test_another_seed_gives_another_corpus(built, tmp_path) -> None:
    _, manifest = built
    other = build_corpus(small_cfg(seed=1, n_train_documents=50, n_heldout_documents=5), tmp_path)
    assert other["splits"]["train"]["sha256"] != manifest["splits"]["train"]["sha256"]
    assert other["splits"]["heldout"]["sha256"] != manifest["splits"]["heldout"]["sha256"]


# MD5 of each file of the tiny profile's corpus (what DVC hashes), recorded when the corpus module
# was split into mechanisms: the generator must keep writing exactly this corpus for this config.
TINY_CORPUS_MD5 = {
    "heldout.safetensors": "ef8a6f2eb3397874f345559f96aae1c5",
    "labels.json": "7e229c6accaf369cf1bc7d13873146dd",
    "manifest.json": "dee16e8df5d5b0abb683acd621cb93b9",
    "tokenizer.json": "7693e33102cbbca7cebb5399cc9abc5a",
    "train.safetensors": "1e109530f088705ed90ab7b0b84d611d",
}


def test_the_tiny_profile_corpus_is_byte_identical_to_the_pinned_one(tiny_pipeline) -> None:
    cfg, _ = tiny_pipeline
    files = sorted(corpus_dir(cfg).iterdir())
    assert {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in files} == TINY_CORPUS_MD5
