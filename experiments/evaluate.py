"""DVC stage `evaluate`: splice every dictionary into the model on one fixed held-out token set.

Writes `results/<profile>/pareto.csv` (one row per dictionary of the grid), `splice_all.json`
(every layer's transcoder spliced together: the paper's "all transcoders" experiment),
`figures/<profile>/pareto.{png,svg}` and `expected_vs_measured.md` (the profile's expected values
beside what was measured).
"""

import json

import pandas as pd
import torch

from transcoder_lab import io
from transcoder_lab.config import Config
from transcoder_lab.dictionaries import Dictionary, load_dictionary
from transcoder_lab.evaluation import splice_metrics, token_hash
from transcoder_lab.models import load_model
from transcoder_lab.paths import dictionary_dir, figures_dir, published_dir, results_dir
from transcoder_lab.plotting import pareto_figure, save_figure
from transcoder_lab.report import expected_vs_measured, reference_table
from transcoder_lab.stage import stage_main
from transcoder_lab.text_source import heldout_contexts

PARETO_COLUMNS = [
    "profile", "layer", "kind", "l1_coefficient", "l0", "ce_clean", "ce_spliced", "ce_zero_ablation",
    "loss_recovered", "kl", "fvu", "dead_fraction",
]  # fmt: skip


def splice_all_set(
    cfg: Config, device: str | torch.device = "cpu", layers: list[int] | None = None
) -> list[Dictionary]:
    """The transcoders spliced together: at `layers` (default: `splice_all_layers`, else every grid
    layer), from the published set or from the grid at `splice_all_l1`."""
    evaluation, grid = cfg.profile.evaluation, cfg.profile.dictionaries
    layers = layers or evaluation.splice_all_layers or grid.layers_of("transcoder")
    if evaluation.splice_all_source == "published":
        return [load_dictionary(published_dir(cfg, layer), device) for layer in layers]
    missing = [f"L{layer}_transcoder" for layer in layers if f"L{layer}_transcoder" not in grid.cells]
    if missing or evaluation.splice_all_l1 not in grid.l1_coefficients:
        raise ValueError(
            "profile.evaluation.splice_all_l1 must be one of profile.dictionaries.l1_coefficients and "
            f"profile.dictionaries.cells must hold a transcoder at every splice-all layer; missing: {missing}"
        )
    return [
        load_dictionary(dictionary_dir(cfg, layer, "transcoder", evaluation.splice_all_l1), device)
        for layer in layers
    ]


def run(cfg: Config) -> dict:
    profile, grid = cfg.profile, cfg.profile.dictionaries
    model = load_model(profile, cfg.paths.models)
    context_size = grid.harvest.context_size
    tokens = heldout_contexts(cfg, model.tokenizer, profile.evaluation.n_contexts, context_size)
    cells = [(layer, kind, l1) for layer, kind in grid.parsed_cells for l1 in grid.l1_coefficients]
    device = model.cfg.device
    sets = {
        f"{kind}@L{layer} l1={l1:g}": [load_dictionary(dictionary_dir(cfg, layer, kind, l1), device)]
        for layer, kind, l1 in cells
    }
    sets["splice_all"] = splice_all_set(cfg, device)
    subsets = profile.evaluation.splice_subsets
    sets |= {f"subset:{name}": splice_all_set(cfg, device, layers) for name, layers in subsets.items()}
    results = splice_metrics(model, sets, tokens, profile.evaluation.batch_size)

    rows = []
    for (layer, kind, l1), name in zip(cells, sets, strict=False):
        measured = results[name]
        reconstruction = measured["dictionaries"][0]
        rows.append({"profile": profile.name, "layer": layer, "kind": kind, "l1_coefficient": l1, **measured,
                     **{key: reconstruction[key] for key in ("l0", "fvu", "dead_fraction")}})  # fmt: skip
    pareto = pd.DataFrame(rows)[PARETO_COLUMNS]
    out = results_dir(cfg)
    # Everything measured per dictionary (L0 without BOS, live and dense fractions, ...), by name.
    details = {
        name: {**results[name]["dictionaries"][0], "ce_spliced": results[name]["ce_spliced"]} for name in sets
    }
    for name in [name for name in details if name == "splice_all" or name.startswith("subset:")]:
        details.pop(name)
    io.write_json(out / "dictionary_metrics.json", details)
    io.write_text(out / "pareto.csv", pareto.to_csv(index=False, float_format="%.6g"))

    def summary(name: str) -> dict:
        return {key: value for key, value in results[name].items() if key != "dictionaries"}

    splice_all = summary("splice_all")
    if subsets:  # e.g. the paper's layers 1-9 spliced together, on the same tokens
        splice_all["subsets"] = {name: summary(f"subset:{name}") for name in subsets}
    splice_all |= {"source": profile.evaluation.splice_all_source, "heldout_sha256": token_hash(tokens),
                   "heldout_tokens": int(tokens.numel())}  # fmt: skip
    io.write_json(out / "splice_all.json", splice_all)
    figure = pareto_figure(
        pareto, f"{profile.name}: sparsity vs fidelity (held-out CE, {tokens.numel():,} tokens)"
    )
    save_figure(figure, figures_dir(cfg) / "pareto")

    measured = {"splice_all": splice_all}
    behaviour = out / "behaviour.json"
    if behaviour.exists():
        measured["behaviour"] = json.loads(behaviour.read_text())
    table = expected_vs_measured(profile.name, profile.evaluation.expected, measured)
    if profile.evaluation.reference_points:  # a published sweep, beside the grid (Pythia profiles)
        table += "\n" + reference_table(profile.evaluation.reference_points, pareto)
    io.write_text(out / "expected_vs_measured.md", table)
    print(pareto.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(json.dumps(splice_all, indent=2))
    return {"pareto": pareto, "splice_all": splice_all}


if __name__ == "__main__":
    stage_main(run)()
