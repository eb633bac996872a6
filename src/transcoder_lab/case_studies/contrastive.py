"""Contrastive case studies: a feature root on matched prompt pairs that differ only at the planted
context (docs/design.md §6.5). The result's `contrastive` entry, beside `ground_truth`.

`contrastive_check` (organism feature studies with `context_labels` and `neutral_token`):
1. Matched pairs (`matched_pair`): each study prompt (cut from the corpus, with labels) that has a
   token with one of the context labels before its last token, paired with the same prompt where
   every such token is the neutral token: same length and positions, differing only at the planted
   context (passive vs active "caught", citation vs prose semicolon context, ...).
2. Attribution of the difference: the root (its feature's pre-activation at the last token, which
   `attribute` splits exactly) attributed directly on both prompts; each term placed at the position
   it comes from (attention-head terms at their source position; embedding, feature, error, skip
   and MLP terms at the root's own position; the output biases at none, kept as `unplaced`); the
   difference original - neutral per position, and the share of root(original) - root(neutral)
   at the context positions (`attributed_context_share`).
3. Patching the difference (`patched_drops`): for every layer l up to the root's, the neutral
   prompt's `blocks.l.hook_resid_pre` patched into the run on the original prompt at one position p
   (each p up to the last), at all context positions together, and at every position; the root's
   drop root(original) - root(patched) as a share of root(original) - root(neutral). One batched
   forward per layer. Layer 0's resid_pre is the embeddings (token + position; the position
   embedding is the same in both prompts), so it is also the embedding patch, where every path from
   a position starts; there, patching every position reproduces the neutral run (share 1), and so
   does patching the context positions. At the root's layer, the context positions' share is what
   the root's own attention still reads from them: `patched_context_share`.
4. Summaries over pairs (median, IQR: circuits.faithfulness.summarise) and the number of pairs.
Verdict, against a bar fixed before the run (config.FaithfulnessConfig, reused): the median patched
context share at the root's layer at least `min_context_loss`. The attributed share stands beside it
without a bar. (No per-position rank test against the layer-0 patch: the two prompts differ only at
the context, so patching any other position there changes nothing, and such a ranking would rank
float noise.) A pair whose difference is under `MIN_DIFFERENCE` has undefined shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from transcoder_lab.case_studies.common import LabelledTokens, Prompt, context_positions
from transcoder_lab.circuits import AttributionContext, attribute, feature_root
from transcoder_lab.circuits.faithfulness import summarise
from transcoder_lab.config import FaithfulnessConfig
from transcoder_lab.dictionaries import Dictionary
from transcoder_lab.sources.hooks import mlp_in_hook

OK, BELOW = "ok", "BELOW"
MIN_DIFFERENCE = 1e-6  # |root(original) - root(neutral)| below this: the pair's shares are undefined


def matched_pair(
    prompt: Prompt, context_ids: Tensor, neutral_token: int
) -> tuple[Int[Tensor, " pos"], list[int]] | None:
    """Step 1: the neutral prompt and the context positions (before the last token), or None."""
    context = context_positions(prompt, context_ids)
    if not context:
        return None
    neutral = prompt.tokens.clone()
    neutral[context] = neutral_token
    return neutral, context


@torch.no_grad()
def attributed_by_position(
    model: HookedTransformer, transcoders: dict[int, Dictionary], layer: int, feature: int, tokens: Tensor
) -> tuple[Float[Tensor, " pos"], float, float]:
    """Step 2 on one prompt: the root's direct attribution by source position, the unplaced bias
    terms, and the root's value (all terms and the bias sum to it)."""
    ctx = AttributionContext.from_tokens(model, transcoders, tokens)
    a = attribute(ctx, feature_root(ctx, layer, feature, ctx.n_pos - 1))
    by_position = a.heads.sum(dim=(0, 1)).cpu().clone()
    at_root = a.embedding + sum(float(f.sum()) for f in a.features.values())
    at_root += sum(a.tc_errors.values()) + sum(a.skips.values()) + sum(a.mlps.values())
    by_position[-1] += at_root
    return by_position, a.bias, a.value


@torch.no_grad()
def patched_drops(
    model: HookedTransformer,
    transcoder: Dictionary,
    feature: int,
    original: Int[Tensor, " pos"],
    neutral: Int[Tensor, " pos"],
    context: list[int],
) -> dict[str, Any]:
    """Step 3: the root's pre-activation on both prompts and, for every layer up to the root's,
    its drop when the neutral resid_pre replaces the original's at each position (rows 0..t), at the
    context positions (row t+1) and at every position (row t+2)."""
    layer, n_pos, device = transcoder.spec.layer, len(original), model.cfg.device
    read = mlp_in_hook(layer)

    def root(tokens: Tensor, hooks: list | None = None) -> Float[Tensor, " batch"]:
        with model.hooks(fwd_hooks=hooks or []):
            _, cache = model.run_with_cache(
                tokens.to(device), names_filter=lambda name: name == read, stop_at_layer=layer + 1
            )
        return transcoder.pre_activations(cache[read][:, -1].to(transcoder.dtype))[:, feature].double().cpu()

    names = [f"blocks.{i}.hook_resid_pre" for i in range(layer + 1)]
    _, neutral_cache = model.run_with_cache(
        neutral[None].to(device), names_filter=lambda name: name in names, stop_at_layer=layer + 1
    )
    clean, without = float(root(original[None])[0]), float(root(neutral[None])[0])
    mask = torch.zeros(n_pos + 2, n_pos, dtype=torch.bool)
    mask[torch.arange(n_pos), torch.arange(n_pos)] = True
    mask[n_pos, context] = True
    mask[n_pos + 1] = True
    batch = original[None].expand(n_pos + 2, -1)
    drops = torch.zeros(layer + 1, n_pos + 2, dtype=torch.float64)
    for index, name in enumerate(names):
        patch = neutral_cache[name][0]

        def hook(resid: Tensor, hook, patch: Tensor = patch) -> Tensor:
            m = mask.to(resid.device)[..., None]
            return torch.where(m, patch[None].to(resid.dtype), resid)

        drops[index] = clean - root(batch, [(name, hook)])
    return {"original": clean, "neutral": without, "drops": drops}


def _share(value: float, difference: float) -> float | None:
    return value / difference if abs(difference) >= MIN_DIFFERENCE else None


def contrastive_pair(
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    layer: int,
    feature: int,
    original: Tensor,
    neutral: Tensor,
    context: list[int],
) -> dict[str, Any]:
    """Steps 2-4 on one matched pair."""
    attributed, bias, value = attributed_by_position(model, transcoders, layer, feature, original)
    attributed_n, bias_n, value_n = attributed_by_position(model, transcoders, layer, feature, neutral)
    attributed_diff = attributed - attributed_n
    patched = patched_drops(model, transcoders[layer], feature, original, neutral, context)
    difference = patched["original"] - patched["neutral"]
    drops, n_pos = patched["drops"], len(original)
    layer0 = drops[0, :n_pos]
    return {
        "n_pos": n_pos,
        "context_positions": context,
        "difference": difference,
        "attributed_difference": value - value_n,  # the attribution's value: the same, up to float error
        "unplaced_bias_difference": bias - bias_n,
        "attributed_by_position": [round(float(x), 6) for x in attributed_diff],
        "patched_layer0_by_position": [round(float(x), 6) for x in layer0],
        "attributed_context_share": _share(float(attributed_diff[context].sum()), difference),
        "patched_context_share_by_layer": [_share(float(d), difference) for d in drops[:, n_pos]],
        "patched_all_share_by_layer": [_share(float(d), difference) for d in drops[:, n_pos + 1]],
    }


def contrastive_check(
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    layer: int,
    feature: int,
    prompts: Sequence[Prompt],
    heldout: LabelledTokens,
    context_labels: list[str],
    neutral_token: int,
    bars: FaithfulnessConfig,
) -> dict[str, Any]:
    """Steps 1-5 and the verdict of the module docstring (the result's `contrastive`)."""
    context_ids = torch.tensor(heldout.label_ids(context_labels))
    pairs = []
    for prompt in prompts:
        matched = matched_pair(prompt, context_ids, neutral_token)
        if matched is not None:
            neutral, context = matched
            pairs.append(
                contrastive_pair(model, transcoders, layer, feature, prompt.tokens, neutral, context)
            )
    attributed = summarise([p["attributed_context_share"] for p in pairs])
    patched = summarise([p["patched_context_share_by_layer"][-1] for p in pairs])
    passed = patched["median"] is not None and patched["median"] >= bars.min_context_loss
    return {
        "context_labels": context_labels,
        "n_pairs": len(pairs),
        "difference": summarise([p["difference"] for p in pairs]),
        "attributed_context_share": attributed,
        "patched_context_share_at_root_layer": patched,
        "patched_context_share_by_layer": [
            summarise([p["patched_context_share_by_layer"][i] for p in pairs]) for i in range(layer + 1)
        ],
        "bars": {"min_context_loss": bars.min_context_loss},
        "verdict": OK if passed else BELOW,
        "pairs": pairs,
    }


def describe_contrastive(contrastive: dict[str, Any]) -> str:
    """The verdict as one Markdown line (for notebooks and logs)."""

    def shown(summary: dict[str, Any]) -> str:
        return "undefined" if summary["median"] is None else f"{summary['median']:.2f}"

    c, bars = contrastive, contrastive["bars"]
    return (
        f"- contrastive pairs ({', '.join(c['context_labels'])} vs neutral, {c['n_pairs']} pairs): "
        f"attributed context share {shown(c['attributed_context_share'])}, patched context share at "
        f"the root's layer {shown(c['patched_context_share_at_root_layer'])} "
        f"(bar {bars['min_context_loss']:g}): **{c['verdict']}**"
    )
