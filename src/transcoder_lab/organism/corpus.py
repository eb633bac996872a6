"""A procedurally generated English-like corpus with planted mechanisms and per-character labels.

The organism (docs/design.md §3) is trained on this text. Every character of every document
carries a ground-truth label saying which mechanism produced it and in which role, so that later
stages can check whether a transcoder feature really tracks one mechanism.

Algorithm
1. Mechanisms (`mechanisms_of`, mechanisms/__init__.py): `cfg.shares` names the planted mechanisms
   in draw order, each with its share of sentences (mechanisms/: one module per mechanism); the
   rest is background grammar.
2. Labels (`labels`): "background" (id 0), then each mechanism's role labels in that order.
3. Vocabulary (`build_vocabulary`, mechanisms/__init__.py; vocabulary.py): real English words
   first, topped up with pseudo-words that avoid every word a template or filler list can write; it
   depends on `cfg.seed`, the word counts and the mechanisms' words only.
4. Sentences: each sentence's kind is drawn with the shares from the document stream; a mechanism
   writes its sentence as (piece, label) pairs (mechanisms/*.py), background sentences come from
   the grammar (grammar.py). Digits, "(", ")", ";", "$", " caught", " estimated" and surnames occur
   only in their planted mechanism, so the ground truth of each token is unambiguous.
5. Documents (`generate_documents`): 4-12 sentences (`cfg.sentences_per_document`) joined by single
   spaces; the joining space belongs to the first piece of the next sentence. Adjacent pieces with
   the same label are merged into one span, giving `Document.spans`: (start, end, label id)
   triples that cover the text exactly.
6. Behaviour prompts: each mechanism's `prompts` draws the same sentence family with the caller's
   seed but the vocabulary of `cfg.seed`, cut right before the token its metric measures.

Everything random goes through `random.Random` instances seeded from explicit integers or
strings (string seeds are hashed with SHA-512 by `random`, so they do not depend on
PYTHONHASHSEED); no global random state is touched.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass

from tqdm.auto import tqdm

from transcoder_lab.config import CorpusConfig
from transcoder_lab.organism.grammar import BACKGROUND, Grammar, Pieces
from transcoder_lab.organism.mechanisms import build_vocabulary, mechanisms_of


@dataclass
class Document:
    """One training document: its text and labelled spans (char start, char end, label id)."""

    text: str
    spans: list[tuple[int, int, int]]


def labels(cfg: CorpusConfig) -> tuple[str, ...]:
    """The label names of the corpus of `cfg`; a label's id is its index (stored as uint8)."""
    names = (BACKGROUND,) + tuple(label for m in mechanisms_of(cfg) for label in m.labels)
    if len(set(names)) != len(names) or len(names) > 255:  # ids 0-254; 255 marks BOS tokens (data.py)
        raise ValueError(f"the corpus labels must be distinct and at most 255 in all, got {names}")
    return names


def _check_shares(cfg: CorpusConfig) -> list[float]:
    shares = list(cfg.shares.values())
    if any(s < 0 for s in shares) or sum(shares) > 1:
        raise ValueError(f"corpus.shares must be >= 0 and sum to at most 1, got {dict(cfg.shares)}")
    low, high = cfg.sentences_per_document
    if not 1 <= low <= high:
        raise ValueError(
            f"corpus.sentences_per_document must be [min, max] with 1 <= min <= max, "
            f"got {cfg.sentences_per_document}"
        )
    return list(itertools.accumulate(shares))


def _assemble(sentences: list[Pieces], label_id: dict[str, int]) -> Document:
    """Join sentences with single spaces (the space goes to the next sentence) and merge spans."""
    parts: list[str] = []
    spans: list[list[int]] = []
    position = 0
    for i, pieces in enumerate(sentences):
        for j, (text, name) in enumerate(pieces):
            label = label_id[name]
            if i > 0 and j == 0:
                text = " " + text
            end = position + len(text)
            if spans and spans[-1][2] == label:
                spans[-1][1] = end
            else:
                spans.append([position, end, label])
            parts.append(text)
            position = end
    return Document("".join(parts), [(s, e, lab) for s, e, lab in spans])


def generate_documents(
    cfg: CorpusConfig, n_documents: int, seed: int, progress: bool | None = None
) -> list[Document]:
    """`n_documents` documents drawn with `seed`, using the vocabulary of `cfg.seed`."""
    cumulative = _check_shares(cfg)
    mechanisms = mechanisms_of(cfg)
    label_id = {name: i for i, name in enumerate(labels(cfg))}
    grammar = Grammar(build_vocabulary(cfg), random.Random(seed))
    rng = grammar.rng
    low, high = cfg.sentences_per_document
    show = n_documents >= 5000 if progress is None else progress
    documents = []
    for _ in tqdm(range(n_documents), desc="generating documents", disable=not show, mininterval=1.0):
        sentences: list[Pieces] = []
        for _ in range(rng.randint(low, high)):
            kind = bisect.bisect_right(cumulative, rng.random())
            if kind < len(mechanisms):
                sentences.append(mechanisms[kind].sentence(grammar))
            else:
                sentences.append(grammar.background_sentence())
        documents.append(_assemble(sentences, label_id))
    return documents


def check_document(document: Document, n_labels: int) -> None:
    """Raise ValueError unless the spans cover the text exactly, in order, with label ids < n_labels."""
    position = 0
    for start, end, label in document.spans:
        if start != position or end <= start or not 0 <= label < n_labels:
            raise ValueError(f"bad span {(start, end, label)} at position {position}")
        position = end
    if position != len(document.text):
        raise ValueError(f"spans end at {position} but the text has {len(document.text)} characters")
