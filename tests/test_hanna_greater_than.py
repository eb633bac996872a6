"""Hanna et al.'s greater-than convention: their prompts under GPT-2's real tokenizer, and the
metric's mechanics on a small random model with GPT-2's vocabulary."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformer_lens import HookedTransformer
from transformers import AutoTokenizer, GPT2TokenizerFast

from transcoder_lab.behaviour import (
    HANNA_CENTURIES,
    HANNA_YY,
    hanna_greater_than_behaviour,
    hanna_greater_than_prompts,
    hanna_nouns,
    hanna_prompt_tokenizes_as_intended,
    paper_greater_than_behaviour,
)
from transcoder_lab.config import BehaviourConfig
from transcoder_lab.sources.gpt2_tokenizer import save_gpt2_tokenizer_files
from transcoder_lab.sources.models import build_processed_model
from transcoder_lab.sources.tokens import two_digit_token_ids
from transcoder_lab.standins.gpt2 import gpt2_shaped_config

from helpers.gpt2_ranks import gpt2_tokenizer_or_skip, ranks_path_or_skip


@pytest.fixture(scope="module")
def tokenizer() -> GPT2TokenizerFast:
    return gpt2_tokenizer_or_skip()


def test_noun_list_is_120_distinct_single_gpt2_tokens(tokenizer: GPT2TokenizerFast) -> None:
    nouns = hanna_nouns()
    assert len(nouns) == len(set(nouns)) == 120  # Hanna et al. used 120 nouns
    assert [noun for noun in nouns if len(tokenizer.encode(f" {noun}")) != 1] == []


def test_every_century_has_years_that_split_as_century_and_two_digits(tokenizer: GPT2TokenizerFast) -> None:
    for xx in HANNA_CENTURIES:
        valid = [yy for yy in HANNA_YY if hanna_prompt_tokenizes_as_intended(tokenizer, "war", xx, yy)]
        assert valid, xx
    # GPT-2 has its own tokens for some years (" 1850") and splits others as " 100" + "2".
    assert not hanna_prompt_tokenizes_as_intended(tokenizer, "war", 18, 50)
    assert not hanna_prompt_tokenizes_as_intended(tokenizer, "war", 10, 2)
    assert hanna_prompt_tokenizes_as_intended(tokenizer, "war", 17, 32)


def test_drawn_prompts_tokenize_as_hanna_et_al_assume(tokenizer: GPT2TokenizerFast) -> None:
    cfg = BehaviourConfig()  # the draw the behaviour stage makes with the default seed and size
    texts, yy = hanna_greater_than_prompts(tokenizer, cfg.n_prompts, cfg.seed)
    assert len(texts) == len(yy) == cfg.n_prompts
    year_ids = two_digit_token_ids(tokenizer)
    nouns, centuries = set(hanna_nouns()), set()
    for text, y in zip(texts, yy.tolist(), strict=True):
        tokens = [tokenizer.decode([i]) for i in tokenizer.encode(text)]
        assert len(tokens) == 12, tokens
        assert tokens[0] == "The" and tokens[1].startswith(" ") and tokens[1][1:] in nouns
        assert tokens[2:6] == [" lasted", " from", " the", " year"]
        assert tokens[8:11] == [" to", " the", " year"] and tokens[6] == tokens[11]
        assert tokenizer.encode(text)[7] == year_ids[y] and HANNA_YY[0] <= y <= HANNA_YY[-1]
        centuries.add(int(tokens[6]))
    assert centuries <= set(HANNA_CENTURIES)
    # 200 draws from 9 centuries: missing one has probability 9 * (8/9)^200 < 1e-9.
    assert centuries == set(HANNA_CENTURIES)


def test_draw_is_reproducible_and_depends_on_the_seed(tokenizer: GPT2TokenizerFast) -> None:
    first, yy = hanna_greater_than_prompts(tokenizer, 30, seed=1)
    again, yy_again = hanna_greater_than_prompts(tokenizer, 30, seed=1)
    other, _ = hanna_greater_than_prompts(tokenizer, 30, seed=2)
    assert first == again and torch.equal(yy, yy_again)
    assert first != other


def test_a_tokenizer_without_year_tokens_fails_clearly() -> None:
    class CharacterTokenizer:
        def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
            return [ord(c) for c in text]

    with pytest.raises(ValueError, match="century and two-digit year tokens"):
        hanna_greater_than_prompts(CharacterTokenizer(), 3, seed=0)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def small_gpt2_vocab_model(tmp_path_factory: pytest.TempPathFactory) -> HookedTransformer:
    """One small layer with GPT-2's vocabulary and real tokenizer, loaded from the saved files as a
    hub tokenizer would be (TransformerLens reloads it from that folder with a BOS token)."""
    folder: Path = tmp_path_factory.mktemp("gpt2_tokenizer")
    save_gpt2_tokenizer_files(folder, ranks_path_or_skip())
    config = gpt2_shaped_config(seed=0, n_layers=1, d_model=32, n_heads=2, d_head=16, d_mlp=64, n_ctx=32)
    return build_processed_model(config, tokenizer=AutoTokenizer.from_pretrained(folder))


def test_hanna_behaviour_computes_the_full_softmax_metrics(small_gpt2_vocab_model: HookedTransformer) -> None:
    model = small_gpt2_vocab_model
    assert model.to_tokens("Hello")[0].tolist() == [50256, 15496]  # one BOS, as for GPT-2
    cfg = BehaviourConfig(seed=3, n_prompts=12, batch_size=5)
    result = hanna_greater_than_behaviour(model, cfg)
    texts, yy = hanna_greater_than_prompts(model.tokenizer, cfg.n_prompts, cfg.seed)
    ids = torch.tensor(two_digit_token_ids(model.tokenizer))
    with torch.no_grad():
        p = torch.stack([model(model.to_tokens(text))[0, -1].softmax(-1)[ids] for text in texts])
    later = torch.arange(100)[None, :] > yy[:, None]
    difference = (p * later).sum(-1) - (p * ~later).sum(-1)
    rows = torch.arange(len(yy))
    sharpness = p[rows, yy + 1] - p[rows, yy - 1]
    # Batched or prompt by prompt, float32 logits differ by ~1e-6 (summation order), which moves
    # each p (about 1 / 50257 in a random model) by ~1e-6 of itself: sums over 100 of them by < 1e-8.
    assert result["probability_difference"] == pytest.approx(difference.mean().item(), abs=1e-8)
    assert result["cutoff_sharpness"] == pytest.approx(sharpness.mean().item(), abs=1e-8)
    # Uniform chance: ((99 - YY) - (YY + 1)) / vocabulary, averaged over the drawn YY.
    chance = ((98 - 2 * yy.double()) / model.cfg.d_vocab).mean().item()
    assert result["chance_probability_difference"] == pytest.approx(chance, rel=1e-5)
    assert result["n_prompts"] == 12 and result["n_nouns"] == 120 and result["seed"] == 3
    assert result["template"] == "The {noun} lasted from the year {XX}{YY} to the year {XX}"
    assert result["probability_difference_standard_error"] == pytest.approx(
        difference.std().item() / 12**0.5, rel=1e-3, abs=1e-9
    )


def test_paper_behaviour_reports_both_templates(small_gpt2_vocab_model: HookedTransformer) -> None:
    cfg = BehaviourConfig(seed=1, n_prompts=8)
    report = paper_greater_than_behaviour(small_gpt2_vocab_model, cfg)
    paper, hanna = report["greater_than"], report["hanna"]
    assert paper["template"] == "The war lasted from 17{YY} to 17" and paper["n_prompts"] == 98
    # the paper-template full-softmax numbers are not under Hanna et al.'s names
    assert not any(key.startswith("hanna") for key in paper)
    for key in (
        "probability_difference",
        "chance_probability_difference",
        "full_softmax_probability_difference",
    ):
        assert -1.0 <= paper[key] <= 1.0
    assert hanna == hanna_greater_than_behaviour(small_gpt2_vocab_model, cfg)  # deterministic draw
    assert hanna["n_prompts"] == 8
