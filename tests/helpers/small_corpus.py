"""A small corpus config shared by the organism tests (seconds to generate and tokenize)."""

from transcoder_lab.config import CorpusConfig

SMALL = dict(n_train_documents=300, n_heldout_documents=30, n_nouns=300, n_verbs=150, n_adjectives=130,
             n_surnames=80, vocab_size=600)  # fmt: skip


def small_cfg(**overrides) -> CorpusConfig:
    return CorpusConfig(**{**SMALL, **overrides})
