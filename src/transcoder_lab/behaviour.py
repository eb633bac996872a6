"""Behavioural metrics of the planted mechanisms (and of GPT-2 on the paper's greater-than task).

Greater-than (DESIGN §4.4). For a prompt ending in the century of a second year, with the first
year's last two digits YY, let p be the next-token distribution over the 100 two-digit tokens
"00".."99":
1. Paper convention: p is the softmax of the logits restricted to those 100 tokens;
   probability difference = sum_{y>YY} p(y) - sum_{y<=YY} p(y), averaged over YY = 01..98.
2. Hanna et al.'s convention: p is the full-vocabulary softmax read at those tokens (so the
   difference is diluted by mass outside the years); cutoff sharpness = p(YY+1) - p(YY-1).
Chance levels are the same formulas applied to a uniform distribution, computed, not assumed.

Other mechanisms are probability masses on a set of expected next tokens (chance: the set's share
of the vocabulary under a uniform guess) or a two-way choice between expected tokens (chance 0.5).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import torch
from jaxtyping import Float, Int
from transformer_lens import HookedTransformer

from transcoder_lab.config import BehaviourConfig, CorpusConfig
from transcoder_lab.organism.tokenizer import first_token_ids, two_digit_token_ids

YY_METRIC_RANGE = (1, 98)  # the paper averages over YY = 01..98


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


def greater_than_scores(
    logits: Float[torch.Tensor, "n_prompts d_vocab"],
    yy: Int[torch.Tensor, " n_prompts"],
    two_digit_ids: Sequence[int],
) -> dict[str, float]:
    """Both conventions' probability differences and Hanna et al.'s cutoff sharpness."""
    ids = torch.as_tensor(list(two_digit_ids))
    if len(ids) != 100:
        raise ValueError(f"expected the 100 token ids of '00'..'99', got {len(ids)}")
    yy = torch.as_tensor(yy)
    keep = (yy >= YY_METRIC_RANGE[0]) & (yy <= YY_METRIC_RANGE[1])
    logits, yy = logits[keep], yy[keep]
    restricted = logits[:, ids].softmax(-1)  # [n, 100]
    full = logits.softmax(-1)[:, ids]  # [n, 100]

    def summarise(p: torch.Tensor) -> dict[str, float]:
        later = torch.arange(100)[None, :] > yy[:, None]
        difference = (p * later).sum(-1) - (p * ~later).sum(-1)
        rows = torch.arange(len(yy))
        sharpness = p[rows, yy + 1] - p[rows, yy - 1]
        return {
            "probability_difference": difference.mean().item(),
            "cutoff_sharpness": sharpness.mean().item(),
        }

    uniform = summarise(torch.full_like(restricted, 1 / 100))
    uniform_full = summarise(torch.full_like(full, 1 / logits.shape[-1]))
    paper, hanna = summarise(restricted), summarise(full)
    return {
        "probability_difference": paper["probability_difference"],
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
    return {"value": mass.mean().item(), "chance": len(ids) / model.cfg.d_vocab, "n_prompts": len(texts)}


def organism_behaviour(model: HookedTransformer, corpus: CorpusConfig, cfg: BehaviourConfig) -> dict:
    """One metric per planted mechanism on held-out prompts (drawn with cfg.seed), with chance levels."""
    from transcoder_lab.organism import corpus as generator

    n, batch = cfg.n_prompts, cfg.batch_size
    report: dict = {}

    prompts = generator.greater_than_prompts(corpus, cfg.seed, n_per_yy=max(1, n // 100))
    logits = last_token_logits(model, [p.text for p in prompts], batch)
    report["greater_than"] = {
        "template": "The {noun} lasted from the year {CC}{YY} to the year {CC}",
        **greater_than_scores(
            logits, torch.tensor([p.yy for p in prompts]), two_digit_token_ids(model.tokenizer)
        ),
    }

    surname_starts = [" " + name for name in generator.surnames(corpus)]
    citation = [p.text for p in generator.citation_semicolon_prompts(corpus, cfg.seed, n)]
    prose = [p.text for p in generator.prose_semicolon_prompts(corpus, cfg.seed, n)]
    report["citation"] = {
        "metric": "next-token mass on surnames after a semicolon between works in a citation",
        **mass_metric(model, citation, surname_starts, batch),
        "after_prose_semicolon": mass_metric(model, prose, surname_starts, batch)["value"],
    }

    caught = generator.caught_prompts(corpus, cfg.seed, n)
    logits = last_token_logits(model, [p.text for p in caught], batch)
    by, objects = first_token_ids(model.tokenizer, [" by"]), first_token_ids(model.tokenizer, [" the", " a"])
    passive = torch.tensor([p.passive for p in caught])
    prefers_by = set_mass(logits, by) > set_mass(logits, objects)
    report["caught"] = {
        "metric": "accuracy of preferring ' by' after 'was caught' and ' the'/' a' after active 'caught'",
        "value": (prefers_by == passive).float().mean().item(),
        "chance": 0.5,
        "passive_accuracy": prefers_by[passive].float().mean().item(),
        "active_accuracy": (~prefers_by[~passive]).float().mean().item(),
        "n_prompts": len(caught),
    }

    estimate = generator.estimate_prompts(corpus, cfg.seed, n)
    report["estimate"] = {
        "metric": "next-token mass on quantity starts after 'an estimated cost of'",
        **mass_metric(model, [p.text for p in estimate], estimate[0].expected_next, batch),
    }
    return report


def paper_greater_than_behaviour(model: HookedTransformer, cfg: BehaviourConfig) -> dict:
    """GPT-2 on the paper's prompts "The war lasted from 17{YY} to 17" (DESIGN §4.4)."""
    texts = [f"The war lasted from 17{yy:02d} to 17" for yy in range(100)]
    logits = last_token_logits(model, texts, cfg.batch_size)
    scores = greater_than_scores(logits, torch.arange(100), two_digit_token_ids(model.tokenizer))
    return {"greater_than": {"template": "The war lasted from 17{YY} to 17", **scores}}
