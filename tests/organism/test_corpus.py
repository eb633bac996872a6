"""The corpus generator: labels, span coverage, label/text consistency, shares, determinism."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from transcoder_lab.organism import corpus as C
from transcoder_lab.organism import mechanisms
from transcoder_lab.organism.mechanisms.estimate import QUANTITY_STARTS

from helpers.small_corpus import small_cfg

LABELS = C.labels(small_cfg())


@pytest.fixture(scope="module")
def docs() -> list[C.Document]:
    return C.generate_documents(small_cfg(), 1500, seed=123)


def labelled(doc: C.Document) -> list[tuple[str, str]]:
    return [(doc.text[s:e], LABELS[lab]) for s, e, lab in doc.spans]


def test_labels_are_unique_and_documented() -> None:
    assert len(set(LABELS)) == len(LABELS) < 255  # stored as uint8; 255 marks BOS
    assert LABELS[0] == "background"
    for name in [
        "greater_than/start_century",
        "greater_than/start_yy",
        "greater_than/end_century",
        "greater_than/end_yy",
        "citation/semicolon",
        "prose/semicolon",
        "caught/passive_caught",
        "caught/active_caught",
        "estimate/quantity",
    ]:
        assert name in LABELS


def test_spans_cover_each_document_exactly(docs: list[C.Document]) -> None:
    for doc in docs:
        C.check_document(doc, len(LABELS))
        assert doc.spans[0][0] == 0 and doc.spans[-1][1] == len(doc.text)
        for (_, end, label), (start, _, next_label) in zip(doc.spans, doc.spans[1:], strict=False):
            assert end == start
            assert label != next_label  # adjacent pieces with one label are merged
        assert doc.text.isascii()
        assert "  " not in doc.text and not doc.text.startswith(" ")


def test_check_document_rejects_gaps() -> None:
    with pytest.raises(ValueError):
        C.check_document(C.Document("abc def", [(0, 3, 0), (4, 7, 0)]), len(LABELS))
    with pytest.raises(ValueError):
        C.check_document(C.Document("abc", [(0, 2, 0)]), len(LABELS))


def test_span_texts_match_their_labels(docs: list[C.Document]) -> None:
    surnames = set(mechanisms.surnames(small_cfg()))
    exact = {
        "citation/semicolon": ";",
        "prose/semicolon": ";",
        "citation/open_paren": " (",
        "citation/close_paren": ")",
        "citation/comma": ",",
        "citation/et_al": " et al.",
        "citation/and": " and",
        "caught/passive_was": " was",
        "caught/passive_caught": " caught",
        "caught/passive_by": " by",
        "caught/active_caught": " caught",
        "estimate/estimated": " estimated",
        "estimate/cost_of": " cost of",
    }
    seen = Counter()
    for doc in docs:
        for text, label in labelled(doc):
            seen[label] += 1
            if label in exact:
                assert text == exact[label], (label, text)
            elif label == "citation/year":
                assert re.fullmatch(r" \d{4}", text) and 1950 <= int(text) <= 2023
            elif label == "citation/surname":
                assert text.strip() in surnames
            elif label in ("greater_than/start_century", "greater_than/end_century"):
                assert re.fullmatch(r" 1[1-9]", text), text
            elif label in ("greater_than/start_yy", "greater_than/end_yy"):
                assert re.fullmatch(r"\d\d", text), text
            elif label == "estimate/quantity":
                first = re.match(r" \$| \d{1,2}", text)
                assert first and first.group() in QUANTITY_STARTS, text
            else:  # background and */other spans carry none of the planted markers
                assert not re.search(r"[\d();$]| caught| estimated", text), (label, text)
    assert set(seen) == set(LABELS)  # every label occurs in 1500 documents


def test_caught_contexts(docs: list[C.Document]) -> None:
    n_passive = n_by = 0
    for doc in docs:
        parts = labelled(doc)
        for i, (_, label) in enumerate(parts):
            if label == "caught/passive_caught":
                assert parts[i - 1] == (" was", "caught/passive_was")
                following, following_label = parts[i + 1]
                n_passive += 1
                n_by += following_label == "caught/passive_by"
                if following_label != "caught/passive_by":  # then a prepositional phrase
                    assert following_label == "caught/other" and not following.startswith(" by ")
            elif label == "caught/active_caught":
                assert parts[i - 1][1] == "caught/other" and not parts[i - 1][0].endswith(" was")
                assert re.match(r" (the|a) [a-z]+", parts[i + 1][0])
    assert 0.7 < n_by / n_passive < 0.9  # mostly " by"


def test_years_in_greater_than_sentences(docs: list[C.Document]) -> None:
    n_sentences = 0
    for doc in docs:
        parts = labelled(doc)
        for i, (text, label) in enumerate(parts):
            if label != "greater_than/start_century":
                continue
            (start_yy, l1), (_, l2), (end_c, l3), (end_yy, l4) = parts[i + 1 : i + 5]
            assert (l1, l2, l3, l4) == (
                "greater_than/start_yy",
                "greater_than/other",
                "greater_than/end_century",
                "greater_than/end_yy",
            )
            assert end_c == text  # same century
            assert int(end_yy) > int(start_yy)
            n_sentences += 1
    assert n_sentences > 1000


def test_sentence_kinds_follow_the_configured_shares(docs: list[C.Document]) -> None:
    markers = {
        "greater_than": "greater_than/start_century",
        "citation": "citation/open_paren",
        "prose": "prose/semicolon",
        "estimate": "estimate/estimated",
    }
    counts = Counter()
    n_sentences = 0
    passive = active = 0
    for doc in docs:
        n_sentences += len(re.findall(r"[.](?= [A-Z]|$)", doc.text)) - doc.text.count("et al.")
        for _, label in labelled(doc):
            for kind, marker in markers.items():
                counts[kind] += label == marker
            passive += label == "caught/passive_caught"
            active += label == "caught/active_caught"
    counts["caught"] = passive + active
    cfg = small_cfg()
    expected = {kind: cfg.shares[name] for kind, name in (("prose", "prose_semicolon"),) + tuple(
        (name, name) for name in ("greater_than", "citation", "caught", "estimate"))}  # fmt: skip
    for kind, share in expected.items():
        assert counts[kind] / n_sentences == pytest.approx(share, rel=0.2), kind
    assert 0.4 < passive / (passive + active) < 0.6
    low, high = cfg.sentences_per_document
    assert low <= n_sentences / len(docs) <= high


def test_background_is_varied(docs: list[C.Document]) -> None:
    background = [doc.text[s:e] for doc in docs for s, e, lab in doc.spans if lab == 0]
    words = Counter(w.lower() for text in background for w in re.findall(r"[A-Za-z]+", text))
    assert len(words) > 500
    assert any("," in text for text in background)
    assert any(" that " in text or " which " in text for text in background)


def test_generation_is_deterministic_in_the_seed() -> None:
    cfg = small_cfg()
    a = C.generate_documents(cfg, 50, seed=7)
    b = C.generate_documents(cfg, 50, seed=7)
    c = C.generate_documents(cfg, 50, seed=8)
    assert a == b
    assert [d.text for d in a] != [d.text for d in c]


def test_shares_must_be_a_distribution_over_known_mechanisms() -> None:
    with pytest.raises(ValueError, match="sum to at most 1"):
        C.generate_documents(small_cfg(shares={"greater_than": 0.7, "citation": 0.5}), 1, seed=0)
    with pytest.raises(ValueError, match="src/transcoder_lab/organism/mechanisms/nonesuch.py"):
        C.labels(small_cfg(shares={"nonesuch": 0.1}))


def test_labels_follow_the_mechanisms_in_share_order() -> None:
    swapped = C.labels(small_cfg(shares={"caught": 0.1, "greater_than": 0.1}))
    assert swapped[0] == "background" and swapped[1] == "caught/passive_was"
    assert swapped.index("greater_than/start_century") == 1 + len(
        [n for n in LABELS if n.startswith("caught/")]
    )
