"""The greater-than case study (docs/design.md §6.3): which transcoder features carry "the second year is
later than the first", and how few of them do it compared with MLP neurons.

Algorithm (`run_greater_than`, a sequence of the public step functions named below, which the
notebook calls one a cell, in the same order):
1. Prompts (`prompts_for`): one per start year YY = 00..99 (the organism's own template, or the
   paper's "The war lasted from 17{YY} to 17"); the metric is `behaviour.greater_than_scores` (the paper's
   restricted-softmax probability difference and Hanna et al.'s full-softmax one).
2. Layer (`choose_layers`): the configured one (gpt2_small: 10) or, on the organism, the transcoder
   layer whose MLP matters most. Two protocols, both computed: "zero" (the paper's) takes the
   largest drop in probability difference when the MLP's output is zeroed everywhere; "mean" the
   largest drop when its output at the last token is replaced by its mean over the prompts, which
   leaves the MLP's prompt-independent work alone (on the organism "zero" picks the layer-0 MLP,
   which every prediction also needs as an extended embedding; "mean" picks a later one). The
   profile's `protocol` names the headline one (gpt2_small: "zero", as in the paper; organism:
   "mean"). Also measured: the probability difference with every MLP after layer 0 zeroed together,
   which says whether the task needs any MLP beyond the embedding MLP at all. The per-layer
   ablations come from `greater_than_ablations.mlp_ablations` (one cached pass, then only the blocks
   after each ablated MLP), equal to the hook-based `reference_mlp_ablations` up to float32
   summation order.
3. (Steps 3-5: `protocol_analyses`, each protocol at its layer; `headline_result` reads them.)
   Probability difference of the original model, with that MLP replaced by its transcoder (no
   error term), with the MLP removed (its whole output zeroed, output bias included) and, if
   `feature` is set (paper layer), with the transcoder spliced but that feature ablated
   (`without_feature`).
4. Components ranked by the variance of their activation across the prompts (at the last token):
   transcoder features, and MLP neurons (`mlp.hook_post`); `greater_than_ablations.component_ranking`.
5. Curves, n = 0..n_components, per protocol at its layer: the probability difference with only
   the top-n features kept (the transcoder spliced in) and with only the top-n neurons kept
   (`mlp.hook_post`); the rest zeroed at every position ("zero", the paper's: n = 0 leaves the
   output bias alone, b_dec_out of the transcoder or b_out of the MLP, which is *not* the MLP
   removed of step 3; both are reported, each labelled) or mean-ablated at the last token ("mean":
   n = 0 removes only what the layer computes differently per prompt). n = all gives the spliced
   transcoder and the original model. Computed by `greater_than_ablations.fast_curves` (cached
   activations up to the layer, only the later blocks run per n, several n per pass), which equals
   the hook-based `reference_curve` up to float32 summation order. Reported:
   the n at which each curve first reaches 90% of its full value (spliced transcoder, original
   model), of the common threshold 0.9 x spliced, and at 95/98/99%; and the n at which each curve
   recovers 90/95/99% of the gap between its n = 0 value and its full value (a reading that does
   not depend on how much the n = 0 ablation leaves); and the n at which each curve reaches the
   paper's absolute marks (`PAPER_MARKS`). `curves` holds the headline protocol, `other_protocol`
   the other one.
   Read by `top_components` (top 10 features and neurons, the paper's features' ranks).
   5b. With `n_prompt_resamples` (`prompt_resamples`), the headline protocol again on fresh prompt
   draws (organism: other nouns and centuries), so the counts come with their spread over draws.
6. Planted-task check for the top features (`year_features.year_profiles`, `planted_task_check`,
   `effects_figure`; that module's docstring says how).
7. Path graph from the logit direction late year minus early year on one prompt (`year_graph`,
   `year_graph_summary`); the configured
   `expected_features` are looked up in the ranking of step 4 (rank or absent) and the
   `expected_heads` among the heads on the paths (ranked by their strongest path).
8. The graph's circuit tested by intervention on its prompt and on the first prompts, each with its
   own graph (`case_studies.faithfulness.study_faithfulness`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor
from transformer_lens import HookedTransformer

from transcoder_lab.case_studies.common import output_paths
from transcoder_lab.case_studies.faithfulness import (
    RootMaker,
    graph_features,
    logit_diff_at_end,
    study_faithfulness,
)
from transcoder_lab.case_studies.greater_than_ablations import (
    Ranking,
    component_ranking,
    fast_curves,
    mlp_ablations,
    probability_difference,
    prompt_scores,
)
from transcoder_lab.case_studies.year_features import effects_figure, planted_task_check, year_profiles
from transcoder_lab.circuits import (
    AttributionContext,
    Graph,
    Path,
    beam_search,
    build_graph,
    graph_figure,
    graph_to_json,
    logit_diff_root,
)
from transcoder_lab.config import CaseStudyConfig, CaseStudyProfile, Config, SearchConfig
from transcoder_lab.dictionaries import Dictionary
from transcoder_lab.dictionaries.evaluation import spliced, zero_ablated
from transcoder_lab.organism.mechanisms.greater_than import greater_than_prompts
from transcoder_lab.sources.tokens import two_digit_token_ids

THRESHOLD = 0.9
PROTOCOLS = ("zero", "mean")  # step 2
RESAMPLE_SEED = 100  # step 5b: first seed of the fresh prompt draws (the main draw uses 7)
# the paper's reading of its figure (GPT-2 small, layer 10): about 10-15 features bring the
# probability difference to 0.84, about 40-50 neurons to 0.83
PAPER_MARKS = {"features": 0.84, "neurons": 0.83}


def prompts_for(cfg: Config, seed: int = 7) -> tuple[list[str], Tensor]:
    """Step 1: one prompt per YY (texts, YY values)."""
    if cfg.profile.corpus is None:
        return [f"The war lasted from 17{yy:02d} to 17" for yy in range(100)], torch.arange(100)
    prompts = greater_than_prompts(cfg.profile.corpus, seed, n_per_yy=1)
    return [p.text for p in prompts], torch.tensor([p.yy for p in prompts])


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


# what n = 0 of each curve is, per protocol (the curves' first point is not "the MLP removed": under
# "zero" the output bias stays, b_dec_out for the transcoder and b_out for the MLP)
N0_MEANING = {
    "zero": {
        "features": "transcoder spliced with every feature zeroed: its output bias b_dec_out alone",
        "neurons": "every MLP neuron zeroed: the MLP's output bias b_out alone",
    },
    "mean": {
        "features": "transcoder spliced with every feature mean-ablated at the last token",
        "neurons": "every MLP neuron mean-ablated at the last token (its last-token output mean-ablated)",
    },
}
N0_KEYS = {
    "zero": {"features": "transcoder_bias_only", "neurons": "mlp_bias_only"},
    "mean": {"features": "transcoder_last_token_mean_ablated", "neurons": "mlp_last_token_mean_ablated"},
}


def _layer_basics(
    model: HookedTransformer, texts: list[str], yy: Tensor, ids: list[int], transcoder: Dictionary
) -> tuple[dict[str, float], dict[str, float], Ranking]:
    """Step 3 and 4 at one layer: scores with the MLP replaced by its transcoder and with the MLP
    removed (output zeroed, bias included), and the components' ranking."""
    with spliced(model, [transcoder]):
        replaced = prompt_scores(model, texts, yy, ids)
    with zero_ablated(model, [transcoder.spec.layer]):
        removed = prompt_scores(model, texts, yy, ids)
    return replaced, removed, component_ranking(model, texts, transcoder)


def saved_result(cfg: Config, original: dict[str, float]) -> dict[str, Any] | None:
    """The `case_study@greater_than` stage's result when it was computed on the same prompts and model
    (its original probability difference equals `original`'s), else None. The notebook reads its
    expensive steps (the curves, the prompt redraws) from it rather than pay for them again."""
    path, _ = output_paths(cfg, "greater_than")
    saved = json.loads(path.read_text()) if path.exists() else {}
    if saved.get("probability_difference", {}).get("original") != original["probability_difference"]:
        return None  # none yet, or other prompts or another model: not this run's result
    print(f"reading the curves and prompt redraws from {'/'.join(path.parts[-4:])} (the stage's result)")
    return saved


def _saved_curves(
    saved: dict[str, Any] | None, protocol: str, layer: int, replaced: dict[str, float], n_max: int
) -> dict[str, list[float]] | None:
    """The feature and neuron curves `saved` holds for (protocol, layer), if it was computed with a
    transcoder that gives the same spliced probability difference and over n = 0..n_max."""
    wanted = (protocol, layer, list(range(n_max + 1)))
    for part in (saved or {}, (saved or {}).get("other_protocol", {})):
        curves, spliced = part.get("curves", {}), part.get("probability_difference", {})
        same = (part.get("protocol"), part.get("layer"), curves.get("n")) == wanted
        if same and spliced.get("transcoder_spliced") == replaced["probability_difference"]:
            return {"features": curves["features"], "neurons": curves["neurons"]}
    return None


def _layer_curves(
    model: HookedTransformer,
    texts: list[str],
    yy: Tensor,
    ids: list[int],
    original: dict[str, float],
    transcoder: Dictionary,
    protocol: str,
    settings: CaseStudyProfile,
    basics: tuple[dict[str, float], dict[str, float], Ranking] | None = None,
    saved: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Steps 3-5 at one layer. protocol "zero": components not kept are zeroed at every position
    (the paper's protocol; n = 0 keeps only the output bias); "mean": they are replaced by their mean
    over the prompts at the last token only. `basics`: `_layer_basics` of these prompts, if known;
    `saved`: the stage's result, whose curves are used where they match (`_saved_curves`)."""
    replaced, removed, ranking = basics or _layer_basics(model, texts, yy, ids, transcoder)
    # past a curve's own component count it stays at its full value (every component kept)
    n_max = min(settings.n_components, max(transcoder.spec.d_sae, model.cfg.d_mlp))
    computed = _saved_curves(saved, protocol, transcoder.spec.layer, replaced, n_max)
    if computed is None:
        computed = fast_curves(model, texts, yy, ids, ranking, protocol, n_max)
    feature_curve, neuron_curve = computed["features"], computed["neurons"]
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
        "n0_meaning": N0_MEANING[protocol],
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
        # the paper's own reading of its figure: components to reach an absolute probability difference
        "paper_marks": {
            "features_mark": PAPER_MARKS["features"],
            "features_to_mark": first_reaching(feature_curve, PAPER_MARKS["features"]),
            "neurons_mark": PAPER_MARKS["neurons"],
            "neurons_to_mark": first_reaching(neuron_curve, PAPER_MARKS["neurons"]),
        },
    }
    return {
        "pd": {
            "transcoder_spliced": spliced_pd,
            "mlp_removed": removed["probability_difference"],
            N0_KEYS[protocol]["features"]: feature_curve[0],
            N0_KEYS[protocol]["neurons"]: neuron_curve[0],
        },
        "hanna": {
            "transcoder_spliced": replaced["hanna_probability_difference"],
            "mlp_removed": removed["hanna_probability_difference"],
        },
        "curves": curves,
        "feature_acts": ranking.feature_acts,
        "feature_order": ranking.feature_order,
        "neuron_order": ranking.neuron_order,
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
        original = prompt_scores(model, texts, yy, ids)
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


def feature_ranks(order: Int[Tensor, " d_sae"], features: list[int]) -> list[dict[str, Any]]:
    """Where each of `features` (listed in the paper's order) falls in our variance ranking `order`
    (1 = largest variance); rank None for an index the transcoder does not have."""
    rank_of = torch.empty_like(order)
    rank_of[order] = torch.arange(len(order))
    return [
        {
            "feature": feature,
            "paper_rank": paper_rank,
            "rank": int(rank_of[feature]) + 1 if 0 <= feature < len(order) else None,
            "in_top10": 0 <= feature < len(order) and int(rank_of[feature]) < 10,
        }
        for paper_rank, feature in enumerate(features, start=1)
    ]


def head_strengths(paths: list) -> dict[str, float]:
    """Each attention head on the paths ("attn9.1") and its strongest path's |value|."""
    strongest: dict[str, float] = {}
    for path in paths:
        for label in path.labels:
            if label.startswith("attn"):
                head = label.split("@")[0]
                strongest[head] = max(strongest.get(head, 0.0), abs(path.value))
    return strongest


def check_protocol(settings: CaseStudyProfile) -> None:
    """The headline protocol must be one of PROTOCOLS (step 2)."""
    if settings.protocol not in PROTOCOLS:
        raise ValueError(
            f"greater-than protocol {settings.protocol!r} is not one of {PROTOCOLS}; set "
            "case_study.greater_than.profiles.<profile>.protocol to 'zero' (the paper's) or 'mean'"
        )


@dataclass
class LayerChoice:
    """Step 2's answer: per protocol, the drop in probability difference when each layer's MLP is
    ablated and the layer studied; the headline protocol; and the probability difference with
    every MLP after layer 0 zeroed together."""

    drops: dict[str, dict[int, float]]  # protocol -> layer -> drop
    layers: dict[str, int]  # protocol -> the layer studied
    headline: str
    every_mlp_after_layer_0_zeroed: float

    @property
    def other(self) -> str:
        return "mean" if self.headline == "zero" else "zero"

    @property
    def layer(self) -> int:
        """The headline protocol's layer."""
        return self.layers[self.headline]


@torch.no_grad()
def choose_layers(
    model: HookedTransformer,
    texts: list[str],
    yy: Tensor,
    ids: list[int],
    original: dict[str, float],
    transcoders: dict[int, Dictionary],
    settings: CaseStudyProfile,
) -> LayerChoice:
    """Step 2: the configured layer, or per protocol the transcoder layer whose MLP ablation costs
    the most probability difference ("zero": output zeroed everywhere; "mean": last-token output
    replaced by its mean over the prompts)."""
    ablated = mlp_ablations(model, texts, yy, ids, sorted(transcoders))
    drops = {
        protocol: {layer: original["probability_difference"] - pd for layer, pd in ablated[protocol].items()}
        for protocol in PROTOCOLS
    }
    later_mlps = list(range(1, model.cfg.n_layers))
    with zero_ablated(model, later_mlps):  # does the task need any MLP beyond the embedding MLP?
        without_later_mlps = probability_difference(model, texts, yy, ids)
    layers = {
        protocol: settings.layer if settings.layer is not None else max(by_layer, key=by_layer.get)
        for protocol, by_layer in drops.items()
    }
    return LayerChoice(drops, layers, settings.protocol, without_later_mlps)


@torch.no_grad()
def protocol_analyses(
    model: HookedTransformer,
    texts: list[str],
    yy: Tensor,
    ids: list[int],
    original: dict[str, float],
    transcoders: dict[int, Dictionary],
    choice: LayerChoice,
    settings: CaseStudyProfile,
    saved: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Steps 3-5 for each protocol at its layer: probability differences with the MLP replaced by
    its transcoder and removed, the components' variance ranking and the features-vs-neurons curves
    (read from `saved`, the stage's result, where it matches: see `_layer_curves`)."""
    basics = {  # both protocols may study the same layer (gpt2_small: 10): measured once
        layer: _layer_basics(model, texts, yy, ids, transcoders[layer])
        for layer in set(choice.layers.values())
    }
    analyses = {
        protocol: _layer_curves(
            model, texts, yy, ids, original, transcoders[layer], protocol, settings, basics[layer], saved
        )
        for protocol, layer in choice.layers.items()
    }
    for protocol, analysis in analyses.items():  # what n = 0 of the mean protocol's neuron curve is
        analysis["pd"]["mlp_last_token_mean_ablated"] = (
            original["probability_difference"] - choice.drops["mean"][choice.layers[protocol]]
        )
    return analyses


DROP_MEANING = {
    "zero": "MLP output zeroed everywhere",
    "mean": "MLP output at the last token replaced by its mean over the prompts",
}


def headline_result(
    choice: LayerChoice, analyses: dict[str, dict[str, Any]], original: dict[str, float]
) -> dict[str, Any]:
    """The result's protocol, layer, probability differences and curves: the headline protocol's,
    with the other protocol's under `other_protocol`."""
    headline, other = choice.headline, choice.other
    paper = analyses[headline]
    return {
        "protocol": headline,
        "layer": choice.layer,
        "mlp_ablation": DROP_MEANING[headline],
        "mlp_ablation_drop_by_layer": choice.drops[headline],
        "probability_difference": {
            "original": original["probability_difference"],
            **paper["pd"],
            "chance": original["chance_probability_difference"],
            "every_mlp_after_layer_0_zeroed": choice.every_mlp_after_layer_0_zeroed,
        },
        "hanna_probability_difference": {
            "original": original["hanna_probability_difference"],
            **paper["hanna"],
        },
        "curves": paper["curves"],
        "other_protocol": {
            "protocol": other,
            "layer": choice.layers[other],
            "mlp_ablation": DROP_MEANING[other],
            "mlp_ablation_drop_by_layer": choice.drops[other],
            "probability_difference": analyses[other]["pd"],
            "curves": analyses[other]["curves"],
        },
    }


@torch.no_grad()
def without_feature(
    model: HookedTransformer,
    texts: list[str],
    yy: Tensor,
    ids: list[int],
    transcoder: Dictionary,
    feature: int,
) -> float:
    """Step 3: the probability difference with the transcoder spliced in but `feature` zeroed (the
    paper's harmful feature 5315 at layer 10)."""

    def ablate(layer: int, z: Tensor) -> Tensor:
        z = z.clone()
        z[..., feature] = 0
        return z

    with spliced(model, [transcoder], edit_features=ablate):
        return probability_difference(model, texts, yy, ids)


def top_components(analysis: dict[str, Any], settings: CaseStudyProfile) -> dict[str, Any]:
    """Step 4's ranking, read: the top 10 features and neurons by activation variance, and where
    the configured `expected_features` (the paper's) fall in it."""
    out: dict[str, Any] = {
        "top_features": analysis["feature_order"][:10].tolist(),
        "top_neurons": analysis["neuron_order"][:10].tolist(),
    }
    if settings.expected_features:
        out["expected_features_in_top10"] = sorted(set(settings.expected_features) & set(out["top_features"]))
        out["expected_features"] = feature_ranks(analysis["feature_order"], settings.expected_features)
    return out


@dataclass(eq=False)
class YearGraph:
    """Step 7: the path graph from logit(late) - logit(early) on one prompt."""

    prompt: str
    label: str  # "logit(75) - logit(15)"
    str_tokens: list[str]
    token_ids: list[int]
    paths: list[Path]
    graph: Graph


@torch.no_grad()
def year_graph(
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    texts: list[str],
    yy: Tensor,
    ids: list[int],
    settings: CaseStudyProfile,
    search: SearchConfig,
) -> YearGraph:
    """Step 7: beam search (`search`) back from the logit difference late year minus early year
    (`settings.logit_root` = [prompt YY, late, early]; default [45, 75, 15]) on the prompt with
    that YY, and the graph of the paths."""
    prompt_yy, late, early = settings.logit_root or [45, 75, 15]
    index = int((yy == prompt_yy).nonzero()[0]) if (yy == prompt_yy).any() else len(texts) // 2
    tokens = model.to_tokens(texts[index])[0]
    ctx = AttributionContext.from_tokens(model, transcoders, tokens)
    root = logit_diff_root(ctx, ids[late], ids[early])
    paths = beam_search(ctx, root, search.n_iterations, search.n_branches, per_node=search.per_node)
    graph = build_graph(ctx, root, paths)
    return YearGraph(
        texts[index],
        f"logit({late:02d}) - logit({early:02d})",
        model.to_str_tokens(tokens),
        tokens.tolist(),
        paths,
        graph,
    )


def year_roots(
    model: HookedTransformer, texts: list[str], yy: Tensor, ids: list[int], settings: CaseStudyProfile
) -> list[tuple[Tensor, RootMaker]]:
    """Step 8's prompts and roots: the graph's root moved with each prompt's year YY, logit(YY +
    up) - logit(YY - down) with up and down the graph's (`logit_root` [45, 75, 15]: 30 and 30), on
    the prompts where both years exist."""
    prompt_yy, late, early = settings.logit_root or [45, 75, 15]
    up, down = late - prompt_yy, prompt_yy - early
    return [
        (model.to_tokens(text)[0], logit_diff_at_end(ids[y + up], ids[y - down]))
        for text, y in zip(texts, (int(y) for y in yy), strict=True)
        if 0 <= y - down and y + up < 100
    ]


def year_graph_summary(graph: YearGraph, settings: CaseStudyProfile, title: str) -> dict[str, Any]:
    """The result's `graph`: the heads on the paths, the strongest paths, the graph as JSON (study
    `title` in its metadata) and where the configured `expected_heads` (the paper's) rank."""
    strongest = head_strengths(graph.paths)
    heads = sorted(strongest)
    out: dict[str, Any] = {
        "prompt": graph.prompt,
        "root": graph.label,
        "heads_on_paths": heads,
        "paths": [{"nodes": p.labels, "value": p.value} for p in graph.paths[:10]],
        "json": graph_to_json(
            graph.graph, graph.str_tokens, {"case_study": title, "token_ids": graph.token_ids}
        ),
    }
    if settings.expected_heads:
        out["expected_heads_found"] = sorted(set(settings.expected_heads) & set(heads))
        ranked = sorted(strongest, key=lambda head: -strongest[head])
        out["expected_heads"] = [
            {
                "head": head,
                "found": head in strongest,
                "rank": ranked.index(head) + 1 if head in strongest else None,
                "n_heads_on_paths": len(ranked),
            }
            for head in settings.expected_heads
        ]
    return out


def curves_figure(
    choice: LayerChoice, analyses: dict[str, dict[str, Any]], original: dict[str, float]
) -> plt.Figure:
    """Step 5's curves, headline protocol left and the other right: probability difference against
    the number of top features / neurons kept, with the spliced, original and MLP-removed levels."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    titles = {
        "zero": "the rest zeroed everywhere (the paper's protocol)",
        "mean": "the rest mean-ablated at the last token",
    }
    protocols = [
        (f"{p}: {titles[p]}", choice.layers[p], analyses[p]) for p in (choice.headline, choice.other)
    ]
    for axis, (title, at, analysis) in zip(axes, protocols, strict=True):
        c = analysis["curves"]
        axis.plot(c["n"], c["features"], label=f"top-n transcoder {at} features kept")
        axis.plot(c["n"], c["neurons"], label=f"top-n MLP {at} neurons kept")
        axis.axhline(
            analysis["pd"]["transcoder_spliced"], color="C0", linestyle=":", label="transcoder spliced"
        )
        axis.axhline(original["probability_difference"], color="C1", linestyle=":", label="original model")
        axis.axhline(
            analysis["pd"]["mlp_removed"], color="grey", linestyle="--", label="MLP removed (output zeroed)"
        )
        axis.plot(  # n = 0 is not the MLP removed: say what it is
            [0, 0],
            [c["features"][0], c["neurons"][0]],
            "k.",
            label="n = 0: " + ("output biases only" if c["protocol"] == "zero" else "all mean-ablated"),
        )
        axis.set(xlabel="components kept (ranked by activation variance)", ylabel="probability difference")
        axis.set_title(f"layer {at}; {title}", fontsize=9)
        axis.legend(fontsize=7)
    return figure


@torch.no_grad()
def year_graph_faithfulness(
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    graph: YearGraph,
    texts: list[str],
    yy: Tensor,
    ids: list[int],
    settings: CaseStudyProfile,
    study: CaseStudyConfig,
) -> dict[str, Any]:
    """Step 8: the year graph's features tested by intervention on its prompt and on the study's
    prompts, each with its own circuit (case_studies.faithfulness.study_faithfulness)."""
    return study_faithfulness(
        model,
        transcoders,
        torch.tensor(graph.token_ids),
        (graph.graph.root, graph_features(graph.graph)),
        year_roots(model, texts, yy, ids, settings),
        study.search,
        study.faithfulness,
    )


def run_greater_than(
    cfg: Config,
    study: CaseStudyConfig,
    settings: CaseStudyProfile,
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
) -> tuple[dict[str, Any], dict[str, plt.Figure]]:
    """Steps 1-7, each a public function the notebook calls too; returns the JSON-ready result and
    the figures by file stem."""
    check_protocol(settings)
    texts, yy = prompts_for(cfg)  # step 1
    ids = two_digit_token_ids(model.tokenizer)
    original = prompt_scores(model, texts, yy, ids)
    choice = choose_layers(model, texts, yy, ids, original, transcoders, settings)  # step 2
    analyses = protocol_analyses(model, texts, yy, ids, original, transcoders, choice, settings)  # 3-5
    result = headline_result(choice, analyses, original)
    transcoder = transcoders[choice.layer]
    if settings.feature is not None:
        result["probability_difference"][f"transcoder_without_{settings.feature}"] = without_feature(
            model, texts, yy, ids, transcoder, settings.feature
        )
    if settings.n_prompt_resamples:  # step 5b
        result["prompt_resamples"] = prompt_resamples(cfg, model, ids, transcoder, choice.headline, settings)
    result |= top_components(analyses[choice.headline], settings)
    profiles = year_profiles(model, transcoder, analyses[choice.headline], yy, ids)  # step 6
    result["planted_task_check"] = planted_task_check(profiles)
    graph = year_graph(model, transcoders, texts, yy, ids, settings, study.search)  # step 7
    result["graph"] = year_graph_summary(graph, settings, study.title)
    result["faithfulness"] = year_graph_faithfulness(  # step 8
        model, transcoders, graph, texts, yy, ids, settings, study
    )
    figures = {
        "effects": effects_figure(profiles, choice.layer),
        "graph": graph_figure(graph.graph, graph.str_tokens, f"{study.title}: {graph.label}"),
        "curves": curves_figure(choice, analyses, original),
    }
    return result, figures
