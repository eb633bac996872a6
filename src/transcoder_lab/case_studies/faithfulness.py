"""A case study's circuit tested by intervention, and its attention claims against ground truth
(docs/design.md §6.5). The result's `faithfulness` and `ground_truth` entries.

`study_faithfulness`:
1. Mean activations (`feature_means`): every transcoder feature's mean over the real (non-BOS)
   tokens of the study's prompts; mean ablation sets a feature to it.
2. On the graph prompt (the prompt the study's graph is built on) and its circuit (the graph's
   feature nodes): `circuits.faithfulness.circuit_faithfulness` with the per-node rows, frozen and
   live: attribution against the actual effect of ablating every active feature, sufficiency and
   necessity against `n_random_sets` size-matched random feature sets.
3. On each of the study's first `n_prompts` prompts, with that prompt's own circuit (the study's
   `circuit_of`: the same root and beam search on that prompt): sufficiency and necessity with their
   random baselines, and on the first `n_per_node_prompts` of them also the per-node measures
   (Spearman, slope, precision@k); their median and interquartile range over prompts
   (`over_prompts`, each with the number of prompts it rests on).
4. Verdicts (`faithfulness_verdicts`), against bars fixed in the study's config before the run
   (config.FaithfulnessConfig), on the live model: sufficiency and necessity on the graph prompt and
   their medians over prompts, each at least its bar and above `min_percentile` of the random sets;
   the Spearman correlation between attribution and actual effect over every active feature.

`ground_truth_check` (organism feature studies with `context_labels`: the planted context the root
should read, e.g. the " was" before a passive " caught"), on every study prompt that has such a
context token before the root:
1. Attention share: of the root's direct input carried by attention from other positions (exact
   attribution, summed over heads), the part whose source token carries a context label.
2. Attention knock-out: every attention pattern entry from the root's position to those context
   positions set to zero (in every layer the root reads), so no head writes from them to the root's
   position; the share of the root's activation lost.
3. Token swap: the context tokens replaced by `neutral_token`; the share of the activation lost.
Verdict: the median share of step 1 is at least `min_context_share` and the mean loss of step 2 at
least `min_context_loss`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from transcoder_lab.case_studies.common import LabelledTokens, Prompt, context_positions, layer_activations
from transcoder_lab.case_studies.contrastive import describe_contrastive
from transcoder_lab.circuits import (
    AttributionContext,
    Graph,
    Root,
    attribute,
    beam_search,
    build_graph,
    feature_root,
    logit_diff_root,
)
from transcoder_lab.circuits.faithfulness import FeatureNode, circuit_faithfulness, summarise
from transcoder_lab.config import FaithfulnessConfig, SearchConfig
from transcoder_lab.dictionaries import Dictionary
from transcoder_lab.sources.hooks import mlp_in_hook

OK, BELOW = "ok", "BELOW"


def graph_features(graph: Graph) -> list[FeatureNode]:
    """A beam-search graph's transcoder-feature nodes as (layer, position, feature)."""
    return [
        (int(n.layer), int(n.position), int(n.index))
        for n in graph.nodes.values()
        if n.kind == "feature" and n.layer is not None and n.position is not None and n.index is not None
    ]


RootMaker = Callable[[AttributionContext], Root]  # places a study's root on a prompt


def study_circuit(
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    tokens: Tensor,
    make_root: RootMaker,
    search: SearchConfig,
) -> tuple[Root, list[FeatureNode]]:
    """A study's circuit on any prompt: the root `make_root` places on it, and the feature nodes of
    the beam-search graph from that root (`search`), as the study builds its own graph."""
    ctx = AttributionContext.from_tokens(model, transcoders, tokens)
    root = make_root(ctx)
    paths = beam_search(ctx, root, search.n_iterations, search.n_branches, per_node=search.per_node)
    return root, graph_features(build_graph(ctx, root, paths))


def feature_root_at_end(layer: int, feature: int) -> RootMaker:
    """A feature root at a prompt's last token."""
    return lambda ctx: feature_root(ctx, layer, feature, ctx.n_pos - 1)


def logit_diff_at_end(token_a: int, token_b: int) -> RootMaker:
    """logit(token_a) - logit(token_b) at a prompt's last token."""
    return lambda ctx: logit_diff_root(ctx, token_a, token_b, ctx.n_pos - 1)


@torch.no_grad()
def feature_means(
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    prompts: Sequence[Tensor],
    batch_size: int = 64,
) -> dict[int, Float[Tensor, " d_sae"]]:
    """Step 1: each transcoder feature's mean activation over every non-BOS token of `prompts`
    (right-padded into batches: attention is causal, so padding never changes a real token; the
    padding and BOS positions are left out of the mean)."""
    sums: dict[int, Tensor] = {}
    count = 0
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        lengths = torch.tensor([len(tokens) for tokens in chunk])
        batch = torch.zeros(len(chunk), int(lengths.max()), dtype=torch.long)
        for row, tokens in enumerate(chunk):
            batch[row, : len(tokens)] = tokens.cpu()
        real = torch.arange(batch.shape[1])[None] < lengths[:, None]
        real[:, 0] = False  # BOS
        for layer, z in layer_activations(model, transcoders, batch, batch_size).items():
            sums[layer] = sums.get(layer, 0) + z[real].double().sum(dim=0)
        count += int(real.sum())
    return {layer: (total / max(1, count)).float() for layer, total in sums.items()}


def _verdict(
    value: float | None, bar: float, percentile: float | None = None, min_percentile: float | None = None
) -> dict[str, Any]:
    passed = value is not None and value >= bar
    if min_percentile is not None:  # and above that percentile of the random baseline
        passed = passed and percentile is not None and percentile >= min_percentile
    return {"value": value, "bar": bar, "percentile": percentile, "verdict": OK if passed else BELOW}


def faithfulness_verdicts(
    graph_prompt: dict[str, Any], over_prompts: dict[str, Any], bars: FaithfulnessConfig
) -> dict[str, dict[str, Any]]:
    """Step 4: each verdict's measured value, its bar and ok / BELOW (live model)."""
    live, over = graph_prompt["live"], over_prompts["live"]
    out = {}
    for name, bar in (("sufficiency", bars.min_sufficiency), ("necessity", bars.min_necessity)):
        out[name] = _verdict(
            live[name], bar, live[f"random_{name}"]["percentile_of_circuit"], bars.min_percentile
        )
        out[f"median_{name}"] = _verdict(
            over[name]["median"], bar, over[f"{name}_percentile"]["median"], bars.min_percentile
        )
    out["attribution_vs_ablation_spearman"] = _verdict(live.get("spearman"), bars.min_spearman)
    return out


def study_faithfulness(
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    graph_prompt: Tensor,
    graph_circuit: tuple[Root, list[FeatureNode]],
    prompt_roots: Sequence[tuple[Tensor, RootMaker]],
    search: SearchConfig,
    bars: FaithfulnessConfig,
) -> dict[str, Any]:
    """Steps 1-4 of the module docstring; the result's `faithfulness`. `prompt_roots`: the study's
    prompts, each with where its root goes (means over all of them; circuits on the first
    `bars.n_prompts`)."""
    means = feature_means(model, transcoders, [tokens for tokens, _ in prompt_roots])
    settings = {"n_random": bars.n_random_sets, "seed": bars.seed, "max_per_node": bars.max_per_node_features}
    main = circuit_faithfulness(model, transcoders, graph_prompt, *graph_circuit, means, **settings)
    rows = []
    chosen = list(prompt_roots)[: bars.n_prompts]
    for index, (tokens, make_root) in enumerate(tqdm(chosen, desc="faithfulness over prompts", leave=False)):
        circuit = study_circuit(model, transcoders, tokens, make_root, search)
        per_node = index < bars.n_per_node_prompts
        rows.append(
            circuit_faithfulness(model, transcoders, tokens, *circuit, means, per_node=per_node, **settings)
        )
    over: dict[str, Any] = {"n_prompts": len(rows)}
    for mode in ("frozen", "live"):
        over[mode] = {
            metric: summarise([row[mode].get(metric) for row in rows])
            for metric in ("sufficiency", "necessity", "spearman", "slope", "precision_at_k")
        } | {
            f"{metric}_percentile": summarise(
                [row[mode][f"random_{metric}"]["percentile_of_circuit"] for row in rows]
            )
            for metric in ("sufficiency", "necessity")
        }
    return {
        "graph_prompt": main,
        "over_prompts": over,
        "bars": vars(bars) | {},
        "verdicts": faithfulness_verdicts(main, over, bars),
    }


@torch.no_grad()
def _root_activation(
    model: HookedTransformer, transcoder: Dictionary, feature: int, tokens: Tensor, hooks: list | None = None
) -> float:
    hook = mlp_in_hook(transcoder.spec.layer)
    with model.hooks(fwd_hooks=hooks or []):
        _, cache = model.run_with_cache(
            tokens[None].to(model.cfg.device), names_filter=hook, stop_at_layer=transcoder.spec.layer + 1
        )
    return float(transcoder.encode(cache[hook][0, -1].to(transcoder.dtype))[feature])


def _knock_out(destination: int, sources: list[int]):
    """A hook that zeroes attention from `destination` to `sources` in every head."""

    def hook(pattern: Tensor, hook) -> Tensor:
        pattern = pattern.clone()
        pattern[:, :, destination, sources] = 0.0
        return pattern

    return hook


@torch.no_grad()
def ground_truth_check(
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    root_layer: int,
    feature: int,
    prompts: Sequence[Prompt],
    heldout: LabelledTokens,
    context_labels: list[str],
    neutral_token: int,
    bars: FaithfulnessConfig,
) -> dict[str, Any]:
    """Steps 1-3 and the verdict of the module docstring (the result's `ground_truth`)."""
    context_ids = torch.tensor(heldout.label_ids(context_labels))
    transcoder = transcoders[root_layer]
    shares, knocked, swapped, n_used = [], [], [], 0
    for prompt in prompts:
        t = len(prompt.tokens) - 1
        sources = context_positions(prompt, context_ids)
        if not sources:
            continue
        n_used += 1
        ctx = AttributionContext.from_tokens(model, transcoders, prompt.tokens)
        by_source = attribute(ctx, feature_root(ctx, root_layer, feature, t)).heads.sum(dim=(0, 1))
        other = float(by_source.sum() - by_source[t])
        shares.append(float(by_source[sources].sum()) / other if abs(other) > 1e-9 else None)
        clean = _root_activation(model, transcoder, feature, prompt.tokens)
        hooks = [
            (f"blocks.{layer}.attn.hook_pattern", _knock_out(t, sources)) for layer in range(root_layer + 1)
        ]
        without = _root_activation(model, transcoder, feature, prompt.tokens, hooks)
        neutral = prompt.tokens.clone()
        neutral[sources] = neutral_token
        after_swap = _root_activation(model, transcoder, feature, neutral)
        knocked.append((clean - without) / clean if clean > 0 else None)
        swapped.append((clean - after_swap) / clean if clean > 0 else None)
    share, knock, swap = summarise(shares), summarise(knocked), summarise(swapped)
    mean_knock = float(np.mean([k for k in knocked if k is not None])) if knock["n"] else None
    passed = (
        share["median"] is not None
        and share["median"] >= bars.min_context_share
        and mean_knock is not None
        and mean_knock >= bars.min_context_loss
    )
    return {
        "context_labels": context_labels,
        "n_prompts": n_used,
        "attention_share_from_context": share,
        "loss_without_attention_from_context": knock | {"mean": mean_knock},
        "loss_with_context_tokens_neutral": swap,
        "bars": {"min_context_share": bars.min_context_share, "min_context_loss": bars.min_context_loss},
        "verdict": OK if passed else BELOW,
    }


def describe_evidence(
    faithfulness: dict[str, Any],
    ground_truth: dict[str, Any] | None = None,
    contrastive: dict[str, Any] | None = None,
) -> str:
    """The verdicts as Markdown lines, failing ones included (for notebooks and logs); with
    `contrastive`, the matched-pair verdict too (case_studies.contrastive)."""
    lines = []
    for name, v in faithfulness["verdicts"].items():
        shown = "undefined" if v["value"] is None else f"{v['value']:.2f}"
        beside = "" if v["percentile"] is None else f", percentile {v['percentile']:.0f} of the random sets"
        lines.append(f"- {name.replace('_', ' ')}: {shown}{beside} (bar {v['bar']:g}): **{v['verdict']}**")
    if ground_truth is not None:
        share, loss = (
            "undefined" if value is None else f"{value:.2f}"
            for value in (
                ground_truth["attention_share_from_context"]["median"],
                ground_truth["loss_without_attention_from_context"]["mean"],
            )
        )
        context = f"{', '.join(ground_truth['context_labels'])}, {ground_truth['n_prompts']} prompts"
        lines.append(
            f"- ground truth ({context}): attention share {share}, loss with that attention cut {loss}: "
            f"**{ground_truth['verdict']}**"
        )
    if contrastive is not None:
        lines.append(describe_contrastive(contrastive))
    return "\n".join(lines)
