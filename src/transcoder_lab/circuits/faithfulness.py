"""Faithfulness of a circuit by intervention: does the model do what the graph says?
(docs/design.md §5.7)

A circuit here is a set of transcoder-feature nodes (layer, position, feature) found for a root
(a feature's pre-activation or a logit difference, attribution.Root) on one prompt. Every
measurement edits the transcoders' activations in the spliced model with the errors of the
unedited reconstruction kept (`interventions.edited_root_values`), so the unedited run is the clean
run, and reads the root's value v·LN(x). Each runs twice: *frozen* (attention patterns and
LayerNorm scales held at the clean run's, the linearisation the attributions are exact in) and
*live* (the real model: attention and LayerNorm react).

The ablatable region: every feature that can reach the root, i.e. layers below the root's layer,
positions 1..root position. Position 0 (BOS) is left alone: its features are not about any token
of the prompt, and mean activations are taken over real tokens only.

`circuit_faithfulness`, step by step:
1. Attribution of every active feature of the region: its *total effect* on the root through the
   linearised model, from the direct effects of the prompt's full graph (A[t, s], source s on
   target t, full_graph.pullback_rows). Removing feature s removes A[t, s]
   from every active feature t's pre-activation, which changes t's activation by the same amount
   (ReLU in its active range), whose own effect is A[root, t] / z_t per unit; so the total effects
   T solve T = A[root, :] + T Q with Q[t, s] = A[t, s] / z_t (feature rows and columns only; the
   graph is a DAG, so I - Q is invertible): T = A[root, :] (I - Q)^-1 (`total_effects`).
2. Per-node rows: zero-ablate each active feature alone; its actual change of the root beside its
   predicted change -T (frozen and live). Over all of them: Spearman(predicted, actual); the
   least-squares slope of actual on predicted through the origin (1 when the linearisation is
   exact); precision@k, the share of the circuit's k features among the k largest |actual changes|.
3. Sufficiency and necessity, with mean ablation (each feature set to a mean activation the caller
   gives; the case studies take it over the real tokens of their prompts). With m(S) the root's
   value when every region feature outside S is mean-ablated, m(all) when all are and m(clean)
   when none are:
       sufficiency(S) = (m(keep S) - m(all)) / (m(clean) - m(all))   (share of the root recovered)
       necessity(S)   = (m(clean) - m(ablate S)) / (m(clean) - m(all)) (share lost)
4. Random baseline: the same for `n_random` sets of active region features of the circuit's size,
   drawn uniformly without replacement (seeded); their mean and the circuit's percentile among them
   (the share of random sets below it, ties counting half).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from transcoder_lab.circuits.attribution import AttributionContext, Root, feature_root
from transcoder_lab.circuits.full_graph import pullback_rows
from transcoder_lab.circuits.interventions import (
    _root_values,
    clean_state,
    edited_root_values,
    spearman,
)
from transcoder_lab.circuits.replacement import Replacement, spliceable

FeatureNode = tuple[int, int, int]  # (layer, position, feature)
_F64 = torch.float64
MODES = {"frozen": (True, True), "live": (False, False)}  # (freeze attention, freeze LayerNorm)


def in_region(root: Root, layer: int, position: int) -> bool:
    """Whether a feature at (layer, position) can reach the root (module docstring; BOS excluded)."""
    return layer < root.layer and 1 <= position <= root.position


@torch.no_grad()
def total_effects(
    ctx: AttributionContext, root: Root, candidates: Sequence[FeatureNode], batch_size: int = 256
) -> Float[Tensor, " n_features"]:
    """Step 1: each candidate feature's total effect on the root (module docstring). The direct
    effects A are rows of the prompt's full graph over the candidates as sources
    (full_graph.pullback_rows): the root's row, and the rows of the candidates above the lowest
    candidate layer (the lowest layer's features read no feature, so their rows of Q are zero)."""
    n = len(candidates)
    table = torch.tensor(list(candidates), dtype=torch.long).reshape(-1, 3)
    acts = torch.tensor([float(ctx.feature_acts[lay][pos, f]) for lay, pos, f in candidates], dtype=_F64)
    reading = [i for i, (lay, _, _) in enumerate(candidates) if lay > min(c[0] for c in candidates)]
    roots = [feature_root(ctx, lay, f, pos) for lay, pos, f in (candidates[i] for i in reading)] + [root]
    rows = torch.cat(
        [
            pullback_rows(ctx, roots[s : s + batch_size], table, acts)[0][:, :n]
            for s in range(0, len(roots), batch_size)
        ]
    ).cpu()
    q = torch.zeros(n, n, dtype=_F64)
    if reading:
        q[reading] = rows[:-1] / acts[reading, None]
    # T (I - Q) = a_root  <=>  (I - Q)^T T^T = a_root^T
    return torch.linalg.solve((torch.eye(n, dtype=_F64) - q).T, rows[-1])


def _masks(
    ctx: AttributionContext, root: Root, sets: Sequence[Sequence[FeatureNode]], keep: Sequence[bool]
) -> dict[int, Bool[Tensor, "rows pos d_sae"]]:
    """Per layer, which activations each row mean-ablates: with keep[r], every region feature
    outside sets[r]; without, the features of sets[r]."""
    masks = {}
    for layer, z in ctx.feature_acts.items():
        if layer >= root.layer:
            continue
        region = torch.zeros(z.shape, dtype=torch.bool, device=z.device)
        region[1 : root.position + 1] = True
        rows = []
        for nodes, keep_row in zip(sets, keep, strict=True):
            chosen = torch.zeros_like(region)
            for lay, pos, feature in nodes:
                if lay == layer:
                    chosen[pos, feature] = True
            rows.append(region & ~chosen if keep_row else chosen)
        masks[layer] = torch.stack(rows)
    return masks


@torch.no_grad()
def mean_ablated_values(
    model: HookedTransformer,
    transcoders: Replacement,
    ctx: AttributionContext,
    root: Root,
    sets: Sequence[Sequence[FeatureNode]],
    keep: Sequence[bool],
    means: Mapping[int, Tensor],
    frozen: Mapping[str, Tensor],
) -> Float[Tensor, " rows"]:
    """The root's value with each row's features mean-ablated (`_masks`)."""
    masks = _masks(ctx, root, sets, keep)

    def edit(layer: int, z: Tensor) -> Tensor:
        mask = masks.get(layer)
        if mask is None:
            return z
        return torch.where(mask, means[layer].to(z), z)

    return edited_root_values(model, spliceable(transcoders), ctx.tokens, root, len(sets), edit, frozen)


def percentile(value: float, baseline: Sequence[float]) -> float:
    """Share (in %) of `baseline` below `value`, ties counting half."""
    b = np.asarray(baseline, dtype=np.float64)
    return float(100 * ((b < value).sum() + 0.5 * (b == value).sum()) / len(b))


def _share(numerator: float, denominator: float) -> float | None:
    # a root the region's features do not move has no share to recover or lose
    return numerator / denominator if abs(denominator) > 1e-9 else None


def sufficiency_necessity(
    model: HookedTransformer,
    transcoders: Replacement,
    ctx: AttributionContext,
    root: Root,
    circuit: Sequence[FeatureNode],
    candidates: Sequence[FeatureNode],
    means: Mapping[int, Tensor],
    frozen: Mapping[str, Tensor],
    n_random: int,
    seed: int,
) -> dict[str, Any]:
    """Steps 3-4 in one mode (`frozen`: the clean state held fixed, or {} for live)."""
    generator = np.random.default_rng(seed)
    size = min(len(circuit), len(candidates))
    randoms = [
        [candidates[i] for i in generator.choice(len(candidates), size=size, replace=False)]
        for _ in range(n_random)
    ]
    sets = [[], []] + [circuit, circuit] + [s for r in randoms for s in (r, r)]
    keep = [True, False] * (len(sets) // 2)  # keep nothing = all ablated; ablate nothing = clean
    values = mean_ablated_values(model, transcoders, ctx, root, sets, keep, means, frozen).tolist()
    ablated_all, clean = values[0], values[1]
    span = clean - ablated_all

    def scores(keep_value: float, ablate_value: float) -> tuple[float | None, float | None]:
        return _share(keep_value - ablated_all, span), _share(clean - ablate_value, span)

    sufficiency, necessity = scores(values[2], values[3])
    random_scores = [scores(values[4 + 2 * i], values[5 + 2 * i]) for i in range(n_random)]
    out: dict[str, Any] = {"clean": clean, "all_ablated": ablated_all}
    for index, (name, value) in enumerate((("sufficiency", sufficiency), ("necessity", necessity))):
        baseline = [s[index] for s in random_scores if s[index] is not None]
        out[name] = value
        out[f"random_{name}"] = {
            "n_sets": len(baseline),
            "set_size": size,
            "mean": float(np.mean(baseline)) if baseline else None,
            "p95": float(np.percentile(baseline, 95)) if baseline else None,
            "percentile_of_circuit": percentile(value, baseline) if baseline and value is not None else None,
        }
    return out


def _slope(predicted: Sequence[float], actual: Sequence[float]) -> float | None:
    p, a = np.asarray(predicted), np.asarray(actual)
    denominator = float((p * p).sum())
    return float((p * a).sum() / denominator) if denominator > 0 else None


def precision_at_k(actual: Sequence[float], in_circuit: Sequence[bool]) -> float | None:
    """Share of the k circuit features among the k largest |actual change| (k = circuit size)."""
    k = int(sum(in_circuit))
    if k == 0:
        return None
    top = np.argsort(-np.abs(np.asarray(actual)), kind="stable")[:k]
    return float(np.asarray(in_circuit)[top].sum() / k)


@torch.no_grad()
def circuit_faithfulness(
    model: HookedTransformer,
    transcoders: Replacement,
    tokens: Int[Tensor, " pos"],
    root: Root,
    circuit: Sequence[FeatureNode],
    means: Mapping[int, Tensor],
    n_random: int = 20,
    seed: int = 0,
    per_node: bool = True,
    batch_size: int = 64,
    max_per_node: int | None = None,
) -> dict[str, Any]:
    """Steps 1-4 of the module docstring on one prompt, frozen and live. `circuit`: the circuit's
    feature nodes (those outside the region are dropped: they cannot reach the root); `per_node`:
    also step 1-2's per-node rows (one pullback and one run per active feature; skipped, with the
    reason recorded, above `max_per_node` active features)."""
    tcs = spliceable(transcoders)  # what the interventions splice: the transcoders, or the CLT
    ctx = AttributionContext.from_tokens(model, transcoders, tokens)
    candidates = [
        (layer, int(pos), int(f))
        for layer, z in sorted(ctx.feature_acts.items())
        for pos, f in (z > 0).nonzero().tolist()
        if in_region(root, layer, int(pos))
    ]
    kept = sorted({node for node in circuit if in_region(root, node[0], node[1])})
    out: dict[str, Any] = {
        "root": root.label,
        "n_circuit_features": len(kept),
        "n_active_features": len(candidates),
    }
    states = {
        mode: clean_state(model, tcs, ctx.tokens, attention, ln) for mode, (attention, ln) in MODES.items()
    }
    for mode, frozen in states.items():
        out[mode] = sufficiency_necessity(
            model, transcoders, ctx, root, kept, candidates, means, frozen, n_random, seed
        )
    if not per_node or not candidates:
        return out
    if max_per_node is not None and len(candidates) > max_per_node:  # one run per feature: say why not
        out["per_node_skipped"] = f"{len(candidates)} active features > max_per_node = {max_per_node}"
        return out
    attribution = total_effects(ctx, root, candidates).tolist()
    predicted = [-value for value in attribution]
    in_circuit = [node in set(kept) for node in candidates]
    rows: list[dict[str, Any]] = [
        {
            "label": f"tc{lay}[{f}]@{pos}",
            "layer": lay,
            "position": pos,
            "feature": f,
            "activation": float(ctx.feature_acts[lay][pos, f]),
            "in_circuit": member,
            "attribution": value,
        }
        for (lay, pos, f), member, value in zip(candidates, in_circuit, attribution, strict=True)
    ]
    for mode, frozen in states.items():
        clean = float(_root_values(model, tcs, ctx.tokens, root, [], frozen)[0])
        actual: list[float] = []
        for start in range(0, len(candidates), batch_size):
            chunk = candidates[start : start + batch_size]
            actual += (_root_values(model, tcs, ctx.tokens, root, chunk, frozen) - clean).tolist()
        for row, change in zip(rows, actual, strict=True):
            row[f"actual_change_{mode}"] = change
        out[mode] |= {
            "spearman": spearman(predicted, actual),
            "slope": _slope(predicted, actual),
            "precision_at_k": precision_at_k(actual, in_circuit),
        }
    out["nodes"] = rows
    return out


def summarise(values: Sequence[float | None]) -> dict[str, Any]:
    """Median and interquartile range of the defined values, and how many there were."""
    defined = [v for v in values if v is not None and np.isfinite(v)]
    if not defined:
        return {"n": 0, "median": None, "q25": None, "q75": None}
    q25, median, q75 = np.percentile(defined, [25, 50, 75])
    return {"n": len(defined), "median": float(median), "q25": float(q25), "q75": float(q75)}


__all__ = [
    "FeatureNode",
    "MODES",
    "circuit_faithfulness",
    "in_region",
    "mean_ablated_values",
    "percentile",
    "precision_at_k",
    "sufficiency_necessity",
    "summarise",
    "total_effects",
]
