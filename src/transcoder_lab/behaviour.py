"""Behavioural metrics of the planted mechanisms (and of GPT-2 on the paper's greater-than task).

Greater-than (docs/design.md §6.3). For a prompt ending in the century of a second year, with the first
year's last two digits YY, let p be the next-token distribution over the 100 two-digit tokens
"00".."99":
1. Paper convention: p is the softmax of the logits restricted to those 100 tokens;
   probability difference = sum_{y>YY} p(y) - sum_{y<=YY} p(y), averaged over YY = 01..98.
2. Hanna et al.'s convention: p is the full-vocabulary softmax read at those tokens (so the
   difference is diluted by mass outside the years); cutoff sharpness = p(YY+1) - p(YY-1).
   Their published numbers (GPT-2 small: 0.817 and 0.060) also need their prompts, which
   `hanna_greater_than_prompts` draws: "The {noun} lasted from the year {XX}{YY} to the year {XX}"
   with a noun from `hanna_nouns()`, century XX uniform in 10..18 (years 1000-1899) and YY uniform
   in 02..98, a draw kept only when the prompt tokenizes as the words, then " XX" and "YY" as one
   token each (GPT-2 has single tokens for some years, " 1850", and splits others as " 100" + "2";
   those draws are redrawn).
   The same formulas on the paper's prompts are reported under `full_softmax_*` names, since they
   are not comparable with Hanna et al.'s numbers.
Chance levels are the same formulas applied to a uniform distribution, computed, not assumed.

Pretrained profiles (`pretrained_behaviour`): the paper's greater-than task, "The war lasted from
17{YY} to 17". Its metric assumes GPT-2's tokenization of years: " 17" then a two-digit token "YY"
(and the answer is one of the 100 two-digit tokens "00".."99"). So the prompts are checked against
the model's tokenizer first:
1. When every two-digit string is one token and every prompt of the metric's range (YY = 01..98)
   tokenizes as [..., " from", " 17", "YY", " to", " 17"], the paper's measurement runs unchanged
   (`paper_greater_than_behaviour`, with Hanna et al.'s convention beside it): GPT-2.
2. Otherwise (e.g. Pythia's GPT-NeoX tokenizer, or a stand-in) only what the tokenizer supports is
   measured (`tokenizer_limited_greater_than`): the answer tokens are the two-digit strings that are
   single tokens, the softmax is restricted to them, the prompts are those of the metric's range that
   tokenize as intended with their YY among the answers, and the probability difference
   sum_{y>YY} p(y) - sum_{y<=YY} p(y) is averaged over them, beside the same formula on a uniform
   distribution over the answers (chance). It is marked not comparable with the paper's GPT-2 value,
   and with no supported prompt (or fewer than two answer tokens) the value is null with the reason.
   Hanna et al.'s measurement runs beside it where their prompts tokenize as they assume, else its
   value is null with the reason.

The organism's planted mechanisms each define their metric beside their sentences
(transcoder_lab.organism.mechanisms; transcoder_lab.organism.behaviour gathers them), from the
helpers here: greater-than as above; the others are
probability masses on a set of expected next tokens (`mass_metric`; chance: the set's share of the
vocabulary under a uniform guess) or a two-way choice between expected tokens (chance 0.5).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from importlib import resources
from typing import Any

import torch
from jaxtyping import Float, Int
from transformer_lens import HookedTransformer
from transformers import PreTrainedTokenizerBase

from transcoder_lab.config import BehaviourConfig
from transcoder_lab.sources.tokens import TokenizerError, first_token_ids, two_digit_token_ids

YY_METRIC_RANGE = (1, 98)  # the paper averages over YY = 01..98
METRIC_YY = range(YY_METRIC_RANGE[0], YY_METRIC_RANGE[1] + 1)
PAPER_TEMPLATE = "The war lasted from 17{YY} to 17"  # docs/design.md §6.3
HANNA_TEMPLATE = "The {noun} lasted from the year {XX}{YY} to the year {XX}"
HANNA_CENTURIES = tuple(range(10, 19))  # XX: years 1000-1899
HANNA_YY = tuple(range(2, 99))  # YY = 02..98, so both YY - 1 and YY + 1 are two-digit years
HANNA_NOUNS_FILE = "hanna_nouns.txt"  # package data beside this module
_MAX_DRAWS_PER_PROMPT = 100  # rejection sampling gives up (with an error) after this many draws per prompt


def batches_by_length(
    model: HookedTransformer, texts: Sequence[str], batch_size: int = 64
) -> Iterator[tuple[list[int], Int[torch.Tensor, "batch pos"]]]:
    """(indices into `texts`, their tokens with BOS) for batches of equally long prompts: no padding,
    so position -1 is every prompt's last token."""
    token_lists = [model.to_tokens(text)[0] for text in texts]
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, tokens in enumerate(token_lists):
        by_length[len(tokens)].append(index)
    for indices in by_length.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            yield chunk, torch.stack([token_lists[i] for i in chunk]).to(model.cfg.device)


@torch.no_grad()
def last_token_logits(
    model: HookedTransformer, texts: Sequence[str], batch_size: int = 64
) -> Float[torch.Tensor, "n_prompts d_vocab"]:
    """Next-token logits after each text (BOS prepended); prompts batched by token length, no padding."""
    out = torch.empty(len(texts), model.cfg.d_vocab)
    for chunk, batch in batches_by_length(model, texts, batch_size):
        out[chunk] = model(batch)[:, -1].float().cpu()
    return out


def per_prompt_greater_than(
    p: Float[torch.Tensor, "n_prompts 100"], yy: Int[torch.Tensor, " n_prompts"]
) -> tuple[Float[torch.Tensor, " n_prompts"], Float[torch.Tensor, " n_prompts"]]:
    """Per prompt, from p(y) at the 100 year tokens "00".."99" (YY in 01..98): the probability
    difference sum_{y>YY} p(y) - sum_{y<=YY} p(y) and the cutoff sharpness p(YY+1) - p(YY-1)."""
    later = torch.arange(100)[None, :] > yy[:, None]
    difference = (p * later).sum(-1) - (p * ~later).sum(-1)
    rows = torch.arange(len(yy))
    return difference, p[rows, yy + 1] - p[rows, yy - 1]


def greater_than_scores(
    logits: Float[torch.Tensor, "n_prompts d_vocab"],
    yy: Int[torch.Tensor, " n_prompts"],
    two_digit_ids: Sequence[int],
) -> dict[str, float]:
    """Both conventions' probability differences and Hanna et al.'s cutoff sharpness on these
    prompts' logits (the `hanna_*` keys are Hanna et al.'s formulas; their published values also
    need their prompts, see `hanna_greater_than_behaviour`)."""
    ids = torch.as_tensor(list(two_digit_ids))
    if len(ids) != 100:
        raise ValueError(f"expected the 100 token ids of '00'..'99', got {len(ids)}")
    yy = torch.as_tensor(yy)
    keep = (yy >= YY_METRIC_RANGE[0]) & (yy <= YY_METRIC_RANGE[1])
    logits, yy = logits[keep], yy[keep]
    restricted = logits[:, ids].softmax(-1)  # [n, 100]
    full = logits.softmax(-1)[:, ids]  # [n, 100]

    def summarise(p: torch.Tensor) -> dict[str, float]:
        difference, sharpness = per_prompt_greater_than(p, yy)
        return {
            "probability_difference": difference.mean().item(),
            "probability_difference_sd": difference.std().item() if len(difference) > 1 else 0.0,
            "cutoff_sharpness": sharpness.mean().item(),
        }

    uniform = summarise(torch.full_like(restricted, 1 / 100))
    uniform_full = summarise(torch.full_like(full, 1 / logits.shape[-1]))
    paper, hanna = summarise(restricted), summarise(full)
    return {
        "probability_difference": paper["probability_difference"],
        "probability_difference_sd": paper["probability_difference_sd"],  # over prompts (reference.py)
        "chance_probability_difference": uniform["probability_difference"],
        "hanna_probability_difference": hanna["probability_difference"],
        "hanna_cutoff_sharpness": hanna["cutoff_sharpness"],
        "chance_hanna_probability_difference": uniform_full["probability_difference"],
        "n_prompts": int(len(yy)),
    }


def set_mass(logits: Float[torch.Tensor, "n d_vocab"], token_ids: Sequence[int]) -> Float[torch.Tensor, " n"]:
    """Probability mass the next-token distribution puts on a set of tokens."""
    return logits.softmax(-1)[:, torch.as_tensor(sorted(set(token_ids)))].sum(-1)


def mass_metric(
    model: HookedTransformer, texts: Sequence[str], expected: Sequence[str], batch_size: int
) -> dict:
    """Mean next-token mass on the first tokens of `expected`, beside a uniform guess's mass."""
    ids = first_token_ids(model.tokenizer, expected)
    mass = set_mass(last_token_logits(model, texts, batch_size), ids)
    return {
        "value": mass.mean().item(),
        "sd": mass.std().item() if len(mass) > 1 else 0.0,  # over prompts: a rerun's tolerance (reference.py)
        "chance": len(ids) / model.cfg.d_vocab,
        "n_prompts": len(texts),
    }


def hanna_nouns() -> list[str]:
    """The nouns of Hanna et al.'s template (package data `hanna_nouns.txt`, comments skipped)."""
    text = resources.files("transcoder_lab").joinpath(HANNA_NOUNS_FILE).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def hanna_prompt_tokenizes_as_intended(
    tokenizer: PreTrainedTokenizerBase, noun: str, xx: int, yy: int
) -> bool:
    """True when Hanna et al.'s prompt for (noun, XX, YY) tokenizes as its words with " {noun}" one
    token, then " XX" and "YY" one token each, then " to the year" and " XX" (one token)."""

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    century, year = encode(f" {xx}"), encode(f"{yy:02d}")
    if len(encode(f" {noun}")) != 1 or len(century) != 1 or len(year) != 1:
        return False
    text = HANNA_TEMPLATE.format(noun=noun, XX=xx, YY=f"{yy:02d}")
    intended = encode(f"The {noun} lasted from the year") + century + year + encode(" to the year") + century
    return encode(text) == intended


def hanna_greater_than_prompts(
    tokenizer: PreTrainedTokenizerBase, n_prompts: int, seed: int, nouns: Sequence[str] | None = None
) -> tuple[list[str], Int[torch.Tensor, " n_prompts"]]:
    """Hanna et al.'s prompts: each draw takes a noun, a century XX in 10..18 and YY in 02..98
    uniformly (a `random.Random(seed)` stream, so the draw is reproducible) and is kept only when
    `hanna_prompt_tokenizes_as_intended`. Returns (texts, YY values)."""
    nouns = list(hanna_nouns() if nouns is None else nouns)
    rng = random.Random(seed)
    texts: list[str] = []
    years: list[int] = []
    checked: dict[tuple[str, int, int], bool] = {}
    for _ in range(_MAX_DRAWS_PER_PROMPT * n_prompts):
        if len(texts) == n_prompts:
            break
        draw = (rng.choice(nouns), rng.choice(HANNA_CENTURIES), rng.choice(HANNA_YY))
        if draw not in checked:
            checked[draw] = hanna_prompt_tokenizes_as_intended(tokenizer, *draw)
        if checked[draw]:
            noun, xx, yy = draw
            texts.append(HANNA_TEMPLATE.format(noun=noun, XX=xx, YY=f"{yy:02d}"))
            years.append(yy)
    if len(texts) < n_prompts:
        raise ValueError(
            f"only {len(texts)} of {n_prompts} drawn prompts of {HANNA_TEMPLATE!r} tokenize as century "
            "and two-digit year tokens; this tokenizer does not split years that way"
        )
    return texts, torch.tensor(years)


def hanna_greater_than_behaviour(model: HookedTransformer, cfg: BehaviourConfig) -> dict:
    """Hanna et al.'s greater-than measurement: `cfg.n_prompts` prompts of their template drawn with
    `cfg.seed`, full-vocabulary softmax at the last token (BOS prepended, as every prompt here),
    probability difference and cutoff sharpness averaged over the prompts, with standard errors
    (the spread of a mean over independently drawn prompts)."""
    nouns = hanna_nouns()
    texts, yy = hanna_greater_than_prompts(model.tokenizer, cfg.n_prompts, cfg.seed, nouns)
    logits = last_token_logits(model, texts, cfg.batch_size)
    ids = two_digit_token_ids(model.tokenizer)
    full = logits.softmax(-1)[:, torch.as_tensor(ids)]
    difference, sharpness = per_prompt_greater_than(full, yy)
    restricted, _ = per_prompt_greater_than(logits[:, torch.as_tensor(ids)].softmax(-1), yy)
    uniform, _ = per_prompt_greater_than(torch.full_like(full, 1 / logits.shape[-1]), yy)
    n = len(texts)
    return {
        "template": HANNA_TEMPLATE,
        "metric": "Hanna et al.'s probability difference (full-vocabulary softmax, their prompts)",
        "probability_difference": difference.mean().item(),
        "probability_difference_standard_error": (difference.std() / n**0.5).item() if n > 1 else None,
        "cutoff_sharpness": sharpness.mean().item(),
        "cutoff_sharpness_standard_error": (sharpness.std() / n**0.5).item() if n > 1 else None,
        "chance_probability_difference": uniform.mean().item(),
        "restricted_softmax_probability_difference": restricted.mean().item(),
        "n_prompts": n,
        "n_nouns": len(nouns),
        "seed": cfg.seed,
    }


def paper_greater_than_behaviour(model: HookedTransformer, cfg: BehaviourConfig) -> dict:
    """GPT-2 on the paper's prompts "The war lasted from 17{YY} to 17" (docs/design.md §6.3), and on Hanna
    et al.'s prompts under their convention (`hanna`)."""
    texts = [PAPER_TEMPLATE.format(YY=f"{yy:02d}") for yy in range(100)]
    logits = last_token_logits(model, texts, cfg.batch_size)
    scores = greater_than_scores(logits, torch.arange(100), two_digit_token_ids(model.tokenizer))
    greater_than = {
        "template": PAPER_TEMPLATE,
        "probability_difference": scores["probability_difference"],
        "chance_probability_difference": scores["chance_probability_difference"],
        # Hanna et al.'s formulas on the paper's prompts: not comparable with their 0.817 / 0.060,
        # which `hanna` below measures on their own prompts.
        "full_softmax_probability_difference": scores["hanna_probability_difference"],
        "full_softmax_cutoff_sharpness": scores["hanna_cutoff_sharpness"],
        "chance_full_softmax_probability_difference": scores["chance_hanna_probability_difference"],
        "n_prompts": scores["n_prompts"],
    }
    return {"greater_than": greater_than, "hanna": hanna_greater_than_behaviour(model, cfg)}


def single_token_years(tokenizer: Any) -> dict[int, int]:
    """YY -> token id for each two-digit string "00".."99" that the tokenizer encodes as one token."""
    ids = {yy: tokenizer.encode(f"{yy:02d}", add_special_tokens=False) for yy in range(100)}
    return {yy: encoded[0] for yy, encoded in ids.items() if len(encoded) == 1}


def tokenizes_as_intended(tokenizer: Any, yy: int) -> bool:
    """Whether the paper's prompt for YY ends in the tokens " 17", "YY", " to", " 17"."""

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    century, year, to = encode(" 17"), encode(f"{yy:02d}"), encode(" to")
    if len(century) != 1 or len(year) != 1 or len(to) != 1:
        return False
    tokens = encode(PAPER_TEMPLATE.format(YY=f"{yy:02d}"))
    return tokens[-4:] == century + year + to + century


def supported_prompts(tokenizer: Any) -> tuple[list[int], dict[int, int]]:
    """(YY values of the metric's range whose prompt tokenizes as intended, YY -> answer token id)."""
    answers = single_token_years(tokenizer)
    years = [yy for yy in METRIC_YY if yy in answers and tokenizes_as_intended(tokenizer, yy)]
    return years, answers


def tokenizer_limited_greater_than(model: HookedTransformer, cfg: BehaviourConfig) -> dict[str, Any]:
    """The paper's greater-than probability difference on the prompts and answer tokens this tokenizer
    supports (module docstring, case 2)."""
    years, answers = supported_prompts(model.tokenizer)
    report: dict[str, Any] = {
        "template": PAPER_TEMPLATE,
        "metric": "probability difference over the single-token two-digit answers, on the prompts that "
        "tokenize as ' 17' + 'YY' (the paper's GPT-2 assumption)",
        "comparable_with_paper": False,
        "n_answer_tokens": len(answers),
        "n_prompts": len(years),
        "n_prompts_in_metric_range": len(METRIC_YY),
        "prompts_yy": years,
    }
    if not years or len(answers) < 2:
        report |= {
            "probability_difference": None,
            "chance_probability_difference": None,
            "reason": f"this tokenizer splits none of the paper's years as ' 17' + 'YY' with 'YY' one of "
            f"{len(answers)} single-token two-digit answers, so the task cannot be posed as in the paper",
        }
        return report
    texts = [PAPER_TEMPLATE.format(YY=f"{yy:02d}") for yy in years]
    logits = last_token_logits(model, texts, cfg.batch_size)
    present = sorted(answers)  # YY values with an answer token
    restricted = logits[:, torch.tensor([answers[yy] for yy in present])].softmax(-1)
    p = torch.zeros(len(years), 100)
    p[:, torch.tensor(present)] = restricted  # absent answers get no mass
    uniform = torch.zeros(len(years), 100)
    uniform[:, torch.tensor(present)] = 1 / len(present)
    yy = torch.tensor(years)
    difference, _ = per_prompt_greater_than(p, yy)
    chance, _ = per_prompt_greater_than(uniform, yy)
    report |= {
        "probability_difference": difference.mean().item(),
        "chance_probability_difference": chance.mean().item(),
    }
    if len(years) < len(METRIC_YY) or len(answers) < 100:
        report["note"] = (
            f"only {len(years)} of the {len(METRIC_YY)} prompts and {len(answers)} of the 100 answers are "
            "supported by this tokenizer; the value is not comparable with the paper's GPT-2 number"
        )
    return report


def hanna_or_reason(model: HookedTransformer, cfg: BehaviourConfig) -> dict[str, Any]:
    """Hanna et al.'s measurement where their prompts tokenize as they assume (century and two-digit
    tokens), else a null value with the tokenizer's reason."""
    try:
        return hanna_greater_than_behaviour(model, cfg)
    except (ValueError, TokenizerError) as error:  # their years do not split that way here
        return {"probability_difference": None, "comparable_with_paper": False, "reason": str(error)}


def pretrained_behaviour(model: HookedTransformer, cfg: BehaviourConfig) -> dict[str, Any]:
    """The paper's greater-than measurement where the tokenizer splits years as GPT-2's does, else
    what the tokenizer supports (module docstring)."""
    years, answers = supported_prompts(model.tokenizer)
    if len(answers) == 100 and len(years) == len(METRIC_YY):
        return paper_greater_than_behaviour(model, cfg)
    return {
        "greater_than": tokenizer_limited_greater_than(model, cfg),
        "hanna": hanna_or_reason(model, cfg),
    }
