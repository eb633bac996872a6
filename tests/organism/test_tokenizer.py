"""The organism tokenizer: year splitting, guaranteed two-digit tokens, round trips, token labels."""

from __future__ import annotations

import re

import numpy as np
import pytest

from transcoder_lab.organism import corpus as C
from transcoder_lab.organism import mechanisms
from transcoder_lab.organism import tokenizer as T
from transcoder_lab.organism.mechanisms.caught import caught_prompts
from transcoder_lab.organism.mechanisms.citation import citation_semicolon_prompts
from transcoder_lab.organism.mechanisms.estimate import QUANTITY_STARTS, estimate_prompts
from transcoder_lab.organism.mechanisms.greater_than import greater_than_prompts
from transcoder_lab.organism.mechanisms.prose_semicolon import prose_semicolon_prompts
from transcoder_lab.sources import tokens

from helpers.small_corpus import small_cfg

LABELS = C.labels(small_cfg())


@pytest.fixture(scope="module")
def docs() -> list[C.Document]:
    return C.generate_documents(small_cfg(), 400, seed=11)


@pytest.fixture(scope="module")
def tok(docs: list[C.Document]):
    return T.train_tokenizer([d.text for d in docs], small_cfg().vocab_size)


def pieces(tok, text: str) -> list[str]:
    return [tok.decode([i]) for i in tok.encode(text, add_special_tokens=False)]


def test_pretokenizer_splits_years_into_two_digit_groups() -> None:
    assert T.pretokenize(" 1732") == [" 17", "32"]
    assert T.pretokenize("1732") == ["17", "32"]
    assert T.pretokenize("from the year 1999.") == ["from", " the", " year", " 19", "99", "."]
    assert T.pretokenize(" $40,000 (Lee, 2019;") == [
        " $",
        "40",
        ",",
        "00",
        "0",
        " (",
        "Lee",
        ",",
        " 20",
        "19",
        ";",
    ]
    assert T.pretokenize("He was caught by") == ["He", " was", " caught", " by"]


def test_years_are_two_two_digit_tokens(tok) -> None:
    assert pieces(tok, " 1732") == [" 17", "32"]
    assert pieces(tok, "1732") == ["17", "32"]
    tail = pieces(tok, "The war lasted from the year 1999 to the year 19")
    assert tail[-7:] == [" year", " 19", "99", " to", " the", " year", " 19"]


def test_all_year_pieces_are_single_tokens(tok) -> None:
    ids = tokens.two_digit_token_ids(tok)
    assert len(set(ids)) == 100
    assert [tok.decode([i]) for i in ids] == [f"{n:02d}" for n in range(100)]
    for century in range(11, 20):
        assert len(tok.encode(f" {century}", add_special_tokens=False)) == 1


def test_year_guarantee_holds_without_digits_in_training_text() -> None:
    # Nothing to learn the digit merges from: they must be added, and the size limit kept.
    texts = ["the quick brown fox jumps over the lazy dog, again and again."] * 50
    tok = T.train_tokenizer(texts, 420)
    assert len(tok) <= 420
    assert len(tokens.two_digit_token_ids(tok)) == 100
    assert pieces(tok, " 1732 1899") == [" 17", "32", " 18", "99"]
    assert tok.decode(tok.encode("the fox 1732", add_special_tokens=False)) == "the fox 1732"
    with pytest.raises(ValueError):
        T.train_tokenizer(texts, 300)


def test_special_token_and_no_automatic_specials(tok) -> None:
    assert tok.convert_tokens_to_ids("<|endoftext|>") == 0
    assert tok.bos_token_id == tok.eos_token_id == tok.pad_token_id == 0
    assert len(tok) == small_cfg().vocab_size
    ids = tok("The war lasted")["input_ids"]
    assert 0 not in ids and tok.decode(ids) == "The war lasted"


def test_round_trip(tok, docs: list[C.Document]) -> None:
    for doc in docs[:100]:
        assert tok.decode(tok.encode(doc.text, add_special_tokens=False)) == doc.text


def test_save_and_load(tok, docs: list[C.Document], tmp_path) -> None:
    path = tmp_path / "tokenizer.json"
    tokens.save_tokenizer(tok, path)
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]  # no temporary file left
    loaded = tokens.load_tokenizer(path)
    text = docs[0].text
    assert loaded.encode(text) == tok.encode(text)
    assert loaded.pad_token == "<|endoftext|>" and len(loaded) == len(tok)


def test_encoded_labels_are_consistent_with_the_text(tok, docs: list[C.Document]) -> None:
    encoded = T.encode_documents(tok, docs)
    assert encoded.tokens.dtype == np.int32 and encoded.labels.dtype == np.uint8
    assert encoded.doc_offsets.dtype == np.int64 and encoded.n_documents == len(docs)
    assert encoded.doc_offsets[-1] == len(encoded.tokens) == len(encoded.labels)
    assert encoded.labels.max() < len(LABELS)
    vocab_strings = {i: tok.decode([i]) for i in np.unique(encoded.tokens).tolist()}
    name = np.array(LABELS)
    for d, doc in enumerate(docs):
        a, b = encoded.doc_offsets[d], encoded.doc_offsets[d + 1]
        strings = [vocab_strings[i] for i in encoded.tokens[a:b].tolist()]
        labels = name[encoded.labels[a:b]]
        assert "".join(strings) == doc.text
        # Independent check: the label of each token's first character, from the spans.
        position = 0
        char_label = np.empty(len(doc.text), dtype=object)
        for s, e, lab in doc.spans:
            char_label[s:e] = LABELS[lab]
        for string, label in zip(strings, labels, strict=True):
            assert set(char_label[position : position + len(string)]) == {label}
            position += len(string)
        starts = []
        for string, label in zip(strings, labels, strict=True):
            if label in ("citation/semicolon", "prose/semicolon"):
                assert string == ";"
            elif label in ("caught/passive_caught", "caught/active_caught"):
                assert string == " caught"
            elif label == "caught/passive_by":
                assert string == " by"
            elif label == "citation/year":
                assert re.fullmatch(r" ?\d\d", string)
            elif label in ("greater_than/start_yy", "greater_than/end_yy"):
                assert string in tokens.TWO_DIGIT_STRINGS
                if label == "greater_than/start_yy":
                    starts.append(int(string))
                else:
                    assert int(string) > starts[-1]
            elif label in ("greater_than/start_century", "greater_than/end_century"):
                assert string in T.CENTURY_STRINGS
            elif ";" in string:
                pytest.fail(f"semicolon token labelled {label}")


def test_encode_rejects_a_label_boundary_inside_a_token(tok) -> None:
    bad = C.Document("The farmer", [(0, 7, 0), (7, 10, 5)])  # cuts " farmer" in two
    with pytest.raises(ValueError, match="straddles"):
        T.encode_documents(tok, [bad])


def test_behaviour_prompts_end_where_the_metric_reads(tok) -> None:
    cfg = small_cfg()
    for p in greater_than_prompts(cfg, seed=1):
        assert pieces(tok, p.text)[-4:] == [" to", " the", " year", f" {p.century}"]
    for p in citation_semicolon_prompts(cfg, seed=1, n=20) + prose_semicolon_prompts(cfg, seed=1, n=20):
        assert pieces(tok, p.text)[-1] == ";"
    for p in caught_prompts(cfg, seed=1, n=10):
        assert pieces(tok, p.text)[-1] == " caught"
        for expected in p.expected_next:
            assert len(tok.encode(expected, add_special_tokens=False)) == 1
    for p in estimate_prompts(cfg, seed=1, n=5):
        assert pieces(tok, p.text)[-1] == " of"
    # The estimate metric's set: the first tokens of the quantity starts cover every quantity
    # the generator writes after "cost of".
    starts = set(tokens.first_token_ids(tok, QUANTITY_STARTS))
    for doc in C.generate_documents(cfg, 200, seed=4):
        for s, e, lab in doc.spans:
            if LABELS[lab] == "estimate/quantity" and doc.text[:s].endswith(" cost of"):
                assert tok.encode(doc.text[s:e], add_special_tokens=False)[0] in starts
    # The metric's surname set: the first token of " Surname" after a citation semicolon.
    first = tokens.first_token_ids(tok, [" " + s for s in mechanisms.surnames(cfg)])
    assert 0 < len(first) <= len(mechanisms.surnames(cfg))
    assert all(tok.decode([i]).startswith(" ") for i in first)
