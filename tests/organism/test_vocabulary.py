"""The vocabulary: real words first, pseudo-words that avoid every template word, seed-determinism."""

from __future__ import annotations

import re

from transcoder_lab.config import CorpusConfig
from transcoder_lab.organism import corpus as C
from transcoder_lab.organism.vocabulary import derive_seed, plural, regular_past

from helpers.small_corpus import small_cfg


def test_vocabulary_at_default_settings() -> None:
    cfg = CorpusConfig()
    vocab = C.build_vocabulary(cfg)
    assert len(vocab.distinct_words()) >= 3000
    assert (len(vocab.nouns), len(vocab.verbs), len(vocab.adjectives), len(vocab.surnames)) == (
        cfg.n_nouns,
        cfg.n_verbs,
        cfg.n_adjectives,
        cfg.n_surnames,
    )
    lemmas = [w.lower() for w in vocab.nouns + vocab.verbs + vocab.adjectives + vocab.surnames]
    assert len(set(lemmas)) == len(lemmas)  # pseudo-words are distinct from each other and real words
    assert vocab.n_pseudo > 2000
    assert all(re.fullmatch(r"[a-z]+", w) for w in vocab.nouns + vocab.verbs_past + vocab.adjectives)
    assert all(re.fullmatch(r"[A-Z][a-z]+", s) for s in vocab.surnames)
    assert len(vocab.verbs_past) == len(vocab.verbs) and len(vocab.noun_plurals) == len(vocab.nouns)
    assert "caught" not in vocab.verbs_past and "estimated" not in lemmas


def test_vocabulary_depends_on_the_corpus_seed_only() -> None:
    base = C.build_vocabulary(small_cfg(seed=0))
    assert C.build_vocabulary(small_cfg(seed=0, n_train_documents=5)) == base
    other = C.build_vocabulary(small_cfg(seed=1))
    assert other.nouns != base.nouns
    # Real words come first whatever the seed; only the pseudo-word tail changes.
    assert other.nouns[:50] == base.nouns[:50]


def test_word_forms_and_seeds() -> None:
    assert [plural(w) for w in ("river", "box", "city", "day", "wolf")] == [
        "rivers",
        "boxes",
        "cities",
        "days",
        "wolves",
    ]
    assert [regular_past(w) for w in ("walk", "move", "carry", "play")] == [
        "walked",
        "moved",
        "carried",
        "played",
    ]
    assert derive_seed(0, "a") == derive_seed(0, "a") != derive_seed(0, "b")
    assert 0 <= derive_seed(3, "vocabulary") < 2**63


def test_pseudo_words_avoid_every_word_a_template_writes() -> None:
    vocab = C.build_vocabulary(small_cfg())
    pseudo = {w.lower() for w in vocab.nouns + vocab.verbs + vocab.adjectives + vocab.surnames}
    for word in ("year", "caught", "catch", "estimated", "estimate", "cost", "lasted", "et", "al"):
        assert word not in pseudo
        assert word in vocab.distinct_words() or word in ("catch", "estimate")
