"""Dictionary families on the organism's planted circuits: per-layer transcoders (PLT), a cross-layer
transcoder (CLT), skip and TopK transcoders, on the same prompts at matched total L0.

The question (Lange et al. 2026, "Cross-layer transcoders are incentivized to learn unfaithful
circuits"): a CLT feature at layer l writes to every later MLP at once, so a computation that the
PLT's graph shows as a chain of features over several layers can appear in the CLT's graph as one
feature, a single hop. The organism knows which earlier tokens each planted mechanism reads, so the
families' graphs can also be held to that ground truth.

Algorithm (`compare_families`, the body of the DVC stage `families`, which writes families.json, the
REPORT.md section families.md beside it, and the figure):
1. Families, matched on held-out L0 (`heldout_metrics.json` beside every dictionary: the same
   held-out rows for all):
   - PLT: the per-layer transcoders the case studies use (`evaluation.splice_all_l1`), every layer;
     its total L0 L* is the sum over layers;
   - CLT: the profile's CLT whose total L0 is nearest L* (|log ratio|);
   - skip, TopK: the organism trains them at `swap_layer` only, so each family is the PLT with that
     layer's transcoder replaced by the skip (TopK) transcoder whose L0 is nearest the PLT's there.
     Their columns measure what changing one layer's family does, not a whole replacement.
2. Prompts: per mechanism (a case study with `target_labels` and `context_labels` for the profile),
   `n_prompts` held-out windows ending at a target-labelled token (`common.corpus_prompts`); the
   planted context is the earlier tokens labelled with a context label.
3. Per prompt and family, the full graph with circuit-tracer's logit targets (`full_graph`) and:
   a. size: feature nodes and edges `prune_graph` keeps at (node_threshold, edge_threshold);
   b. replacement and completeness scores of the whole graph (`graph_scores`);
   c. hops (`hop_profile`): with N the row-normalised |adjacency| and w the target weights, the
      k-th term w N^(k+1) of the influence series is the influence carried by paths with exactly k
      feature nodes (error and embedding nodes are sources, so a path ends there). The part of it at
      the embeddings, e_k, is what the input tokens send through k features; reported: the mean
      number of features on those paths, sum_k k e_k / sum_k e_k, and the multi-hop share, the part
      of sum_k e_k with k >= 2;
   d. ground truth: of the influence reaching the earlier tokens (positions 1..t-1; BOS and the
      prompt's last token excluded), the share at the planted context's positions, beside chance,
      those positions' share of the earlier tokens;
   e. faithfulness by intervention (circuits.faithfulness, live: the real model's attention and
      LayerNorms react): sufficiency and necessity under mean ablation of the pruned graph's
      features for the top logit target (means over the mechanism's prompts' real tokens, per
      family), and the percentile of the sufficiency among `n_random` random sets of active
      features of the same size.
4. Statistics: per mechanism and pooled over mechanisms, each family's mean over prompts with a 95%
   paired bootstrap interval (prompts resampled, every family on the same draws), and each family's
   difference from the PLT with its interval.
5. Verdicts, fixed before the run:
   - `hops`: the claim "the CLT's input-to-output paths are shorter than the PLT's" is "ok" when
     the pooled interval of PLT minus CLT mean features per path lies above 0, else "BELOW"; the
     direction (shorter, longer, no difference) is stated either way;
   - `ground_truth`, per family: "ok" when the pooled interval of its context share minus chance
     lies above 0, else "BELOW".
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from jaxtyping import Float
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from transcoder_lab import io
from transcoder_lab.case_studies.common import (
    LabelledTokens,
    Prompt,
    context_positions,
    corpus_prompts,
    labelled_heldout,
    settings_for,
)
from transcoder_lab.circuits import AttributionContext, full_graph, graph_scores, prune_graph
from transcoder_lab.circuits.faithfulness import circuit_faithfulness
from transcoder_lab.circuits.full_graph import FullGraph, normalize_matrix
from transcoder_lab.circuits.replacement import Replacement
from transcoder_lab.config import Config, ConfigError
from transcoder_lab.dictionaries import load_dictionary
from transcoder_lab.dictionaries.crosslayer import crosslayer_config, load_crosslayer
from transcoder_lab.dictionaries.matched_gaps import bootstrap_means
from transcoder_lab.paths import HELDOUT_METRICS, crosslayer_dir, dictionary_dir, figures_dir, results_dir
from transcoder_lab.plotting import save_figure
from transcoder_lab.sources.models import load_model

FAMILIES = ("PLT", "CLT", "skip", "TopK")
MEASURES = (
    "n_features_kept",
    "n_edges_kept",
    "replacement_score",
    "completeness_score",
    "sufficiency",
    "necessity",
    "sufficiency_percentile",
    "context_share",
    "context_chance",
    "mean_features_per_path",
    "multi_hop_share",
)


@dataclass
class FamiliesConfig:
    """A profile's `families:` block (config.py keeps it as a plain dict; `families_config` checks it)."""

    mechanisms: list[str] = field(default_factory=list)  # case studies with target and context labels
    n_prompts: int = 8  # per mechanism
    window: int = 16  # tokens of context before each prompt's last token
    swap_layer: int = 2  # the layer where skip and TopK transcoders are trained
    node_threshold: float = 0.8  # circuit-tracer's pruning defaults
    edge_threshold: float = 0.98
    n_random: int = 10  # random feature sets per prompt for the sufficiency percentile
    n_bootstrap: int = 2000
    seed: int = 0


def families_config(cfg: Config) -> FamiliesConfig | None:
    """`cfg.profile.families` checked against FamiliesConfig (None: the profile compares none, as
    the paper profiles, whose `mechanisms` list is empty)."""
    raw = cfg.profile.families
    if not raw or not raw.get("mechanisms"):
        return None
    try:
        checked = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(FamiliesConfig), raw))
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        reason = str(getattr(error, "msg", error)).splitlines()[0]
        raise ConfigError(
            f"invalid config at key 'profile.families.{key}': {reason}. Compare with FamiliesConfig in "
            "transcoder_lab/case_studies/families.py"
        ) from error
    assert isinstance(checked, FamiliesConfig)
    return checked


# -- step 1: the families at matched L0 ---------------------------------------------------------------


def _heldout_metrics(path: Path) -> dict[str, Any]:
    return json.loads((path / HELDOUT_METRICS).read_text())


def _heldout_l0(path: Path) -> float:
    return float(_heldout_metrics(path)["l0"])


def _nearest(target: float, candidates: dict[Any, float]) -> Any:
    """The key whose L0 is nearest `target` in |log ratio| (an L0 of 0 is never nearest)."""
    return min(candidates, key=lambda key: abs(math.log(max(candidates[key], 1e-9) / target)))


@dataclass(frozen=True)
class Family:
    name: str
    replacement: Replacement
    dictionaries: str  # which dictionaries, in words
    total_l0: float  # held-out, summed over layers
    l0_by_layer: list[float]


def matched_families(cfg: Config, settings: FamiliesConfig) -> list[Family]:
    """Step 1: the PLT, and the other families' members nearest its L0."""
    grid, l1 = cfg.profile.dictionaries, cfg.profile.evaluation.splice_all_l1
    n_layers = cfg.profile.model.n_layers
    if l1 is None or grid.layers_of("transcoder") != list(range(n_layers)):
        raise ConfigError(
            "profile.families needs a transcoder cell at every layer (L<layer>_transcoder in "
            "profile.dictionaries.cells) and profile.evaluation.splice_all_l1 set"
        )
    plt_dirs = [dictionary_dir(cfg, layer, "transcoder", l1) for layer in range(n_layers)]
    plt = {layer: load_dictionary(path) for layer, path in enumerate(plt_dirs)}
    plt_l0 = [_heldout_l0(path) for path in plt_dirs]
    families = [Family("PLT", plt, f"per-layer transcoders, L1 {l1:g}", sum(plt_l0), plt_l0)]

    clt_l1s = crosslayer_config(cfg).l1_coefficients
    if not clt_l1s:
        raise ConfigError("profile.families compares a CLT: list profile.crosslayer.l1_coefficients")
    clt_l0 = {value: _heldout_metrics(crosslayer_dir(cfg, value)) for value in clt_l1s}
    chosen = _nearest(sum(plt_l0), {value: m["l0"] for value, m in clt_l0.items()})
    by_layer = [float(layer["l0"]) for layer in clt_l0[chosen]["by_layer"]]
    families.append(
        Family(
            "CLT",
            load_crosslayer(crosslayer_dir(cfg, chosen)),
            f"CLT, L1 {chosen:g}",
            sum(by_layer),
            by_layer,
        )
    )

    swap = settings.swap_layer
    for name, arm in (("skip", "skip_transcoder"), ("TopK", "topk_transcoder")):
        if swap not in grid.layers_of(arm):
            raise ConfigError(f"profile.families: no L{swap}_{arm} cell to compare (swap_layer {swap})")
        members = {s: dictionary_dir(cfg, swap, arm, s) for s in grid.sweep(arm)}
        pick = _nearest(plt_l0[swap], {s: _heldout_l0(path) for s, path in members.items()})
        l0 = list(plt_l0)
        l0[swap] = _heldout_l0(members[pick])
        described = f"k {pick.k}" if pick.k is not None else f"L1 {pick.l1_coefficient:g}"
        families.append(
            Family(
                name,
                {**plt, swap: load_dictionary(members[pick])},
                f"PLT with layer {swap} a {name} transcoder, {described}",
                sum(l0),
                l0,
            )
        )
    return families


# -- step 3: the measures on one prompt -------------------------------------------------------------


def hop_profile(graph: FullGraph) -> tuple[Float[Tensor, "hops n_pos"], Float[Tensor, " hops"]]:
    """Step 3c: (e, r), e[k, p] the influence reaching the embedding of position p through paths with
    exactly k feature nodes, r[k] the influence reaching the error nodes so; sum e + sum r = sum w."""
    normalized = normalize_matrix(graph.adjacency)
    term = graph.target_weights @ normalized
    embeddings, errors = [], []
    while term.any():  # N is nilpotent on a DAG: the series ends at the graph's depth
        embeddings.append(term[graph.embedding_slice])
        errors.append(term[graph.error_slice].sum())
        term = term @ normalized
    return torch.stack(embeddings), torch.stack(errors)


def path_lengths(embedding_hops: Float[Tensor, "hops n_pos"]) -> tuple[float, float, list[float]]:
    """(mean features per input-to-output path, share with two or more, share with k = 0, 1, ...),
    influence-weighted."""
    per_hop = embedding_hops.sum(dim=1)
    total = float(per_hop.sum())
    k = torch.arange(len(per_hop), dtype=per_hop.dtype)
    return float((k * per_hop).sum()) / total, float(per_hop[2:].sum()) / total, (per_hop / total).tolist()


def context_share(embedding_hops: Float[Tensor, "hops n_pos"], context: list[int]) -> tuple[float, float]:
    """Step 3d: (the planted context's share of the influence reaching positions 1..t-1, chance)."""
    reaching = embedding_hops.sum(dim=0)
    earlier = reaching[1:-1]
    n_earlier = len(reaching) - 2
    share = float(reaching[context].sum() / earlier.sum()) if float(earlier.sum()) > 0 else float("nan")
    return share, len(context) / n_earlier if n_earlier > 0 else float("nan")


def feature_means(model: HookedTransformer, family: Family, prompts: list[Prompt]) -> dict[int, Tensor]:
    """Each feature's mean activation over the prompts' real tokens (BOS excluded), per layer."""
    sums: dict[int, Tensor] = {}
    n = 0
    for prompt in prompts:
        ctx = AttributionContext.from_tokens(model, family.replacement, prompt.tokens)
        for layer, z in ctx.feature_acts.items():
            sums[layer] = sums.get(layer, 0) + z[1:].double().sum(dim=0)
        n += len(prompt.tokens) - 1
    return {layer: total / n for layer, total in sums.items()}


def prompt_measures(
    model: HookedTransformer,
    family: Family,
    prompt: Prompt,
    context: list[int],
    means: dict[int, Tensor],
    settings: FamiliesConfig,
    seed: int,
) -> dict[str, Any]:
    """Steps 3a-e on one prompt."""
    ctx = AttributionContext.from_tokens(model, family.replacement, prompt.tokens)
    graph = full_graph(ctx)
    pruned = prune_graph(graph, settings.node_threshold, settings.edge_threshold)
    replacement, completeness = graph_scores(graph)
    embedding_hops, _ = hop_profile(graph)
    mean_features, multi_hop, by_k = path_lengths(embedding_hops)
    share, chance = context_share(embedding_hops, context)
    kept = pruned.node_mask[: graph.n_features]
    circuit = [tuple(node) for node in graph.active_features[kept].tolist()]
    live = circuit_faithfulness(
        model,
        family.replacement,
        prompt.tokens,
        graph.targets[0].root,
        circuit,
        means,
        n_random=settings.n_random,
        seed=seed,
        per_node=False,
    )["live"]
    return {
        "n_features_kept": int(kept.sum()),
        "n_edges_kept": int(pruned.edge_mask.sum()),
        "replacement_score": replacement,
        "completeness_score": completeness,
        "sufficiency": live["sufficiency"],
        "necessity": live["necessity"],
        "sufficiency_percentile": live["random_sufficiency"]["percentile_of_circuit"],
        "context_share": share,
        "context_chance": chance,
        "mean_features_per_path": mean_features,
        "multi_hop_share": multi_hop,
        "share_by_features_per_path": by_k,
    }


# -- steps 2, 4, 5 ------------------------------------------------------------------------------------


def mechanism_prompts(
    cfg: Config, heldout: LabelledTokens, name: str, settings: FamiliesConfig
) -> tuple[list[Prompt], list[list[int]]]:
    """Step 2: the mechanism's prompts and, per prompt, its planted context's positions."""
    study = settings_for(cfg, cfg.case_study[name], name)
    if not study.target_labels or not study.context_labels:
        raise ConfigError(
            f"profile.families.mechanisms: case study '{name}' names no target_labels and context_labels "
            f"for profile '{cfg.profile.name}'; choose studies that do (conf/case_study/<name>.yaml)"
        )
    prompts = corpus_prompts(heldout, study.target_labels, settings.n_prompts, settings.window)
    context_ids = torch.tensor(heldout.label_ids(study.context_labels))
    return prompts, [context_positions(prompt, context_ids) for prompt in prompts]


def summarise(values: np.ndarray, settings: FamiliesConfig) -> dict[str, Any]:
    """Step 4 for one measure: values [n_prompts, n_families] -> each family's mean and interval and
    its difference from the first family (the PLT), prompts resampled together; prompts where a
    family's value is undefined are left out (their number is given)."""
    defined = np.isfinite(values).all(axis=1)
    rows = values[defined]
    out: dict[str, Any] = {"n_prompts": int(defined.sum())}
    if len(rows) < 2:
        return out
    columns = np.concatenate([rows, rows[:, 1:] - rows[:, :1]], axis=1)
    draws = bootstrap_means(columns, settings.n_bootstrap, settings.seed)
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    mean = columns.mean(axis=0)
    n = len(FAMILIES)
    for i, family in enumerate(FAMILIES):
        out[family] = {"mean": float(mean[i]), "low": float(low[i]), "high": float(high[i])}
        if i:
            j = n + i - 1
            out[family]["minus_PLT"] = {"mean": float(mean[j]), "low": float(low[j]), "high": float(high[j])}
    return out


def _array(rows: list[dict[str, dict[str, Any]]], measure: str) -> np.ndarray:
    return np.array(
        [[np.nan if row[f][measure] is None else row[f][measure] for f in FAMILIES] for row in rows],
        dtype=float,
    )


def verdicts(pooled: dict[str, Any]) -> dict[str, Any]:
    """Step 5 from the pooled statistics."""
    hops = pooled["mean_features_per_path"].get("CLT", {}).get("minus_PLT")
    if hops is None:
        direction, verdict = "undefined", "BELOW"
    else:  # CLT minus PLT: below zero is a shorter CLT path
        direction = "shorter" if hops["high"] < 0 else "longer" if hops["low"] > 0 else "no difference"
        verdict = "ok" if hops["high"] < 0 else "BELOW"
    ground_truth = {}
    for family in FAMILIES:
        above = pooled["context_share_above_chance"].get(family)
        ground_truth[family] = "ok" if above is not None and above["low"] > 0 else "BELOW"
    return {
        "hops": {
            "claim": "the CLT's input-to-output paths have fewer features than the PLT's",
            "CLT_minus_PLT": hops,
            "direction": direction,
            "verdict": verdict,
        },
        "ground_truth": {"claim": "the planted context's share of influence is above chance", **ground_truth},
    }


def statistics(rows: list[dict[str, dict[str, Any]]], settings: FamiliesConfig) -> dict[str, Any]:
    """Step 4 over `rows` (one per prompt: family -> measures)."""
    out = {measure: summarise(_array(rows, measure), settings) for measure in MEASURES}
    above = _array(rows, "context_share") - _array(rows, "context_chance")
    out["context_share_above_chance"] = summarise(above, settings)
    return out


def compare_families(cfg: Config) -> dict[str, Any]:
    """Steps 1-5, written to `results/<profile>/families.json`."""
    settings = families_config(cfg)
    out_path = results_dir(cfg) / "families.json"
    if settings is None:  # the outputs DVC expects, each saying why there are no numbers
        reason = f"profile '{cfg.profile.name}' has no families block (see conf/profile/organism.yaml)"
        result = {"compared": False, "reason": reason}
        io.write_json(out_path, result)
        io.write_text(results_dir(cfg) / "families.md", "")
        note = figures_dir(cfg) / "families" / "NOT_COMPARED.txt"
        io.write_text(note, f"families not compared: {reason}\n")
        return result
    torch.manual_seed(settings.seed)
    model = load_model(cfg.profile, cfg.paths.models)
    families = matched_families(cfg, settings)
    heldout = labelled_heldout(cfg, model.tokenizer.bos_token_id)
    per_mechanism, pooled_rows = {}, []
    for name in settings.mechanisms:
        prompts, contexts = mechanism_prompts(cfg, heldout, name, settings)
        means = {family.name: feature_means(model, family, prompts) for family in families}
        rows = []
        for index, (prompt, context) in enumerate(tqdm(list(zip(prompts, contexts, strict=True)), desc=name)):
            rows.append(
                {
                    family.name: prompt_measures(
                        model, family, prompt, context, means[family.name], settings, settings.seed + index
                    )
                    for family in families
                }
            )
        per_mechanism[name] = {
            "n_prompts": len(prompts),
            "statistics": statistics(rows, settings),
            "prompts": rows,
        }
        pooled_rows += rows
    pooled = statistics(pooled_rows, settings)
    result = {
        "compared": True,
        "settings": asdict(settings),
        "families": [
            {
                "name": f.name,
                "dictionaries": f.dictionaries,
                "total_l0": f.total_l0,
                "l0_by_layer": f.l0_by_layer,
            }
            for f in families
        ],
        "pooled": pooled,
        "mechanisms": per_mechanism,
        "verdicts": verdicts(pooled),
    }
    io.write_json(out_path, result)
    figure = families_figure(result)
    save_figure(figure, figures_dir(cfg) / "families" / "families")
    plt.close(figure)
    figures_link = os.path.relpath(figures_dir(cfg), results_dir(cfg))
    io.write_text(results_dir(cfg) / "families.md", "\n".join(families_section(result, figures_link)))
    return result


def families_figure(result: dict[str, Any]) -> plt.Figure:
    """Left: the pooled share of input-to-output influence by the number of features on its path,
    per family; right: the planted context's share of the influence on earlier tokens, per mechanism
    and family, with 95% intervals, beside chance."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    rows = [row for mechanism in result["mechanisms"].values() for row in mechanism["prompts"]]
    width = 0.8 / len(FAMILIES)
    for i, family in enumerate(FAMILIES):
        shares = [row[family]["share_by_features_per_path"] for row in rows]
        depth = max(len(share) for share in shares)
        mean = np.mean([share + [0.0] * (depth - len(share)) for share in shares], axis=0)
        left.bar(np.arange(depth) + (i - 1.5) * width, mean, width, label=family)
    left.set(xlabel="features on the path", ylabel="share of the influence from the input tokens")
    left.set_title("Hop structure (all prompts)")
    left.legend()
    names = list(result["mechanisms"])
    for i, family in enumerate(FAMILIES):
        stats = [result["mechanisms"][name]["statistics"]["context_share"].get(family) for name in names]
        x = np.arange(len(names)) + (i - 1.5) * width
        mean = [s["mean"] if s else np.nan for s in stats]
        error = [
            [s["mean"] - s["low"] if s else 0 for s in stats],
            [s["high"] - s["mean"] if s else 0 for s in stats],
        ]
        right.bar(x, mean, width, yerr=error, capsize=2, label=family)
    for j, name in enumerate(names):
        chance = result["mechanisms"][name]["statistics"]["context_chance"].get("PLT")
        if chance:
            right.hlines(chance["mean"], j - 0.45, j + 0.45, colors="black", linestyles="dashed")
    right.set_xticks(range(len(names)), names)
    right.set(ylabel="planted context's share (dashed: chance)")
    right.set_title("Ground truth")
    figure.tight_layout()
    return figure


def _cell(entry: dict[str, Any] | None, digits: int = 2) -> str:
    if not entry:
        return "n/a"
    return f"{entry['mean']:.{digits}f} [{entry['low']:.{digits}f}, {entry['high']:.{digits}f}]"


COLUMNS = {  # table header -> (measure, digits)
    "feature nodes kept": ("n_features_kept", 0),
    "edges kept": ("n_edges_kept", 0),
    "replacement": ("replacement_score", 2),
    "completeness": ("completeness_score", 2),
    "sufficiency": ("sufficiency", 2),
    "necessity": ("necessity", 2),
    "context share": ("context_share", 2),
    "features per path": ("mean_features_per_path", 2),
    "multi-hop share": ("multi_hop_share", 2),
}


def families_section(result: dict[str, Any], figures_link: str) -> list[str]:
    """REPORT.md's section: the pooled table (mean and 95% interval over prompts), the families'
    dictionaries and L0, each mechanism's key numbers, and the verdicts."""
    if not result.get("compared"):
        return []
    settings, pooled = result["settings"], result["pooled"]
    n = pooled["mean_features_per_path"]["n_prompts"]
    lines = [
        "## Dictionary families on the planted circuits",
        "",
        "Per-layer transcoders (PLT), the CLT nearest their total held-out L0, and the "
        f"layer-{settings['swap_layer']} skip and TopK transcoders swapped into the PLT, on the same "
        "held-out prompts of "
        f"{len(result['mechanisms'])} mechanisms ({n} prompts; case_studies/families.py). Full graphs with "
        f"circuit-tracer's logit targets, pruned at ({settings['node_threshold']}, "
        f"{settings['edge_threshold']}); "
        "sufficiency and necessity of the pruned graph's features for the top logit, live, under mean "
        "ablation; context share: the planted context's share of the influence reaching earlier tokens; "
        "features per path: influence-weighted, over input-to-output paths. Mean [95% paired bootstrap "
        "interval over prompts].",
        "",
        "| family | dictionaries | total L0 | " + " | ".join(COLUMNS) + " |",
        "|---" * (3 + len(COLUMNS)) + "|",
    ]
    for family in result["families"]:
        name = family["name"]
        cells = [_cell(pooled[measure].get(name), digits) for measure, digits in COLUMNS.values()]
        lines.append(
            f"| {name} | {family['dictionaries']} | {family['total_l0']:.1f} | " + " | ".join(cells) + " |"
        )
    chance = pooled["context_chance"].get("PLT")
    hops, truth = result["verdicts"]["hops"], result["verdicts"]["ground_truth"]
    lines += [
        "",
        f"Chance context share (the context's share of the earlier positions): {_cell(chance)}.",
        "",
        "| mechanism | prompts | features per path, "
        + " / ".join(FAMILIES)
        + " | context share, "
        + " / ".join(FAMILIES)
        + " |",
        "|---|---|---|---|",
    ]
    for name, mechanism in result["mechanisms"].items():
        stats = mechanism["statistics"]
        path = " / ".join(_cell(stats["mean_features_per_path"].get(f)) for f in FAMILIES)
        share = " / ".join(_cell(stats["context_share"].get(f)) for f in FAMILIES)
        lines.append(f"| {name} | {mechanism['n_prompts']} | {path} | {share} |")
    lines += [
        "",
        f'- Hops, fixed before the run: "{hops["claim"]}": CLT minus PLT {_cell(hops["CLT_minus_PLT"])} '
        f"features per path, {hops['direction']}: **{hops['verdict']}**.",
        f'- Ground truth, "{truth["claim"]}": ' + ", ".join(f"{f} **{truth[f]}**" for f in FAMILIES) + ".",
        "",
        f"![families]({figures_link}/families/families.png)",
        "",
    ]
    return lines
