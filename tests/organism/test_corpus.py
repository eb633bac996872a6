"""The corpus generator: span coverage, label/text consistency, shares, determinism, prompts."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from small_corpus import small_cfg

from transcoder_lab.config import CorpusConfig
from transcoder_lab.organism import corpus as C


@pytest.fixture(scope="module")
def docs() -> list[C.Document]:
    return C.generate_documents(small_cfg(), 1500, seed=123)


def labelled(doc: C.Document) -> list[tuple[str, str]]:
    return [(doc.text[s:e], C.LABELS[lab]) for s, e, lab in doc.spans]


def test_labels_are_unique_and_documented() -> None:
    assert len(set(C.LABELS)) == len(C.LABELS) <= 256  # stored as uint8
    assert C.LABELS[0] == "background"
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
        assert name in C.LABEL_ID


def test_spans_cover_each_document_exactly(docs: list[C.Document]) -> None:
    for doc in docs:
        C.check_document(doc)
        assert doc.spans[0][0] == 0 and doc.spans[-1][1] == len(doc.text)
        for (_, end, label), (start, _, next_label) in zip(doc.spans, doc.spans[1:], strict=False):
            assert end == start
            assert label != next_label  # adjacent pieces with one label are merged
        assert doc.text.isascii()
        assert "  " not in doc.text and not doc.text.startswith(" ")


def test_check_document_rejects_gaps() -> None:
    with pytest.raises(ValueError):
        C.check_document(C.Document("abc def", [(0, 3, 0), (4, 7, 0)]))
    with pytest.raises(ValueError):
        C.check_document(C.Document("abc", [(0, 2, 0)]))


def test_span_texts_match_their_labels(docs: list[C.Document]) -> None:
    surnames = set(C.surnames(small_cfg()))
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
                assert first and first.group() in C.ESTIMATE_QUANTITY_STARTS, text
            else:  # background and */other spans carry none of the planted markers
                assert not re.search(r"[\d();$]| caught| estimated", text), (label, text)
    assert set(seen) == set(C.LABELS)  # every label occurs in 1500 documents


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
    expected = {
        "greater_than": cfg.share_greater_than,
        "citation": cfg.share_citation,
        "prose": cfg.share_prose_semicolon,
        "caught": cfg.share_caught,
        "estimate": cfg.share_estimate,
    }
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


def test_greater_than_prompts() -> None:
    cfg = small_cfg()
    prompts = C.greater_than_prompts(cfg, seed=5)
    assert [p.yy for p in prompts] == list(range(100))
    for p in prompts:
        assert p.text == f"The {p.noun} lasted from the year {p.century}{p.yy:02d} to the year {p.century}"
        assert 11 <= p.century <= 19
    short = C.greater_than_prompts(cfg, seed=5, template="short", n_per_yy=2, century=17)
    assert len(short) == 200 and all(p.text.endswith(f"17{p.yy:02d} to 17") for p in short)
    assert C.greater_than_prompts(cfg, seed=5) == prompts
    assert C.greater_than_prompts(cfg, seed=6) != prompts
    with pytest.raises(ValueError):
        C.greater_than_prompts(cfg, seed=5, template="nope")


def test_semicolon_prompts() -> None:
    cfg = small_cfg()
    citation = C.citation_semicolon_prompts(cfg, seed=3, n=40)
    prose = C.prose_semicolon_prompts(cfg, seed=3, n=40)
    surnames = set(C.surnames(cfg))
    for p in citation:
        assert p.kind == "citation" and p.text.endswith(";")
        assert " (" in p.text and ")" not in p.text
        inside = p.text[p.text.index("(") + 1 :]
        assert re.fullmatch(r"([A-Z][a-z]+( and [A-Z][a-z]+| et al\.)?, \d{4}; ?)+", inside), inside
        assert set(re.findall(r"[A-Z][a-z]+", inside)) <= surnames
    for p in prose:
        assert p.kind == "prose" and p.text.endswith(";") and p.text.count(";") == 1
        assert not re.search(r"[()\d]", p.text)
    assert C.citation_semicolon_prompts(cfg, seed=3, n=40) == citation
    assert C.citation_semicolon_prompts(cfg, seed=4, n=40) != citation


def test_caught_and_estimate_prompts() -> None:
    cfg = small_cfg()
    caught = C.caught_prompts(cfg, seed=2, n=20)
    assert sum(p.passive for p in caught) == 10
    for p in caught:
        assert p.text.endswith(" was caught" if p.passive else " caught")
        assert p.passive == p.text.endswith(" was caught")
        assert p.expected_next == ((" by",) if p.passive else (" the", " a"))
    estimate = C.estimate_prompts(cfg, seed=2, n=20)
    assert all(p.text.endswith(" an estimated cost of") for p in estimate)
    assert all(p.expected_next == C.ESTIMATE_QUANTITY_STARTS for p in estimate)
    assert len({p.text for p in estimate}) > 5
