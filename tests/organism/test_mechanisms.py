"""The planted mechanisms' prompts: each cut right before the token its metric measures."""

from __future__ import annotations

import re

import pytest

from transcoder_lab.organism import mechanisms
from transcoder_lab.organism.mechanisms import load_mechanism
from transcoder_lab.organism.mechanisms.caught import caught_prompts
from transcoder_lab.organism.mechanisms.citation import citation_semicolon_prompts
from transcoder_lab.organism.mechanisms.estimate import QUANTITY_STARTS, estimate_prompts
from transcoder_lab.organism.mechanisms.greater_than import greater_than_prompts
from transcoder_lab.organism.mechanisms.prose_semicolon import prose_semicolon_prompts

from helpers.small_corpus import small_cfg


def test_greater_than_prompts() -> None:
    cfg = small_cfg()
    prompts = greater_than_prompts(cfg, seed=5)
    assert [p.yy for p in prompts] == list(range(100))
    for p in prompts:
        assert p.text == f"The {p.noun} lasted from the year {p.century}{p.yy:02d} to the year {p.century}"
        assert 11 <= p.century <= 19
    short = greater_than_prompts(cfg, seed=5, template="short", n_per_yy=2, century=17)
    assert len(short) == 200 and all(p.text.endswith(f"17{p.yy:02d} to 17") for p in short)
    assert greater_than_prompts(cfg, seed=5) == prompts
    assert greater_than_prompts(cfg, seed=6) != prompts
    with pytest.raises(ValueError):
        greater_than_prompts(cfg, seed=5, template="nope")


def test_semicolon_prompts() -> None:
    cfg = small_cfg()
    citation = citation_semicolon_prompts(cfg, seed=3, n=40)
    prose = prose_semicolon_prompts(cfg, seed=3, n=40)
    surnames = set(mechanisms.surnames(cfg))
    for p in citation:
        assert p.kind == "citation" and p.text.endswith(";")
        assert " (" in p.text and ")" not in p.text
        inside = p.text[p.text.index("(") + 1 :]
        assert re.fullmatch(r"([A-Z][a-z]+( and [A-Z][a-z]+| et al\.)?, \d{4}; ?)+", inside), inside
        assert set(re.findall(r"[A-Z][a-z]+", inside)) <= surnames
    for p in prose:
        assert p.kind == "prose" and p.text.endswith(";") and p.text.count(";") == 1
        assert not re.search(r"[()\d]", p.text)
    assert citation_semicolon_prompts(cfg, seed=3, n=40) == citation
    assert citation_semicolon_prompts(cfg, seed=4, n=40) != citation


def test_caught_and_estimate_prompts() -> None:
    cfg = small_cfg()
    caught = caught_prompts(cfg, seed=2, n=20)
    assert sum(p.passive for p in caught) == 10
    for p in caught:
        assert p.text.endswith(" was caught" if p.passive else " caught")
        assert p.passive == p.text.endswith(" was caught")
        assert p.expected_next == ((" by",) if p.passive else (" the", " a"))
    estimate = estimate_prompts(cfg, seed=2, n=20)
    assert all(p.text.endswith(" an estimated cost of") for p in estimate)
    assert all(p.expected_next == QUANTITY_STARTS for p in estimate)
    assert len({p.text for p in estimate}) > 5


@pytest.mark.parametrize("name", ["greater_than", "citation", "prose_semicolon", "caught", "estimate"])
def test_each_mechanism_states_its_labels_words_and_prompts(name: str) -> None:
    mechanism = load_mechanism(name)
    assert all(label.split("/")[0] in (name, "prose") for label in mechanism.labels)
    assert mechanism.fixed_words() and all(isinstance(w, str) for w in mechanism.fixed_words())
    prompts = mechanism.prompts(small_cfg(), 9, 4)
    assert prompts and all(p.text for p in prompts)
    assert [p.text for p in mechanism.prompts(small_cfg(), 9, 4)] == [p.text for p in prompts]


def test_a_module_without_a_mechanism_is_named() -> None:
    with pytest.raises(ValueError, match="helpers.small_corpus defines no MECHANISM"):
        load_mechanism("helpers.small_corpus")
