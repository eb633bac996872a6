"""The gpt2_small profile's prompts tokenize as their analyses assume, under GPT-2's real tokenizer.

Each feature case study reads its root at the last token of every prompt
(`case_studies.common.root_activations`), and the token-swap intervention replaces every earlier
`replace_earlier[0]` token by `replace_earlier[1]` (`case_studies.feature.swap_earlier`); the
greater-than analyses read the next-token distribution after the final " 17" and score it on the
100 two-digit tokens (`organism.tokenizer.two_digit_token_ids`).
"""

from __future__ import annotations

import pytest
from transformers import GPT2TokenizerFast

from transcoder_lab.behaviour import YY_METRIC_RANGE
from transcoder_lab.config import CaseStudyProfile, compose, load_config
from transcoder_lab.sources.tokens import two_digit_token_ids

from helpers.gpt2_ranks import gpt2_tokenizer_or_skip

GREATER_THAN = "The war lasted from 17{YY} to 17"

# The token each study's root is read at (the last token of each prompt), as the paper describes
# the feature: tc8[355] a semicolon between works of a citation (contrast: a prose semicolon),
# tc8[235] " caught" after "was" (contrast: active " caught"), tc8[89] the "M" of "6M", tc8[479]
# a token inside "an estimated cost of ...".
LAST_TOKENS = {
    "citation": ([";", ";"], [";"]),
    "caught": ([" caught"], [" caught"]),
    "walkthrough": (["M"], []),
    "local_context": ([" of", " estimated"], []),
}


@pytest.fixture(scope="module")
def tokenizer() -> GPT2TokenizerFast:
    return gpt2_tokenizer_or_skip()


@pytest.fixture(scope="module")
def studies() -> dict[str, CaseStudyProfile]:
    """The gpt2_small entries of the feature case studies (conf/case_study/*.yaml)."""
    cfg = load_config(compose(["profile=gpt2_small"]))
    return {
        name: study.profiles["gpt2_small"]
        for name, study in cfg.case_study.items()
        if study.analysis == "feature"
    }


def pieces(tokenizer: GPT2TokenizerFast, text: str) -> list[str]:
    return [tokenizer.decode([i]) for i in tokenizer.encode(text)]


def test_two_digit_years_are_single_tokens(tokenizer: GPT2TokenizerFast) -> None:
    ids = two_digit_token_ids(tokenizer)  # raises if any of "00".."99" is not one token
    assert len(set(ids)) == 100
    assert [tokenizer.decode([i]) for i in ids] == [f"{yy:02d}" for yy in range(100)]


def test_greater_than_prompts_split_the_year_into_century_and_two_digits(
    tokenizer: GPT2TokenizerFast,
) -> None:
    ids = two_digit_token_ids(tokenizer)
    for yy in range(1, 100):
        tokens = tokenizer.encode(GREATER_THAN.format(YY=f"{yy:02d}"))
        assert pieces(tokenizer, GREATER_THAN.format(YY=f"{yy:02d}")) == [
            "The",
            " war",
            " lasted",
            " from",
            " 17",
            f"{yy:02d}",
            " to",
            " 17",
        ]
        assert tokens[5] == ids[yy]


def test_greater_than_year_1700_is_one_token_and_outside_the_metric(tokenizer: GPT2TokenizerFast) -> None:
    """GPT-2 has a token " 1700", so the YY = 00 prompt is one token shorter. It still ends in
    " 17" (prompts are batched by length, never padded), and the metric averages over YY = 01..98."""
    assert pieces(tokenizer, GREATER_THAN.format(YY="00")) == [
        "The",
        " war",
        " lasted",
        " from",
        " 1700",
        " to",
        " 17",
    ]
    assert YY_METRIC_RANGE[0] >= 1


def test_every_study_prompt_ends_at_the_intended_token(
    tokenizer: GPT2TokenizerFast, studies: dict[str, CaseStudyProfile]
) -> None:
    assert set(studies) == set(LAST_TOKENS)  # a new feature study needs its intended token here
    for name, (prompt_ends, contrast_ends) in LAST_TOKENS.items():
        settings = studies[name]
        assert [pieces(tokenizer, text)[-1] for text in settings.prompts] == prompt_ends, name
        assert [pieces(tokenizer, text)[-1] for text in settings.contrast_prompts] == contrast_ends, name


def test_walkthrough_reads_the_m_of_6m(
    tokenizer: GPT2TokenizerFast, studies: dict[str, CaseStudyProfile]
) -> None:
    assert studies["walkthrough"].prompts == ["Oh, that rifle model is a 6M"]
    assert pieces(tokenizer, studies["walkthrough"].prompts[0])[-2:] == [" 6", "M"]


def test_local_context_prompts_end_inside_an_estimate_phrase(
    tokenizer: GPT2TokenizerFast, studies: dict[str, CaseStudyProfile]
) -> None:
    for text in studies["local_context"].prompts:
        tokens = pieces(tokenizer, text)
        assert " estimated" in tokens[-3:], text


def test_citation_semicolons_are_tokens_and_the_swap_gives_natural_text(
    tokenizer: GPT2TokenizerFast, studies: dict[str, CaseStudyProfile]
) -> None:
    """Every ";" of a citation prompt is its own token (none glued into "):" or ";)"), each prompt
    has earlier ones for the swap to replace, and the swapped ids are exactly the tokenization of
    the text with those semicolons written as commas, so the intervention is an ordinary prompt."""
    settings = studies["citation"]
    old, new = settings.replace_earlier
    old_id, new_id = (tokenizer.encode(text) for text in (old, new))
    assert len(old_id) == len(new_id) == 1  # what feature._single_token_id requires
    for text in settings.prompts:
        ids = tokenizer.encode(text)
        assert ids.count(old_id[0]) == text.count(old)
        assert ids[:-1].count(old_id[0]) >= 1
        swapped = [new_id[0] if i == old_id[0] else i for i in ids[:-1]] + ids[-1:]
        head, last = text.rsplit(old, 1)
        assert swapped == tokenizer.encode(head.replace(old, new) + old + last)
