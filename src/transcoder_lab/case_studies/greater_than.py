"""The greater-than case study (DESIGN §4.4): which transcoder features carry "the second year is
later than the first", and how few of them do it compared with MLP neurons.

Algorithm (`run_greater_than`):
1. Prompts: one per start year YY = 00..99 (the organism's own template, or the paper's
   "The war lasted from 17{YY} to 17"); the metric is `behaviour.greater_than_scores` (the paper's
   restricted-softmax probability difference and Hanna et al.'s full-softmax one).
2. Layer: the configured one (gpt2_small: 10) or, on the organism, the transcoder layer whose MLP
   matters most. Two protocols, both computed: "zero" (the paper's) takes the largest drop in
   probability difference when the MLP's output is zeroed everywhere; "mean" the largest drop when
   its output at the last token is replaced by its mean over the prompts, which leaves the MLP's
   prompt-independent work alone (on the organism "zero" picks the layer-0 MLP, which every
   prediction also needs as an extended embedding; "mean" picks a later one). The profile's
   `protocol` names the headline one (gpt2_small: "zero", as in the paper; organism: "mean").
   Also measured: the probability difference with every MLP after layer 0 zeroed together, which
   says whether the task needs any MLP beyond the embedding MLP at all.
3. Probability difference of the original model, with that MLP replaced by its transcoder (no
   error term), with the MLP removed (output zeroed) and, if `feature` is set (paper layer), with
   the transcoder spliced but that feature ablated.
4. Components ranked by the variance of their activation across the prompts (at the last token):
   transcoder features, and MLP neurons (`mlp.hook_post`).
5. Curves, n = 0..n_components, per protocol at its layer: the probability difference with only
   the top-n features kept (the transcoder spliced in) and with only the top-n neurons kept
   (`mlp.hook_post`); the rest zeroed at every position ("zero": n = 0 is the MLP removed, as in
   the paper) or mean-ablated at the last token ("mean": n = 0 removes only what the layer computes
   differently per prompt). n = all gives the spliced transcoder and the original model. Reported:
   the n at which each curve first reaches 90% of its full value (spliced transcoder, original
   model), of the common threshold 0.9 x spliced, and at 95/98/99%; and the n at which each curve
   recovers 90/95/99% of the gap between its n = 0 value and its full value (a reading that does
   not depend on how much the n = 0 ablation leaves). `curves` holds the headline protocol,
   `other_protocol` the other one.
   5b. With `n_prompt_resamples`, the headline protocol again on fresh prompt draws (organism: other
   nouns and centuries), so the counts come with their spread over draws.
6. Planted-task check for the top features: for each, the years that activate it (activation-
   weighted mean YY) and its direct logit effects on the 100 year tokens; it "favours later years"
   when its mean effect on years above that centre exceeds its mean effect on years at or below.
   Figure: de-embedding and logit effect over YY for the top features.
7. Path graph from the logit direction late year minus early year on one prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from transcoder_lab.behaviour import batches_by_length, greater_than_scores, last_token_logits
from transcoder_lab.circuits import (
    AttributionContext,
    beam_search,
    build_graph,
    de_embedding,
    graph_figure,
    graph_to_json,
    logit_diff_root,
    logit_effects,
)
from transcoder_lab.config import CaseStudyConfig, CaseStudyProfile, Config
from transcoder_lab.dictionaries import Dictionary
from transcoder_lab.evaluation import spliced, zero_ablated
from transcoder_lab.models import mlp_in_hook, mlp_out_hook
from transcoder_lab.organism.tokenizer import two_digit_token_ids

N_TOP_FEATURES = 5  # features in the planted-task check and the effects figure
THRESHOLD = 0.9
PROTOCOLS = ("zero", "mean")  # step 2
RESAMPLE_SEED = 100  # step 5b: first seed of the fresh prompt draws (the main draw uses 7)


def prompts_for(cfg: Config, seed: int = 7) -> tuple[list[str], Tensor]:
    """Step 1: one prompt per YY (texts, YY values)."""
    if cfg.profile.corpus is None:
        return [f"The war lasted from 17{yy:02d} to 17" for yy in range(100)], torch.arange(100)
    from transcoder_lab.organism.corpus import greater_than_prompts

    prompts = greater_than_prompts(cfg.profile.corpus, seed, n_per_yy=1)
    return [p.text for p in prompts], torch.tensor([p.yy for p in prompts])


def _score(model: HookedTransformer, texts: list[str], yy: Tensor, ids: list[int]) -> dict[str, float]:
    return greater_than_scores(last_token_logits(model, texts), yy, ids)


def _last_token_values(model: HookedTransformer, texts: list[str], hook: str, transform: Callable) -> Tensor:
    """`transform(activation)` at the last token of every prompt, read at `hook`."""
    rows: list[Tensor] = [torch.empty(0)] * len(texts)
    for chunk, batch in batches_by_length(model, texts):
        _, cache = model.run_with_cache(batch, names_filter=hook)
        values = transform(cache[hook][:, -1]).float().cpu()
        for row, index in enumerate(chunk):
            rows[index] = values[row]
    return torch.stack(rows)


def _last_token_edit(model: HookedTransformer, hook_name: str, edit: Callable[[Tensor], Tensor]):
    """Run with `edit` applied to the activation at the last position (prompts are unpadded)."""

    def hook(activation: Tensor, hook) -> Tensor:
        activation = activation.clone()
        activation[:, -1] = edit(activation[:, -1])
        return activation

    return model.hooks(fwd_hooks=[(hook_name, hook)])


def curve(
    model: HookedTransformer,
    texts: list[str],
    yy: Tensor,
    ids: list[int],
    order: Tensor,
    n_max: int,
    run_with_top: Callable[[Tensor], Any],
) -> list[float]:
    """Step 5: probability difference with only the first n of `order` kept, n = 0..n_max."""
    values = []
    for n in range(n_max + 1):
        with run_with_top(order[:n]):
            values.append(_score(model, texts, yy, ids)["probability_difference"])
    return values


def first_reaching(values: list[float], target: float) -> int | None:
    return next((n for n, v in enumerate(values) if v >= target), None)


def features_need_at_most_half(feature_curve: list[float], neuron_curve: list[float], mark: float) -> bool:
    """The case-study criterion: to the same mark (90% of the spliced transcoder's value) the features
    need at most half as many components as the neurons (neurons that never get there count as
    infinitely many). Void (False) when ablating every feature leaves the spliced model at or above
    the mark: then "0 features" only says the transcoder does not carry the computation."""
    if feature_curve[0] >= mark:
        return False
    n_features, n_neurons = first_reaching(feature_curve, mark), first_reaching(neuron_curve, mark)
    return n_features is not None and (n_neurons is None or 2 * n_features <= n_neurons)


def _along(start: float, end: float, fraction: float) -> float:
    return start + fraction * (end - start)


def _pd(model: HookedTransformer, texts: list[str], yy: Tensor, ids: list[int]) -> float:
    return _score(model, texts, yy, ids)["probability_difference"]


def _layer_curves(
    model: HookedTransformer,
    texts: list[str],
    yy: Tensor,
    ids: list[int],
    original: dict[str, float],
    transcoder: Dictionary,
    protocol: str,
    settings: CaseStudyProfile,
) -> dict[str, Any]:
    """Steps 3-5 at one layer. protocol "zero": components not kept are zeroed at every position
    (n = 0 is the MLP removed: the paper's protocol); "mean": they are replaced by their mean over
    the prompts at the last token only."""
    layer = transcoder.spec.layer
    with spliced(model, [transcoder]):
        replaced = _score(model, texts, yy, ids)
    with zero_ablated(model, [layer]):
        removed = _score(model, texts, yy, ids)
    post = f"blocks.{layer}.mlp.hook_post"
    feature_acts = _last_token_values(
        model, texts, mlp_in_hook(layer), lambda x: transcoder.encode(x.to(transcoder.dtype))
    )
    neuron_acts = _last_token_values(model, texts, post, lambda x: x)
    feature_order = feature_acts.var(0).argsort(descending=True)  # step 4
    neuron_order = neuron_acts.var(0).argsort(descending=True)

    def masked(keep: Tensor, mean: Tensor) -> Callable[[Tensor], Tensor]:
        mask = torch.zeros_like(mean)
        mask[keep] = 1.0
        if protocol == "zero":
            return lambda values: values * mask.to(values)
        return lambda last: mean.to(last) + mask.to(last) * (last - mean.to(last))

    def top_features(keep: Tensor):
        edit_values = masked(keep, feature_acts.mean(0))

        def edit(dictionary: Dictionary, z: Tensor) -> Tensor:
            if protocol == "zero":
                return edit_values(z)
            z = z.clone()
            z[:, -1] = edit_values(z[:, -1])
            return z

        return spliced(model, [transcoder], edit_features=edit)

    def top_neurons(keep: Tensor):
        edit_values = masked(keep, neuron_acts.mean(0))
        if protocol == "zero":
            return model.hooks(fwd_hooks=[(post, lambda activation, hook: edit_values(activation))])
        return _last_token_edit(model, post, edit_values)

    # past a curve's own component count it stays at its full value (every component kept)
    n_max = min(settings.n_components, max(transcoder.spec.d_sae, model.cfg.d_mlp))
    feature_curve = curve(model, texts, yy, ids, feature_order, n_max, top_features)
    neuron_curve = curve(model, texts, yy, ids, neuron_order, n_max, top_neurons)
    spliced_pd, original_pd = replaced["probability_difference"], original["probability_difference"]
    n_features = first_reaching(feature_curve, THRESHOLD * spliced_pd)
    n_neurons = first_reaching(neuron_curve, THRESHOLD * original_pd)
    n_neurons_same_target = first_reaching(neuron_curve, THRESHOLD * spliced_pd)
    mark = THRESHOLD * spliced_pd
    curves = {
        "protocol": protocol,
        "n": list(range(n_max + 1)),
        "features": feature_curve,
        "neurons": neuron_curve,
        "features_to_90pct_of_spliced": n_features,
        "neurons_to_90pct_of_original": n_neurons,
        "neurons_to_90pct_of_spliced": n_neurons_same_target,
        "features_needed_for_the_mark": feature_curve[0] < mark,
        "features_need_at_most_half": features_need_at_most_half(feature_curve, neuron_curve, mark),
        # the same comparison at stricter thresholds (each curve against its own full value)
        "components_by_threshold": {
            f"{fraction:.0%}": {
                "features": first_reaching(feature_curve, fraction * spliced_pd),
                "neurons": first_reaching(neuron_curve, fraction * original_pd),
            }
            for fraction in (0.9, 0.95, 0.98, 0.99)
        },
        # n at which each curve recovers a fraction of the way from its n = 0 value to its full one
        "gap_recovered_by_threshold": {
            f"{fraction:.0%}": {
                "features": first_reaching(feature_curve, _along(feature_curve[0], spliced_pd, fraction)),
                "neurons": first_reaching(neuron_curve, _along(neuron_curve[0], original_pd, fraction)),
            }
            for fraction in (0.9, 0.95, 0.99)
        },
    }
    return {
        "pd": {"transcoder_spliced": spliced_pd, "mlp_removed": removed["probability_difference"]},
        "hanna": {
            "transcoder_spliced": replaced["hanna_probability_difference"],
            "mlp_removed": removed["hanna_probability_difference"],
        },
        "curves": curves,
        "feature_acts": feature_acts,
        "feature_order": feature_order,
        "neuron_order": neuron_order,
    }


def prompt_resamples(
    cfg: Config,
    model: HookedTransformer,
    ids: list[int],
    transcoder: Dictionary,
    protocol: str,
    settings: CaseStudyProfile,
) -> dict[str, Any]:
    """Step 5b: the headline protocol's counts on fresh prompt draws (seeds after the main one's),
    components re-ranked on each draw."""
    samples = []
    for seed in range(RESAMPLE_SEED, RESAMPLE_SEED + settings.n_prompt_resamples):
        texts, yy = prompts_for(cfg, seed)
        original = _score(model, texts, yy, ids)
        curves = _layer_curves(model, texts, yy, ids, original, transcoder, protocol, settings)["curves"]
        samples.append(
            {
                "prompt_seed": seed,
                "features_to_90pct_of_spliced": curves["features_to_90pct_of_spliced"],
                "neurons_to_90pct_of_spliced": curves["neurons_to_90pct_of_spliced"],
                "features_need_at_most_half": curves["features_need_at_most_half"],
                "components_by_threshold": curves["components_by_threshold"],
            }
        )
    return {
        "samples": samples,
        "share_meeting_criterion": float(np.mean([s["features_need_at_most_half"] for s in samples])),
    }


@torch.no_grad()
def run_greater_than(
    cfg: Config,
    study: CaseStudyConfig,
    settings: CaseStudyProfile,
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
) -> tuple[dict[str, Any], dict[str, plt.Figure]]:
    if settings.protocol not in PROTOCOLS:
        raise ValueError(
            f"greater-than protocol {settings.protocol!r} is not one of {PROTOCOLS}; set "
            "case_study.greater_than.profiles.<profile>.protocol to 'zero' (the paper's) or 'mean'"
        )
    texts, yy = prompts_for(cfg)
    ids = two_digit_token_ids(model.tokenizer)
    original = _score(model, texts, yy, ids)

    # Step 2: the layer, by each protocol.
    zero_drops, mean_drops = {}, {}
    for layer in sorted(transcoders):
        with zero_ablated(model, [layer]):
            zero_drops[layer] = original["probability_difference"] - _pd(model, texts, yy, ids)
        mean = _last_token_values(model, texts, mlp_out_hook(layer), lambda x: x).mean(0)
        with _last_token_edit(model, mlp_out_hook(layer), lambda last, mean=mean: mean.expand_as(last)):
            mean_drops[layer] = original["probability_difference"] - _pd(model, texts, yy, ids)
    later_mlps = list(range(1, model.cfg.n_layers))
    with zero_ablated(model, later_mlps):  # does the task need any MLP beyond the embedding MLP?
        without_later_mlps = _pd(model, texts, yy, ids)
    drops = {"zero": zero_drops, "mean": mean_drops}
    layers = {
        protocol: settings.layer if settings.layer is not None else max(by_layer, key=by_layer.get)
        for protocol, by_layer in drops.items()
    }
    analyses = {
        protocol: _layer_curves(model, texts, yy, ids, original, transcoders[layer], protocol, settings)
        for protocol, layer in layers.items()
    }
    for protocol, analysis in analyses.items():  # what n = 0 of the mean protocol's neuron curve is
        analysis["pd"]["mlp_last_token_mean_ablated"] = (
            original["probability_difference"] - mean_drops[layers[protocol]]
        )
    headline, other = settings.protocol, "mean" if settings.protocol == "zero" else "zero"
    layer = layers[headline]
    transcoder = transcoders[layer]
    paper = analyses[headline]
    drop_meaning = {
        "zero": "MLP output zeroed everywhere",
        "mean": "MLP output at the last token replaced by its mean over the prompts",
    }
    result: dict[str, Any] = {
        "protocol": headline,
        "layer": layer,
        "mlp_ablation": drop_meaning[headline],
        "mlp_ablation_drop_by_layer": drops[headline],
        "probability_difference": {
            "original": original["probability_difference"],
            **paper["pd"],
            "chance": original["chance_probability_difference"],
            "every_mlp_after_layer_0_zeroed": without_later_mlps,
        },
        "hanna_probability_difference": {
            "original": original["hanna_probability_difference"],
            **paper["hanna"],
        },
        "curves": paper["curves"],
        "other_protocol": {
            "protocol": other,
            "layer": layers[other],
            "mlp_ablation": drop_meaning[other],
            "mlp_ablation_drop_by_layer": drops[other],
            "probability_difference": analyses[other]["pd"],
            "curves": analyses[other]["curves"],
        },
    }
    if settings.feature is not None:

        def ablate(dictionary: Dictionary, z: Tensor) -> Tensor:
            z = z.clone()
            z[..., settings.feature] = 0
            return z

        with spliced(model, [transcoder], edit_features=ablate):
            result["probability_difference"][f"transcoder_without_{settings.feature}"] = _pd(
                model, texts, yy, ids
            )
    if settings.n_prompt_resamples:  # step 5b
        result["prompt_resamples"] = prompt_resamples(cfg, model, ids, transcoder, headline, settings)
    feature_acts, feature_order = paper["feature_acts"], paper["feature_order"]
    neuron_order = paper["neuron_order"]
    result["top_features"] = feature_order[:10].tolist()
    result["top_neurons"] = neuron_order[:10].tolist()
    if settings.expected_features:
        result["expected_features_in_top10"] = sorted(
            set(settings.expected_features) & set(result["top_features"])
        )

    # Step 6: planted-task check and the effects figure.
    checks, figure_effects = [], plt.figure(figsize=(4.0 * N_TOP_FEATURES, 3.4))
    years = torch.arange(100, dtype=torch.float64)
    for i, feature in enumerate(feature_order[:N_TOP_FEATURES].tolist()):
        acts = feature_acts[:, feature].double().clamp(min=0)
        centre = float((acts * yy).sum() / acts.sum()) if acts.sum() > 0 else float("nan")
        effects = logit_effects(model, transcoder, feature)[ids].double()
        embeds = de_embedding(model, transcoder, feature)[ids].double()
        later = years > centre
        favours_later = bool(
            later.any() and (~later).any() and effects[later].mean() > effects[~later].mean()
        )
        checks.append(
            {"feature": feature, "activating_year_centre": centre, "favours_later_years": favours_later}
        )
        axis = figure_effects.add_subplot(1, N_TOP_FEATURES, i + 1)
        axis.plot(years, embeds, label="de-embedding (which YY activate it)")
        axis.plot(years, effects, label="logit effect (which YY it promotes)")
        if not np.isnan(centre):
            axis.axvline(centre, color="grey", linestyle=":", label="activating-year centre")
        axis.set(title=f"tc{layer}[{feature}]", xlabel="YY")
        if i == 0:
            axis.legend(fontsize=6)
    figure_effects.tight_layout()
    result["planted_task_check"] = {
        "features": checks,
        "share_favouring_later_years": float(np.mean([c["favours_later_years"] for c in checks])),
    }

    # Step 7: the path graph from late minus early year.
    figures = {"effects": figure_effects}
    prompt_yy, late, early = settings.logit_root or [45, 75, 15]
    index = int((yy == prompt_yy).nonzero()[0]) if (yy == prompt_yy).any() else len(texts) // 2
    tokens = model.to_tokens(texts[index])[0]
    ctx = AttributionContext.from_tokens(model, transcoders, tokens)
    root = logit_diff_root(ctx, ids[late], ids[early])
    paths = beam_search(
        ctx, root, study.search.n_iterations, study.search.n_branches, per_node=study.search.per_node
    )
    graph = build_graph(ctx, root, paths)
    str_tokens = model.to_str_tokens(tokens)
    heads = sorted({label.split("@")[0] for p in paths for label in p.labels if label.startswith("attn")})
    result["graph"] = {
        "prompt": texts[index],
        "root": f"logit({late:02d}) - logit({early:02d})",
        "heads_on_paths": heads,
        "paths": [{"nodes": p.labels, "value": p.value} for p in paths[:10]],
        "json": graph_to_json(graph, str_tokens, {"case_study": study.title}),
    }
    if settings.expected_heads:
        result["graph"]["expected_heads_found"] = sorted(set(settings.expected_heads) & set(heads))
    figures["graph"] = graph_figure(graph, str_tokens, f"{study.title}: {result['graph']['root']}")

    figure_curve, axes = plt.subplots(1, 2, figsize=(12, 4))
    titles = {
        "zero": "the rest zeroed everywhere (the paper's protocol)",
        "mean": "the rest mean-ablated at the last token",
    }
    protocols = [(f"{p}: {titles[p]}", layers[p], analyses[p]) for p in (headline, other)]
    for axis, (title, at, analysis) in zip(axes, protocols, strict=True):
        c = analysis["curves"]
        axis.plot(c["n"], c["features"], label=f"top-n transcoder {at} features kept")
        axis.plot(c["n"], c["neurons"], label=f"top-n MLP {at} neurons kept")
        axis.axhline(
            analysis["pd"]["transcoder_spliced"], color="C0", linestyle=":", label="transcoder spliced"
        )
        axis.axhline(original["probability_difference"], color="C1", linestyle=":", label="original model")
        axis.axhline(analysis["pd"]["mlp_removed"], color="grey", linestyle="--", label="MLP removed")
        axis.set(xlabel="components kept (ranked by activation variance)", ylabel="probability difference")
        axis.set_title(f"layer {at}; {title}", fontsize=9)
        axis.legend(fontsize=7)
    figures["curves"] = figure_curve
    return result, figures
