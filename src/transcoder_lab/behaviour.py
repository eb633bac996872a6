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
from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from transformer_lens import HookedTransformer

YY_METRIC_RANGE = (1, 98)  # the paper averages over YY = 01..98


@torch.no_grad()
def last_token_logits(
    model: HookedTransformer, texts: Sequence[str], batch_size: int = 64
) -> Float[torch.Tensor, "n_prompts d_vocab"]:
    """Next-token logits after each text (BOS prepended); prompts batched by token length, no padding."""
    token_lists = [model.to_tokens(text)[0] for text in texts]
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, tokens in enumerate(token_lists):
        by_length[len(tokens)].append(index)
    out = torch.empty(len(texts), model.cfg.d_vocab)
    for indices in by_length.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = torch.stack([token_lists[i] for i in chunk]).to(model.cfg.device)
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
        return {"probability_difference": difference.mean().item(), "cutoff_sharpness": sharpness.mean().item()}

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
