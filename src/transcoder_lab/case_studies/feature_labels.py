"""Every feature's ground-truth label and top held-out contexts, for the attribution-graph viewer
(organism profiles, whose corpus labels every token).

`heldout_feature_labels(model, transcoders, tokens, rule)`, over the labelled held-out contexts
(`common.labelled_heldout`; BOS tokens are not counted, as in the blind study's scan):

1. One model pass per batch of contexts keeps the MLP input of every feature layer (the layers of
   per-layer transcoders, or every layer of a cross-layer transcoder, whose layer l encodes as its
   `encode_layer` does: `replacement.CrossLayerSlice`).
2. Per feature layer (`label_layer`), two encodes of those inputs in chunks of contexts:
   a. each feature's largest activation over counted tokens, and its `n_examples` top contexts:
      per context the largest activation and its position, the running top-k kept over chunks;
   b. active tokens by the ground-truth rater's rule (`organism.ground_truth` step 1: > 0 and >
      `active_fraction` of that largest activation), counted per label for all features at once
      as one product `active^T @ one_hot(labels)` [d_sae, n_labels], with each feature's count of
      active tokens; and the activations in a window of `window` tokens around each top example's
      position (the window starts `window - 1 - after` tokens before it, moved right or left to
      stay inside the context, never on BOS).
3. Each feature's best label or label family and its F1 (`organism.ground_truth` steps 2-4, the
   rater's definition, with its `exclude_labels`), shown as the feature's clerp
   (`FeatureLabels.clerp`: "citation/semicolon 0.93"), and its top contexts as the viewer's
   feature file (`FeatureLabels.viewer_files`, through `graph_files.examples_file`).
Two encodes, not one, since the active threshold depends on the largest activation over every
token; the MLP inputs (d_model per token) are what is kept between them, not the d_sae features.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from transcoder_lab.case_studies.common import LabelledTokens
from transcoder_lab.circuits.circuit_tracer.graph_files import examples_file
from transcoder_lab.circuits.replacement import Replacement, feature_layers
from transcoder_lab.config import GroundTruthRaterConfig
from transcoder_lab.data import BOS_LABEL
from transcoder_lab.organism.ground_truth import (
    NO_LABEL,
    LabelCandidates,
    active_tokens,
    best_labels,
    label_candidates,
)
from transcoder_lab.sources.hooks import mlp_in_hook

N_EXAMPLES = 5  # top contexts per feature
WINDOW, AFTER = 16, 4  # tokens shown per context, of which after the centred one
EXAMPLES_TITLE = "Top held-out activations"


@dataclass
class LayerLabels:
    """Step 2-3's results for one feature layer's d_sae features."""

    label: Int[Tensor, " d_sae"]  # index into `FeatureLabels.candidates.names`, or NO_LABEL
    f1: Float[Tensor, " d_sae"]  # the best label's F1 (0 without one)
    n_active: Int[Tensor, " d_sae"]  # counted tokens where the feature is active
    max_act: Float[Tensor, " d_sae"]  # largest activation over counted tokens
    example_context: Int[Tensor, "d_sae k"]  # row of the top contexts, largest first
    example_position: Int[Tensor, "d_sae k"]  # its largest activation's position
    example_act: Float[Tensor, "d_sae k"]  # that activation (0: no example)
    window_start: Int[Tensor, "d_sae k"]  # first position of the example's window
    window_acts: Float[Tensor, "d_sae k window"]  # the feature's activations on the window


@dataclass
class FeatureLabels:
    """Every feature's label and top contexts, per feature layer (`heldout_feature_labels`)."""

    tokens: LabelledTokens
    candidates: LabelCandidates
    layers: dict[int, LayerLabels]

    def label_of(self, layer: int, index: int) -> tuple[str | None, float]:
        """(best label or family, its F1); None and 0 without one."""
        result = self.layers[layer]
        best = int(result.label[index])
        return (None, 0.0) if best == NO_LABEL else (self.candidates.names[best], float(result.f1[index]))

    def clerp(self, layer: int, index: int) -> str:
        """The feature's short label: "<best label> <F1>", or why it has none."""
        label, score = self.label_of(layer, index)
        if label is not None:
            return f"{label} {score:.2f}"
        return "no label" if int(self.layers[layer].n_active[index]) else "never active"

    def clerps(self, features: Iterable[tuple[int, int]] | None = None) -> dict[tuple[int, int], str]:
        """`clerp` of each (layer, index) of `features` (default: every feature of every layer)."""
        if features is None:
            features = [(layer, i) for layer, result in self.layers.items() for i in range(len(result.f1))]
        return {(layer, index): self.clerp(layer, index) for layer, index in features}

    def examples(self, layer: int, index: int) -> list[tuple[list[int], list[float], int]]:
        """The feature's top contexts, largest first: (window's token ids, its activations there,
        the centred token's index in the window)."""
        result = self.layers[layer]
        rows = []
        for k in range(result.example_act.shape[1]):
            if float(result.example_act[index, k]) <= 0:
                break
            row, start = int(result.example_context[index, k]), int(result.window_start[index, k])
            width = result.window_acts.shape[-1]
            ids = self.tokens.contexts[row, start : start + width].tolist()
            acts = result.window_acts[index, k].tolist()
            rows.append((ids, acts, int(result.example_position[index, k]) - start))
        return rows

    def viewer_files(
        self, features: Iterable[tuple[int, int]], decode: Callable[[int], str]
    ) -> dict[tuple[int, int], dict[str, Any]]:
        """Each feature's top contexts as fields of its viewer feature file (`examples_file`),
        tokens shown through `decode`, the label in the group's title."""
        files = {}
        for layer, index in features:
            examples = [([decode(t) for t in ids], acts, c) for ids, acts, c in self.examples(layer, index)]
            files[(layer, index)] = examples_file(examples, f"{EXAMPLES_TITLE} ({self.clerp(layer, index)})")
        return files


@torch.no_grad()
def label_layer(
    encode: Callable[[Tensor], Tensor],
    x: Float[Tensor, "n n_ctx d_in"],
    labels: Int[Tensor, "n n_ctx"],
    candidates: LabelCandidates,
    rule: GroundTruthRaterConfig,
    n_examples: int = N_EXAMPLES,
    window: int = WINDOW,
    after: int = AFTER,
    batch_size: int = 64,
) -> LayerLabels:
    """Steps 2-3 for one feature layer: `encode` maps its inputs `x` (one row per context) to
    feature activations [..., d_sae]; `labels` are the tokens' label ids (BOS_LABEL: not counted)."""
    n, n_ctx = labels.shape
    counted = labels != BOS_LABEL
    n_labels = candidates.membership.shape[1]
    window = min(window, n_ctx - 1)

    def chunks():
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            acts = encode(x[start:stop]).float().cpu()
            yield start, acts * counted[start:stop, :, None]  # BOS never counts: as never active

    # a: the largest activation, and the top contexts (each context's largest activation), a
    # running top-k over the kept contexts and the chunk's
    kept: list[Tensor] = []  # [activation, context row, position], each [k, d_sae]
    for start, acts in chunks():
        per_ctx, position = acts.max(dim=1)  # [b, d_sae]
        rows = torch.arange(start, start + len(acts))[:, None].expand_as(per_ctx)
        merged = (
            [per_ctx, rows, position]
            if not kept
            else [torch.cat(p) for p in zip(kept, (per_ctx, rows, position), strict=True)]
        )
        order = merged[0].topk(min(n_examples, len(merged[0])), dim=0).indices
        kept = [part.gather(0, order) for part in merged]
    top_act, top_ctx, top_pos = (part.T.contiguous() for part in kept)
    max_act = top_act[:, 0]  # the top context's largest activation is the feature's
    d_sae, k = top_act.shape
    window_start = (top_pos - (window - 1 - after)).clamp(min=1).clamp(max=n_ctx - window)
    window_acts = torch.zeros(d_sae, k, window)
    offsets = torch.arange(window)

    # b: active tokens per label, and the example windows' activations
    hits = torch.zeros(d_sae, n_labels, dtype=torch.float64)
    n_active = torch.zeros(d_sae, dtype=torch.long)
    for start, acts in chunks():
        flat = acts.reshape(-1, d_sae)
        # the rule's largest activation is over every counted token, not the chunk's
        active = active_tokens(flat, rule.active_fraction, top=max_act)
        chunk_labels = labels[start : start + len(acts)].reshape(-1).long()
        # BOS (and any id past the names) falls into a spare column, dropped
        one_hot = torch.nn.functional.one_hot(chunk_labels.clamp(max=n_labels), n_labels + 1)[
            :, :n_labels
        ].float()
        hits += (active.T.float() @ one_hot).double()
        n_active += active.sum(dim=0)
        here = (top_ctx >= start) & (top_ctx < start + len(acts)) & (top_act > 0)
        feature, slot = here.nonzero(as_tuple=True)
        positions = window_start[feature, slot][:, None] + offsets
        rows = (top_ctx[feature, slot] - start)[:, None]
        window_acts[feature, slot] = acts[rows, positions, feature[:, None]]

    best, score = best_labels(hits, n_active, candidates)
    return LayerLabels(best, score, n_active, max_act, top_ctx, top_pos, top_act, window_start, window_acts)


@torch.no_grad()
def mlp_inputs(
    model: HookedTransformer, layers: list[int], contexts: Int[Tensor, "n n_ctx"], batch_size: int = 64
) -> dict[int, Float[Tensor, "n n_ctx d_model"]]:
    """Step 1: the MLP input of each of `layers` on every context, one pass per batch, stopped
    after the deepest of them."""
    hooks = {mlp_in_hook(layer): layer for layer in layers}
    out: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    for start in range(0, len(contexts), batch_size):
        batch = contexts[start : start + batch_size].to(model.cfg.device)
        _, cache = model.run_with_cache(
            batch, names_filter=lambda name: name in hooks, stop_at_layer=max(layers) + 1
        )
        for hook, layer in hooks.items():
            out[layer].append(cache[hook])
    return {layer: torch.cat(chunks) for layer, chunks in out.items()}


def heldout_feature_labels(
    model: HookedTransformer,
    transcoders: Replacement,
    tokens: LabelledTokens,
    rule: GroundTruthRaterConfig,
    n_examples: int = N_EXAMPLES,
    batch_size: int = 64,
) -> FeatureLabels:
    """Steps 1-3 (module docstring) for every feature of `transcoders`: per-layer transcoders (a map
    layer -> transcoder) or a cross-layer transcoder."""
    layers = feature_layers(model, transcoders)
    flat_labels = tokens.labels.reshape(-1)
    candidates = label_candidates(
        flat_labels[flat_labels != BOS_LABEL], list(tokens.names), rule.exclude_labels
    )
    inputs = mlp_inputs(model, list(layers), tokens.contexts, batch_size)
    results = {
        layer: label_layer(
            lambda x, tc=tc: tc.encode(x.to(tc.dtype)),
            inputs[layer],
            tokens.labels,
            candidates,
            rule,
            n_examples,
            batch_size=batch_size,
        )
        for layer, tc in layers.items()
    }
    return FeatureLabels(tokens, candidates, results)
