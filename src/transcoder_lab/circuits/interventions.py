"""Faithfulness of attribution graphs: ablate each kept feature and measure the root (docs/design.md §5.7).

`verify_graph`, step by step:

1. Splice every transcoder into the model with its error kept (`evaluation.spliced`,
   `keep_error=True`), so the unedited run is the clean run.
2. Clean reference: one run caching the attention patterns (`blocks.L.attn.hook_pattern`), the
   LayerNorm scales and the root's value v·LN(x) at the root's token, read at the LayerNorm that
   reads the root's point (ln1 / ln2 of its layer, ln_final for the final residual). For a feature
   root this is its pre-activation minus its effective bias; for a logit-difference root the logit
   difference minus the unembedding-bias difference (the offsets cancel in a difference anyway).
3. For each transcoder-feature node of the graph, zero-ablate that feature at its token
   (`edit_features`); all ablations run as one batch, one row per node. With
   `freeze_attention=True` every attention pattern is replaced by the clean one; with
   `freeze_ln=True` every LayerNorm scale too (then the model is linear from the ablated feature
   to the root apart from later transcoders' activations and errors, which follow the real run).
   The actual change is the root's value in that row minus the clean value.
4. Prediction. A node's attribution is its *total effect in the graph*: the node's total
   (value + offset) in the root's units, i.e. the sum over every kept path from it to the root
   (`Node.total`, equal to the sum of its out-edges). Ablating a feature removes it, so the
   predicted change is -attribution. The direct attribution (the feature's term in the root's own
   decomposition) is reported beside it.
5. Report per node (label, attribution, direct attribution, predicted and actual change), the
   Spearman rank correlation between predicted and actual change (ties get average ranks;
   Pearson correlation of the ranks), and the fraction of the root's value the graph explains.

Exactness: with patterns and LN scales frozen, for a feature whose only route to the root lies in
the graph (e.g. layer L-1 features below a resid_mid L root, with its paths through every head of
attention L at its token kept), the actual change equals -attribution to float precision (tested).
Without frozen LN scales the LN that reads the root rescales the ablated value by σ/σ' (σ' the
scale of the ablated residual; the relative change of σ is about x_c·δ/|x_c|^2 for a residual
change δ, first order in δ), so attribution and actual change agree only to that factor (tested
exactly for last-layer features under a logit root). Note also that `spliced` recomputes each
later transcoder's error from the run's own MLP input, so later real MLPs react to an ablation
through their errors, which attribution treats as fixed leaves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from transcoder_lab.circuits.attribution import AttributionContext, Root, attribute
from transcoder_lab.circuits.beam_search import Graph, fraction_explained
from transcoder_lab.circuits.replacement import Replacement, spliceable
from transcoder_lab.dictionaries import Dictionary
from transcoder_lab.dictionaries.crosslayer import CrossLayerTranscoder
from transcoder_lab.dictionaries.evaluation import FeatureEdit, spliced


def average_ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the average of the ranks they span."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    _, group, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(group, weights=ranks) / counts)[group]


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation (nan with fewer than 2 points or a constant input)."""
    if len(a) != len(b):
        raise ValueError(f"spearman needs two sequences of one length; got {len(a)} and {len(b)}")
    if len(a) < 2:
        return float("nan")
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def root_reader(model: HookedTransformer, root: Root) -> str:
    """The hook holding LN(x) at the root's point."""
    if root.sublayer == "resid_pre":
        return (
            "ln_final.hook_normalized"
            if root.layer == model.cfg.n_layers
            else f"blocks.{root.layer}.ln1.hook_normalized"
        )
    return f"blocks.{root.layer}.ln2.hook_normalized"


def _frozen(value: Tensor):
    return lambda activation, hook: value.to(activation.dtype).expand_as(activation)


@torch.no_grad()
def clean_state(
    model: HookedTransformer,
    transcoders: Sequence[Dictionary | CrossLayerTranscoder],
    tokens: Int[Tensor, " pos"],
    freeze_attention: bool,
    freeze_ln: bool,
) -> dict[str, Tensor]:
    """Step 2's cache: the clean run's attention patterns and/or LayerNorm scales ([1, ...], so
    they broadcast over a batch of edited rows), to hold fixed in the edited runs."""
    n = model.cfg.n_layers
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(n)] if freeze_attention else []
    if freeze_ln:
        names += [f"blocks.{layer}.{ln}.hook_scale" for layer in range(n) for ln in ("ln1", "ln2")]
        names.append("ln_final.hook_scale")
    if not names:
        return {}
    with spliced(model, list(transcoders), keep_error=True):
        _, cache = model.run_with_cache(
            tokens.to(model.cfg.device)[None], names_filter=lambda name: name in names
        )
    return {name: cache[name] for name in names}


@torch.no_grad()
def edited_root_values(
    model: HookedTransformer,
    transcoders: Sequence[Dictionary | CrossLayerTranscoder],
    tokens: Int[Tensor, " pos"],
    root: Root,
    n_rows: int,
    edit: FeatureEdit | None,
    frozen: Mapping[str, Tensor],
) -> Float[Tensor, " rows"]:
    """v·LN(x) at the root in `n_rows` copies of the prompt run at once, each transcoder's
    activations edited by `edit` (row r of z is row r's edit; the errors of the unedited
    reconstruction kept, `spliced(keep_error=True)`), with the `frozen` activations held fixed."""
    batch = tokens.to(model.cfg.device)[None].expand(max(1, n_rows), -1)
    out: dict[str, Tensor] = {}

    def read(activation: Tensor, hook) -> None:
        out["ln"] = activation[:, root.position].double()

    hooks = [(name, _frozen(value)) for name, value in frozen.items()]
    hooks.append((root_reader(model, root), read))
    # blocks above the root's layer cannot change it: stop there (the root reads LN1 or LN2 of
    # block root.layer, or the final LayerNorm when root.layer = n_layers)
    stop = root.layer + 1 if root.layer < model.cfg.n_layers else None
    with spliced(model, list(transcoders), keep_error=True, edit_features=edit), model.hooks(fwd_hooks=hooks):
        model(batch, stop_at_layer=stop)
    return out["ln"] @ root.vector.to(out["ln"].device, torch.float64)


def _root_values(
    model: HookedTransformer,
    transcoders: Sequence[Dictionary | CrossLayerTranscoder],
    tokens: Int[Tensor, " pos"],
    root: Root,
    ablations: Sequence[tuple[int, int, int]],
    frozen: Mapping[str, Tensor],
) -> Float[Tensor, " rows"]:
    """v·LN(x) at the root for one run per ablation (layer, position, feature); () = no ablation."""
    by_layer: dict[int, tuple[list[int], list[int], list[int]]] = {}
    for row, (layer, position, feature) in enumerate(ablations):
        for target, value in zip(
            by_layer.setdefault(layer, ([], [], [])), (row, position, feature), strict=True
        ):
            target.append(value)

    def edit(layer: int, z: Tensor) -> Tensor:
        if layer not in by_layer:
            return z
        z = z.clone()
        rows_, positions, features = (torch.tensor(v, device=z.device) for v in by_layer[layer])
        z[rows_, positions, features] = 0.0
        return z

    return edited_root_values(model, transcoders, tokens, root, len(ablations), edit, frozen)


@torch.no_grad()
def verify_graph(
    model: HookedTransformer,
    transcoders: Replacement,
    tokens: Int[Tensor, " pos"],
    root: Root,
    graph: Graph,
    freeze_attention: bool = True,
    freeze_ln: bool = False,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Ablate every feature node of `graph` and compare with its attribution (module docstring)."""
    tcs = spliceable(transcoders)
    tokens = torch.as_tensor(tokens)
    tokens = tokens[0] if tokens.ndim == 2 else tokens
    root_position = root.position % len(tokens)
    if root_position != root.position:
        root = Root(root.layer, root.sublayer, root_position, root.vector, root.label, root.offset)

    frozen = clean_state(model, tcs, tokens, freeze_attention, freeze_ln)
    clean = float(_root_values(model, tcs, tokens, root, [], frozen)[0])

    features = [node for node in graph.nodes.values() if node.kind == "feature"]
    direct = attribute(AttributionContext.from_tokens(model, transcoders, tokens), root) if features else None
    actual: list[float] = []
    for start in range(0, len(features), batch_size):
        chunk = [(int(f.layer), int(f.position), int(f.index)) for f in features[start : start + batch_size]]
        actual += (_root_values(model, tcs, tokens, root, chunk, frozen) - clean).tolist()

    rows = []
    for node, change in zip(features, actual, strict=True):
        direct_value = (
            float(direct.features[node.layer][node.index])
            if node.position == root.position and node.layer in direct.features
            else 0.0
        )
        rows.append(
            {
                "label": node.node_id,
                "layer": int(node.layer),
                "feature": int(node.index),
                "position": int(node.position),
                "activation": node.activation,
                "attribution": node.total,  # total effect through the graph, root's units
                "direct_attribution": direct_value,
                "predicted_change": -node.total,
                "actual_change": change,
            }
        )
    predicted = [row["predicted_change"] for row in rows]
    return {
        "root": root.label,
        "clean_value": clean,
        "freeze_attention": freeze_attention,
        "freeze_ln": freeze_ln,
        "nodes": rows,
        "spearman": spearman(predicted, actual),
        "spearman_direct": spearman([-row["direct_attribution"] for row in rows], actual),
        "fraction_explained": fraction_explained(graph),
    }


__all__ = [
    "FeatureEdit",
    "average_ranks",
    "clean_state",
    "edited_root_values",
    "root_reader",
    "spearman",
    "verify_graph",
]
