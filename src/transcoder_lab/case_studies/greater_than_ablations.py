"""The greater-than case study's measurements by ablation (steps 2, 4 and 5 of `greater_than`), each
both as its definition reads (the whole model run with hooks) and fast (cached activations, only the
blocks after the ablated MLP).

Algorithm:
1. Ranking (`component_ranking`, step 4): one pass per batch of prompts that stops after layer L
   reads, at the last token, the transcoder's features (encoded from the MLP input) and the MLP's
   neurons (`mlp.hook_post`); each kind is ordered by its variance across the prompts.
2. Each MLP ablated (step 2), per layer: "zero" (its output zeroed everywhere) and "mean" (its
   last-token output replaced by its mean over the prompts). `reference_mlp_ablations` runs the
   whole model with hooks per layer and protocol; `mlp_ablations` caches every layer's residual
   stream after attention and MLP output in one pass, then runs only the later blocks on the two
   ablated streams of each layer, stacked.
3. Curves (step 5), n = 0..n_max: the probability difference with the top-n components of a kind
   kept, the rest zeroed everywhere ("zero") or mean-ablated at the last token ("mean").
   `reference_curve` runs the whole model with hooks once per n; `fast_curves` caches up to the
   layer, writes the edited MLP output as base + sum over the kept components of coefficient x
   direction (`_linear_mlp_output`), and runs only the later blocks on `N_PER_PASS` values of n
   stacked, reading the 100 answer logits at the last position only (`_answer_logits`).
4. Each fast path equals its reference up to float32 summation order (tested in
   tests/test_greater_than_ablations.py). Both fast paths restart the model from `hook_resid_mid`,
   which a model with parallel attention and MLP lacks (`_require_resid_mid`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from transcoder_lab.behaviour import batches_by_length, greater_than_scores, last_token_logits
from transcoder_lab.dictionaries import Dictionary
from transcoder_lab.dictionaries.evaluation import spliced, zero_ablated
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook

KINDS = ("features", "neurons")  # step 5: the two curves
# step 5: values of n stacked into one pass of the later blocks; 8 x 100 prompts of GPT-2's 9 tokens
# is ~7,000 token rows, large enough for efficient matrix products and a few hundred MB at most
N_PER_PASS = 8


def prompt_scores(model: HookedTransformer, texts: list[str], yy: Tensor, ids: list[int]) -> dict[str, float]:
    """`behaviour.greater_than_scores` of the model as it is (with whatever hooks are active)."""
    return greater_than_scores(last_token_logits(model, texts), yy, ids)


def probability_difference(model: HookedTransformer, texts: list[str], yy: Tensor, ids: list[int]) -> float:
    return prompt_scores(model, texts, yy, ids)["probability_difference"]


def _last_token_values(
    model: HookedTransformer, texts: list[str], reads: dict[str, tuple[str, Callable]], stop_at_layer: int
) -> dict[str, Tensor]:
    """For each `name: (hook, transform)`, `transform(activation)` at the last token of every prompt,
    all read in one pass per batch that stops after layer `stop_at_layer - 1` (nothing later is read)."""
    hooks = {hook for hook, _ in reads.values()}
    rows: dict[str, list[Tensor]] = {name: [torch.empty(0)] * len(texts) for name in reads}
    for chunk, batch in batches_by_length(model, texts):
        _, cache = model.run_with_cache(
            batch, names_filter=lambda name: name in hooks, stop_at_layer=stop_at_layer
        )
        for name, (hook, transform) in reads.items():
            values = transform(cache[hook][:, -1]).float().cpu()
            for row, index in enumerate(chunk):
                rows[name][index] = values[row]
    return {name: torch.stack(values) for name, values in rows.items()}


def _last_token_edit(model: HookedTransformer, hook_name: str, edit: Callable[[Tensor], Tensor]):
    """Run with `edit` applied to the activation at the last position (prompts are unpadded)."""

    def hook(activation: Tensor, hook) -> Tensor:
        activation = activation.clone()
        activation[:, -1] = edit(activation[:, -1])
        return activation

    return model.hooks(fwd_hooks=[(hook_name, hook)])


def _post_hook(layer: int) -> str:
    return f"blocks.{layer}.mlp.hook_post"


def _resid_mid_hook(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_mid"


def _require_resid_mid(model: HookedTransformer) -> None:
    """The fast paths restart the model from the residual stream between attention and MLP."""
    if model.cfg.parallel_attn_mlp:
        raise ValueError(
            "the greater-than fast paths read the residual stream between attention and MLP "
            "(hook_resid_mid), which a model with parallel attention and MLP does not have; use "
            "reference_curve and reference_mlp_ablations"
        )


@dataclass
class Ranking:
    """Step 4 at one layer: each component's activation at the last token of every prompt, and the
    components ordered by the variance of that activation across the prompts (largest first)."""

    transcoder: Dictionary
    feature_acts: Float[Tensor, "n_prompts d_sae"]
    neuron_acts: Float[Tensor, "n_prompts d_mlp"]
    feature_order: Int[Tensor, " d_sae"]
    neuron_order: Int[Tensor, " d_mlp"]

    @property
    def layer(self) -> int:
        return self.transcoder.spec.layer

    def acts(self, kind: str) -> Tensor:
        return self.feature_acts if kind == "features" else self.neuron_acts

    def order(self, kind: str) -> Tensor:
        return self.feature_order if kind == "features" else self.neuron_order


def component_ranking(model: HookedTransformer, texts: list[str], transcoder: Dictionary) -> Ranking:
    """Step 4: transcoder features (encoded from the MLP input) and MLP neurons (`mlp.hook_post`),
    read in one pass that stops after the layer."""
    layer = transcoder.spec.layer
    acts = _last_token_values(
        model,
        texts,
        {
            "features": (mlp_in_hook(layer), lambda x: transcoder.encode(x.to(transcoder.dtype))),
            "neurons": (_post_hook(layer), lambda x: x),
        },
        stop_at_layer=layer + 1,
    )
    return Ranking(
        transcoder,
        acts["features"],
        acts["neurons"],
        acts["features"].var(0).argsort(descending=True),
        acts["neurons"].var(0).argsort(descending=True),
    )


# -- step 2: each MLP ablated, as defined and fast ---------------------------------------------------


def reference_mlp_ablations(
    model: HookedTransformer, texts: list[str], yy: Tensor, ids: list[int], layers: list[int]
) -> dict[str, dict[int, float]]:
    """Step 2 as defined: per layer, the probability difference of the whole model run with the
    MLP's output zeroed everywhere ("zero") and with its last-token output replaced by its mean over
    the prompts ("mean"). `mlp_ablations` computes the same; this one is its check."""
    out: dict[str, dict[int, float]] = {"zero": {}, "mean": {}}
    for layer in layers:
        with zero_ablated(model, [layer]):
            out["zero"][layer] = probability_difference(model, texts, yy, ids)
        reads = {"output": (mlp_out_hook(layer), lambda x: x)}
        mean = _last_token_values(model, texts, reads, stop_at_layer=layer + 1)["output"].mean(0)
        with _last_token_edit(model, mlp_out_hook(layer), lambda last, mean=mean: mean.expand_as(last)):
            out["mean"][layer] = probability_difference(model, texts, yy, ids)
    return out


@torch.no_grad()
def mlp_ablations(
    model: HookedTransformer, texts: list[str], yy: Tensor, ids: list[int], layers: list[int]
) -> dict[str, dict[int, float]]:
    """`reference_mlp_ablations` without re-running the layers before each ablated MLP:

    1. One pass per batch of prompts, up to the last of `layers`, caches each layer's residual
       stream after attention (`hook_resid_mid`) and its MLP output; the MLP outputs' last-token
       means over the prompts come from it.
    2. Per layer, the two ablated residual streams after the MLP (resid_mid alone: output zeroed;
       resid_mid + output with the last token's output replaced by the mean) are stacked and run
       through the later blocks only; the 100 answer logits at the last position give the
       probability difference (`_answer_logits`).
    Equal to the reference up to float32 summation order (tested)."""
    _require_resid_mid(model)
    hooks = {name for layer in layers for name in (_resid_mid_hook(layer), mlp_out_hook(layer))}
    cached: list[tuple[list[int], dict[str, Tensor]]] = []
    last_outputs = {layer: torch.empty(len(texts), model.cfg.d_model) for layer in layers}
    for chunk, batch in batches_by_length(model, texts):
        _, cache = model.run_with_cache(
            batch, names_filter=lambda name: name in hooks, stop_at_layer=max(layers) + 1
        )
        cached.append((chunk, {name: cache[name] for name in hooks}))
        for layer in layers:
            last_outputs[layer][chunk] = cache[mlp_out_hook(layer)][:, -1].float().cpu()
    every_answer = list(range(len(ids)))  # `_answer_logits` returns the 100 answer tokens' logits only
    out: dict[str, dict[int, float]] = {"zero": {}, "mean": {}}
    for layer in tqdm(layers, desc="greater-than: each MLP ablated", leave=False):
        mean = last_outputs[layer].mean(0)  # as the reference: the prompts' last-token outputs, in order
        logits = {protocol: torch.empty(len(texts), len(ids)) for protocol in out}
        for chunk, activations in cached:
            resid_mid, output = activations[_resid_mid_hook(layer)], activations[mlp_out_hook(layer)].clone()
            output[:, -1] = mean.to(output)
            stacked = torch.cat([resid_mid, resid_mid + output])
            answers = _answer_logits(model, stacked, layer + 1, ids).float().cpu()
            logits["zero"][chunk], logits["mean"][chunk] = answers.split(len(chunk))
        for protocol, values in logits.items():
            out[protocol][layer] = greater_than_scores(values, yy, every_answer)["probability_difference"]
    return out


# -- step 5, the straightforward way: the whole model with hooks, once per n ------------------------


def reference_curve(
    model: HookedTransformer,
    texts: list[str],
    yy: Tensor,
    ids: list[int],
    ranking: Ranking,
    protocol: str,
    kind: str,
    n_max: int,
) -> list[float]:
    """Step 5 as its definition reads: for n = 0..n_max, the whole model run with hooks that keep
    only the first n components of `kind` ("features": the transcoder spliced in and its features
    edited; "neurons": `mlp.hook_post` edited), the rest zeroed at every position ("zero") or
    replaced by their mean over the prompts at the last token ("mean"). `fast_curves` computes the
    same numbers; this one is its check (tests, benchmarks/bench_case_studies.py)."""
    mean, order = ranking.acts(kind).mean(0), ranking.order(kind)

    def masked(keep: Tensor) -> Callable[[Tensor], Tensor]:
        mask = torch.zeros_like(mean)
        mask[keep] = 1.0
        if protocol == "zero":
            return lambda values: values * mask.to(values)
        return lambda last: mean.to(last) + mask.to(last) * (last - mean.to(last))

    def kept(keep: Tensor):
        edit_values = masked(keep)
        if kind == "features":

            def edit(layer: int, z: Tensor) -> Tensor:
                if protocol == "zero":
                    return edit_values(z)
                z = z.clone()
                z[:, -1] = edit_values(z[:, -1])
                return z

            return spliced(model, [ranking.transcoder], edit_features=edit)
        post = _post_hook(ranking.layer)
        if protocol == "zero":
            return model.hooks(fwd_hooks=[(post, lambda activation, hook: edit_values(activation))])
        return _last_token_edit(model, post, edit_values)

    values = []
    for n in range(n_max + 1):
        with kept(order[:n]):
            values.append(probability_difference(model, texts, yy, ids))
    return values


# -- step 5, fast: cached activations, only the blocks after the layer, several n per pass ----------


@dataclass
class _LinearMLPOutput:
    """The studied MLP's output (or its transcoder's) with the top-n components kept, as
    `base + coefficients[..., :n] @ directions[:n]` (the output is linear in what the curves keep)."""

    base: Float[Tensor, "batch pos d_model"]  # n = 0
    coefficients: Float[Tensor, "batch pos n_kept"]  # per kept component, in ranking order
    directions: Float[Tensor, "n_kept d_model"]  # the component's output direction


def _linear_mlp_output(
    model: HookedTransformer, ranking: Ranking, protocol: str, kind: str, cache: Any, n_max: int
) -> _LinearMLPOutput:
    """What the edited MLP output of `reference_curve` is, as a function of n, for one batch.

    features: the transcoder's output `z W_dec + b_dec_out (+ x W_skip)`; neurons: the MLP's
    `post W_out + b_out`. "zero": base = the bias terms at every position, coefficients = the kept
    components' values (so n = 0 is the bias alone, not the MLP removed); "mean": base = the full
    output before the last position and the output of the mean components at the last position,
    coefficients = (value - mean) at the last position and 0 before it."""
    layer = ranking.layer
    order = ranking.order(kind)[:n_max]
    if kind == "features":
        transcoder = ranking.transcoder
        x = cache[mlp_in_hook(layer)].to(transcoder.dtype)
        values = transcoder.encode(x)
        weights = transcoder.W_dec
        bias = transcoder.b_dec_out.expand_as(x)
        if transcoder.W_skip is not None:
            bias = bias + x @ transcoder.W_skip
        full = transcoder.decode(values, x) if protocol == "mean" else None
    else:
        mlp = model.blocks[layer].mlp
        values, weights = cache[_post_hook(layer)], mlp.W_out
        bias = mlp.b_out.expand(*values.shape[:-1], -1)
        full = cache[mlp_out_hook(layer)]
    directions = weights[order]
    if protocol == "zero":
        return _LinearMLPOutput(bias.clone(), values[..., order], directions)
    assert full is not None
    mean = ranking.acts(kind).mean(0).to(values)
    base = full.clone()
    base[:, -1] = bias[:, -1] + mean @ weights
    coefficients = torch.zeros(*values.shape[:-1], len(order), dtype=values.dtype, device=values.device)
    coefficients[:, -1] = (values[:, -1] - mean)[..., order]
    return _LinearMLPOutput(base, coefficients, directions)


def _answer_logits(
    model: HookedTransformer, resid_post: Float[Tensor, "batch pos d_model"], start: int, ids: list[int]
) -> Float[Tensor, "batch 100"]:
    """The 100 answer tokens' logits at the last position, from the residual stream after block
    `start - 1`: blocks start.. on every position (attention reads them), then the final
    LayerNorm and the unembedding of the answer tokens at the last position only."""
    resid = model(resid_post, start_at_layer=start, stop_at_layer=model.cfg.n_layers)[:, -1:]
    if model.cfg.normalization_type is not None:
        resid = model.ln_final(resid)
    logits = resid[:, 0] @ model.W_U[:, ids] + model.b_U[ids]
    cap = model.cfg.output_logits_soft_cap
    return cap * torch.tanh(logits / cap) if cap > 0 else logits


@torch.no_grad()
def fast_curves(
    model: HookedTransformer,
    texts: list[str],
    yy: Tensor,
    ids: list[int],
    ranking: Ranking,
    protocol: str,
    n_max: int,
    n_per_pass: int = N_PER_PASS,
) -> dict[str, list[float]]:
    """`reference_curve` for both kinds, n = 0..n_max, without re-running what n does not change:

    1. Per batch of prompts, one pass up to the studied layer L caches the residual stream after
       L's attention (`hook_resid_mid`), the MLP's input and its neurons.
    2. The edited MLP output for every n is `base + Σ_{k<n} c_k d_k` (`_linear_mlp_output`): built
       by adding one component at a time.
    3. resid_mid + output(n) for `n_per_pass` values of n are stacked on the batch axis and run
       through blocks L+1.. only; the final LayerNorm and the 100 answer logits are taken at the
       last position only (the metric reads nothing else).
    4. The probability difference per n from those logits (softmax over the 100 answer tokens,
       as in `behaviour.greater_than_scores`).
    Equal to `reference_curve` up to float32 summation order (tested)."""
    _require_resid_mid(model)
    layer, n_values = ranking.layer, range(n_max + 1)
    hooks = {_resid_mid_hook(layer), mlp_in_hook(layer), _post_hook(layer), mlp_out_hook(layer)}
    logits = {kind: torch.empty(n_max + 1, len(texts), len(ids)) for kind in KINDS}
    batches = list(batches_by_length(model, texts))
    passes_per_curve = -(-len(n_values) // n_per_pass)
    progress = tqdm(
        total=len(batches) * len(KINDS) * passes_per_curve,
        desc=f"greater-than curves, layer {layer}, {protocol} protocol",
        leave=False,
    )
    for chunk, batch in batches:
        _, cache = model.run_with_cache(
            batch, names_filter=lambda name: name in hooks, stop_at_layer=layer + 1
        )
        resid_mid = cache[_resid_mid_hook(layer)]
        for kind in KINDS:
            parts = _linear_mlp_output(model, ranking, protocol, kind, cache, n_max)
            output, n_kept = parts.base, parts.directions.shape[0]
            pending: list[Tensor] = []
            for n in n_values:
                if 0 < n <= n_kept:  # past the last component the output stays complete
                    output = output + parts.coefficients[..., n - 1 : n] * parts.directions[n - 1]
                pending.append(resid_mid + output)
                if len(pending) == n_per_pass or n == n_max:
                    answers = _answer_logits(model, torch.cat(pending), layer + 1, ids).float().cpu()
                    first = n + 1 - len(pending)
                    logits[kind][first : n + 1, chunk] = answers.reshape(len(pending), len(chunk), -1)
                    pending = []
                    progress.update()
    progress.close()
    every_answer = list(range(len(ids)))  # the logits are already those of the 100 answer tokens
    return {
        kind: [
            greater_than_scores(logits[kind][n], yy, every_answer)["probability_difference"] for n in n_values
        ]
        for kind in KINDS
    }
