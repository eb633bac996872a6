"""Case studies (docs/design.md §6.1): one config under conf/case_study/, one notebook, one DVC stage
instance each. The stage calls `run_case_study` through `not_configured.run_if_configured` (which
writes a "not configured" result instead on a profile the study has no settings for); the notebook
walks the same analysis one step a cell, calling the public step functions that the analysis
(`feature.run_feature_study`, `greater_than.run_greater_than`) calls in the same order.
`run_case_study`

1. picks the study's settings for the active profile (`common.settings_for`),
2. loads the model and the transcoders circuits run on (`common.circuit_transcoders`),
3. runs the study's analysis (`ANALYSES[study.analysis]`: `feature` or `greater_than`),
4. checks the results against the profile's expected values,
5. builds the full attribution graph of the study's graph prompt (`circuits.full_graph`, circuit-
   tracer's salient-logit targets) and records its size, pruning and replacement and completeness
   scores (`circuits.graph_summary`) under `full_graph`, and
6. writes `results/<profile>/case_studies/<name>.json` and `figures/<profile>/case_studies/<name>/`,
   with the study's attribution graph and the pruned full graph (slug `<name>_full`) also in
   circuit-tracer's front-end format in its subfolder `attribution_graph/` (`write_attribution_graph`,
   `write_full_graph`), which
   `python -m transcoder_lab.circuits.circuit_tracer serve <that folder>` shows in circuit-tracer's viewer.
   On organism profiles every transcoder feature there is labelled from the held-out corpus's
   ground truth (`feature_labels.heldout_feature_labels`, computed once for both graphs): its clerp
   is its best label and F1, its feature file lists its top held-out contexts. Profiles without
   ground truth write the graphs without labels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer

from transcoder_lab import io
from transcoder_lab.case_studies.common import circuit_transcoders, output_paths, settings_for
from transcoder_lab.case_studies.feature import heldout_tokens, run_feature_study
from transcoder_lab.case_studies.feature_labels import FeatureLabels, heldout_feature_labels
from transcoder_lab.case_studies.greater_than import run_greater_than
from transcoder_lab.circuits import AttributionContext, FullGraph, full_graph, graph_summary, prune_graph
from transcoder_lab.circuits.circuit_tracer.graph_files import (
    frontend_full_graph,
    frontend_graph,
    transcoder_features,
    write_frontend_graph,
)
from transcoder_lab.circuits.full_graph import active_feature_table
from transcoder_lab.circuits.invariant import logit_effects
from transcoder_lab.config import Config
from transcoder_lab.dictionaries import Dictionary
from transcoder_lab.paths import GRAPH_FOLDER
from transcoder_lab.plotting import save_figure
from transcoder_lab.report import check_expectations
from transcoder_lab.sources.models import load_model

ANALYSES = {"feature": run_feature_study, "greater_than": run_greater_than}
N_TOKEN_PREDICTIONS = 10  # output tokens per feature file, each way


def _plain(value: Any) -> Any:
    """JSON-safe: tensors to lists, NaN/inf to None, dict keys to strings."""
    if isinstance(value, torch.Tensor):
        return _plain(value.tolist())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_case_study(cfg: Config, name: str, write: bool = True) -> dict[str, Any]:
    """Steps 1-6 of the module docstring; returns the result (with `figures`, not serialised)."""
    if name not in cfg.case_study:
        raise KeyError(
            f"no case study '{name}'; configured: {sorted(cfg.case_study)}. Add conf/case_study/{name}.yaml "
            "and list it under `case_study` in conf/config.yaml's defaults (README: Add a case study)."
        )
    study = cfg.case_study[name]
    if study.analysis not in ANALYSES:
        raise ValueError(f"case study '{name}': analysis '{study.analysis}' is not one of {sorted(ANALYSES)}")
    settings = settings_for(cfg, study, name)
    torch.manual_seed(0)
    model = load_model(cfg.profile, cfg.paths.models)
    transcoders = circuit_transcoders(cfg, model.cfg.device)
    result, figures = ANALYSES[study.analysis](cfg, study, settings, model, transcoders)
    result = _plain(
        {
            "name": name,
            "title": study.title,
            "question": study.question,
            "profile": cfg.profile.name,
            **result,
        }
    )
    result["expected"] = check_expectations(result, settings.expected)
    study_graph, graph = graph_of(result), None
    if study_graph is not None:
        result["full_graph"], graph = full_graph_of_prompt(
            model, transcoders, study_graph[0]["metadata"]["token_ids"], study.full_graph_max_features, name
        )
    if write:
        json_path, figure_dir = output_paths(cfg, name)
        result["figures"] = []
        for stem, figure in figures.items():
            result["figures"] += [
                str(path) for path in save_figure(figure, figure_dir / stem) if path.suffix == ".png"
            ]
        # every feature's ground-truth label, where the profile has ground truth and a graph to show
        heldout = heldout_tokens(cfg, model) if study_graph is not None else None
        ground_truth = cfg.profile.study.ground_truth
        labels = (
            None if heldout is None else heldout_feature_labels(model, transcoders, heldout, ground_truth)
        )
        folder, scan = figure_dir / GRAPH_FOLDER, cfg.profile.name
        write_attribution_graph(folder, name, scan, result, model, transcoders, labels)
        if graph is not None:
            token_ids = study_graph[0]["metadata"]["token_ids"]
            write_full_graph(folder, f"{name}_full", scan, graph, token_ids, model, transcoders, labels)
        io.write_text(json_path, json.dumps(result, indent=2) + "\n")
    result["figure_objects"] = figures
    return result


def full_graph_of_prompt(
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    token_ids: list[int],
    max_features: int,
    name: str,
) -> tuple[dict[str, Any], FullGraph | None]:
    """Step 5: (`graph_summary`, graph) of the full graph of `token_ids`, or (the reason it was
    skipped, None)."""
    ctx = AttributionContext.from_tokens(model, transcoders, torch.tensor(token_ids, device=model.cfg.device))
    n_active = int(active_feature_table(ctx)[0].shape[0])
    if n_active > max_features:
        skipped = {
            "skipped": f"{n_active} active features > full_graph_max_features = {max_features} (its dense "
            f"adjacency would take {8 * n_active**2 / 2**30:.1f} GiB); raise it with "
            f"`-S case_study.{name}.full_graph_max_features=<n>` where memory allows",
            "n_active_features": n_active,
        }
        return skipped, None
    graph = full_graph(ctx)
    return _plain(graph_summary(graph)), graph


def graph_of(result: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The study's beam-search graph JSON and its root's label (feature studies: `circuit.graph`;
    greater-than: `graph.json`), or None when the result has none."""
    if "circuit" in result:
        return result["circuit"]["graph"], result["root"]["label"]
    if "graph" in result:
        return result["graph"]["json"], result["graph"]["root"]
    return None


@torch.no_grad()
def write_attribution_graph(
    folder: Path,
    name: str,
    scan: str,
    result: dict[str, Any],
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    labels: FeatureLabels | None = None,
) -> Path | None:
    """The study's graph JSON (feature studies: `circuit.graph`; greater-than: `graph.json`) in
    circuit-tracer's front-end format, slug `name`, in `folder`; each transcoder feature's file gets
    its top and bottom output tokens (`logit_effects`) and, with `labels`, its clerp its label and
    its file its top held-out contexts (`feature_files`). None when the result has no graph."""
    study_graph = graph_of(result)
    if study_graph is None:
        return None
    graph, label = study_graph
    cfg = model.cfg
    data = frontend_graph(
        graph, slug=name, scan=scan, n_layers=cfg.n_layers, d_vocab=cfg.d_vocab, root_label=label,
        feature_labels=labels.clerps() if labels is not None else None,
    )  # fmt: skip
    return write_frontend_graph(folder, data, feature_files(data, model, transcoders, labels))


@torch.no_grad()
def write_full_graph(
    folder: Path,
    slug: str,
    scan: str,
    graph: FullGraph,
    token_ids: list[int],
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    labels: FeatureLabels | None = None,
) -> Path:
    """The full graph, pruned at circuit-tracer's default thresholds, in circuit-tracer's front-end
    format beside the beam-search graph (`frontend_full_graph`), with the same feature files and,
    with `labels`, the same clerps."""
    decode = model.tokenizer.decode
    data = frontend_full_graph(
        graph,
        prune_graph(graph),
        slug=slug,
        scan=scan,
        prompt_tokens=[decode([t]) for t in token_ids],
        token_ids=token_ids,
        target_tokens=[decode([t.token]) if t.token is not None else t.label for t in graph.targets],
        d_vocab=model.cfg.d_vocab,
        feature_labels=labels.clerps() if labels is not None else None,
    )
    return write_frontend_graph(folder, data, feature_files(data, model, transcoders, labels))


def feature_files(
    data: dict[str, Any],
    model: HookedTransformer,
    transcoders: dict[int, Dictionary],
    labels: FeatureLabels | None,
) -> dict[tuple[int, int], dict[str, Any]]:
    """The fields of each transcoder feature's viewer file: its token predictions
    (`token_predictions`) and, with `labels`, its top held-out contexts."""
    files: dict[tuple[int, int], dict[str, Any]] = {key: {} for key in transcoder_features(data)}
    for key, fields in token_predictions(data, model, transcoders).items():
        files[key].update(fields)
    if labels is not None:
        decode = model.tokenizer.decode
        for key, fields in labels.viewer_files(files, lambda t: decode([t])).items():
            files[key].update(fields)
    return files


def token_predictions(
    data: dict[str, Any], model: HookedTransformer, transcoders: dict[int, Dictionary]
) -> dict[tuple[int, int], dict[str, list[str]]]:
    """For each transcoder feature of a front-end graph, its top and bottom output tokens
    (`logit_effects`), as the viewer's feature files list them under "Token Predictions"."""
    info = {}
    for layer, index in transcoder_features(data):
        effects = logit_effects(model, transcoders[layer], index)
        if effects is None:
            continue
        k = min(N_TOKEN_PREDICTIONS, effects.numel())
        top, bottom = effects.topk(k).indices.tolist(), (-effects).topk(k).indices.tolist()
        info[(layer, index)] = {
            "top_logits": [model.tokenizer.decode([i]) for i in top],
            "bottom_logits": [model.tokenizer.decode([i]) for i in bottom],
        }
    return info
