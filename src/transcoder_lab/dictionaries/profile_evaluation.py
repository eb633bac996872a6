"""Evaluate a profile's dictionaries: splice each into the model on one fixed held-out token set.

Algorithm (`evaluate_profile`, the body of the DVC stage `evaluate`):
1. Load the profile's model and its held-out contexts (`text_source.heldout_contexts`:
   `evaluation.n_contexts` contexts of `harvest.context_size` tokens, identified by `token_hash`).
2. Name the sets to splice: each grid dictionary alone (every cell at every sparsity, as
   "<arm>@L<layer> l1=<l1>" or "... k=<k>", a seed replica's ending " seed=<n>", a recipe
   replica's " recipe=<name>"), "splice_all"
   (the transcoders of every layer together, the paper's "all transcoders" experiment;
   `splice_all_set`), and one "subset:<name>" per `evaluation.splice_subsets` entry (e.g. the
   paper's layers 1-9 together). When the profile lists cross-layer transcoders, also the sets
   over every layer (`all_layer_sets`): each CLT ("clt l1=<l1>", spliced into every layer at once)
   and, beside them, the grid's transcoders of every layer spliced together at each grid L1
   coefficient ("splice_all l1=<l1>"), to compare at matched total L0.
3. `evaluation.splice_metrics` measures every set on the same tokens in one batched pass, keeping
   each grid dictionary's and each set over every layer's spliced CE per held-out context.
4. Write `results/<profile>/`: `pareto.csv` (one row per grid dictionary, `PARETO_COLUMNS`; `seed`
   0 for the plain cells, `recipe` the profile's own recipe for them (`DictionariesConfig.recipe`,
   e.g. live_transcoders) and its name for a recipe replica; then one row per set over every layer,
   kind "splice_all" or "clt", with no layer, its total L0 (summed over layers), mean FVU and dead
   fraction over layers, and the per-layer L0 and FVU as JSON lists in `l0_by_layer` and
   `fvu_by_layer`: `all_layer_row`), `dictionary_metrics.json` (everything measured per grid
   dictionary, and per layer for the sets over every layer, by set name), `splice_all.json` (the
   splice-all summary, its subsets, the source and the held-out hash), `ce_per_context.safetensors`
   ("spliced" [contexts, pareto rows] in pareto.csv's row order, "clean" [contexts]) and
   `pareto_gaps.json` (the transcoder against every other arm of its recipe at matched L0, with a
   paired bootstrap over the contexts and the spread over seeds: `matched_gaps`; the profile's own
   recipe under "gaps", another recipe's under "recipes": {name: gaps}; under "crosslayer", the
   CLT sweep against the splice-all sweep at matched total L0, the same computation with
   "splice_all" as the reference); then `figures/<profile>/pareto.{png,svg}`, with the seed spread
   as error bars and, with CLTs, a panel of the sets over every layer (spliced CE against total L0).
5. Write `expected_vs_measured.md`: the profile's expected values beside the splice-all summary and
   the behaviour stage's `behaviour.json` (when present), followed by the published reference sweep
   against the grid when the profile lists one (Pythia profiles).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from transcoder_lab import io
from transcoder_lab.config import Config, Sparsity, SpliceAllSource
from transcoder_lab.dictionaries.crosslayer import CrossLayerTranscoder, crosslayer_config, load_crosslayer
from transcoder_lab.dictionaries.dictionary import Dictionary, load_dictionary
from transcoder_lab.dictionaries.evaluation import splice_metrics, token_hash
from transcoder_lab.dictionaries.matched_gaps import REFERENCE_ARM, matched_gaps
from transcoder_lab.paths import crosslayer_dir, dictionary_dir, figures_dir, published_dir, results_dir
from transcoder_lab.plotting import pareto_figure, save_figure
from transcoder_lab.report import expected_vs_measured, reference_table
from transcoder_lab.sources.models import load_model
from transcoder_lab.sources.text_source import heldout_contexts

PARETO_COLUMNS = [
    "profile",
    "layer",
    "kind",
    "l1_coefficient",
    "k",
    "seed",
    "recipe",
    "l0",
    "ce_clean",
    "ce_spliced",
    "ce_zero_ablation",
    "loss_recovered",
    "kl",
    "fvu",
    "dead_fraction",
    "l0_by_layer",
    "fvu_by_layer",
]  # fmt: skip  ("kind" is the arm, config.ARMS, or a set over every layer: "splice_all", "clt"; TopK
#   arms set "k", the others "l1_coefficient"; only the sets over every layer fill the last two)


def grid_set_name(layer: int, arm: str, sparsity: Sparsity, seed: int = 0, recipe: str | None = None) -> str:
    """A grid dictionary's name in the splice results: "transcoder@L2 l1=0.001", "topk_transcoder@L2 k=16",
    a seed replica's "transcoder@L2 l1=0.001 seed=1", a recipe replica's "... recipe=paper"."""
    name = f"{arm}@L{layer} {sparsity.setting}" + (f" seed={seed}" if seed else "")
    return name + (f" recipe={recipe}" if recipe else "")


def splice_all_set(
    cfg: Config, device: str | torch.device = "cpu", layers: list[int] | None = None, l1: float | None = None
) -> list[Dictionary]:
    """The transcoders spliced together (step 2 of the module docstring):
    1. the layers are `layers`, else `evaluation.splice_all_layers`, else every grid transcoder layer;
    2. with `splice_all_source: published`, load the published transcoder of each layer;
    3. otherwise check that the grid holds a transcoder cell at every layer and that the L1
       coefficient (`l1`, else `splice_all_l1`) is one of the grid's (a ValueError naming the
       missing cells if not), and load each layer's grid transcoder at that coefficient."""
    evaluation, grid = cfg.profile.evaluation, cfg.profile.dictionaries
    layers = layers or evaluation.splice_all_layers or grid.layers_of("transcoder")
    l1 = l1 if l1 is not None else evaluation.splice_all_l1
    if evaluation.splice_all_source == SpliceAllSource.published:
        return [load_dictionary(published_dir(cfg, layer), device) for layer in layers]
    missing = [f"L{layer}_transcoder" for layer in layers if f"L{layer}_transcoder" not in grid.cells]
    if missing or l1 not in grid.l1_coefficients:
        raise ValueError(
            "profile.evaluation.splice_all_l1 must be one of profile.dictionaries.l1_coefficients and "
            f"profile.dictionaries.cells must hold a transcoder at every splice-all layer; missing: {missing}"
        )
    return [load_dictionary(dictionary_dir(cfg, layer, "transcoder", l1), device) for layer in layers]


AllLayerSets = dict[str, tuple[str, float, list[Dictionary] | list[CrossLayerTranscoder]]]


def all_layer_sets(cfg: Config, device: str | torch.device = "cpu") -> AllLayerSets:
    """Step 2's sets over every layer, by name: (kind, L1 coefficient, what is spliced). Empty
    unless the profile lists cross-layer transcoders; then "splice_all l1=<l1>" for every grid L1
    coefficient (when the grid holds a transcoder at every layer and splice_all_source is grid),
    then "clt l1=<l1>" for every CLT."""
    clt_l1s = crosslayer_config(cfg).l1_coefficients
    if not clt_l1s:
        return {}
    grid, every_layer = cfg.profile.dictionaries, list(range(cfg.profile.model.n_layers))
    sets: AllLayerSets = {}
    on_grid = cfg.profile.evaluation.splice_all_source == SpliceAllSource.grid
    if on_grid and set(every_layer) <= set(grid.layers_of("transcoder")):
        for l1 in grid.l1_coefficients:
            sets[f"splice_all l1={l1:g}"] = ("splice_all", l1, splice_all_set(cfg, device, every_layer, l1))
    for l1 in clt_l1s:
        sets[f"clt l1={l1:g}"] = ("clt", l1, [load_crosslayer(crosslayer_dir(cfg, l1), device)])
    return sets


def all_layer_row(profile: str, kind: str, l1: float, measured: dict) -> dict:
    """A set over every layer as a Pareto row (step 4): `measured` is its splice_metrics result,
    whose "dictionaries" hold one entry per layer, in layer order."""
    by_layer = measured["dictionaries"]

    def listed(key: str) -> str:
        return json.dumps([float(f"{layer[key]:.6g}") for layer in by_layer])

    return {"profile": profile, "layer": None, "kind": kind, "l1_coefficient": l1, "k": None, "seed": 0,
            **measured, "l0": sum(layer["l0"] for layer in by_layer),
            "fvu": float(np.mean([layer["fvu"] for layer in by_layer])),
            "dead_fraction": float(np.mean([layer["dead_fraction"] for layer in by_layer])),
            "l0_by_layer": listed("l0"), "fvu_by_layer": listed("fvu")}  # fmt: skip


def evaluate_profile(cfg: Config) -> dict:
    """Steps 1-5 of the module docstring, in that order. A grid dictionary's Pareto row holds its
    set's CE and KL numbers with its own L0, FVU and dead fraction; the splice-all summary is the
    set's splice metrics without the per-dictionary ones. Prints the Pareto table and the summary;
    returns {"pareto": the rows of pareto.csv as a DataFrame, "splice_all": splice_all.json's content}.
    """
    profile, grid = cfg.profile, cfg.profile.dictionaries
    # 1. the model and the held-out tokens
    model = load_model(profile, cfg.paths.models)
    context_size = grid.harvest.context_size
    tokens = heldout_contexts(cfg, model.tokenizer, profile.evaluation.n_contexts, context_size)
    # 2. the named sets of dictionaries to splice
    cells = [
        (layer, arm, sparsity, seed, recipe)
        for layer, arm, seed, recipe in grid.seeded_cells
        for sparsity in grid.sweep(arm)
    ]
    device = model.cfg.device
    sets = {
        grid_set_name(layer, arm, sparsity, seed, recipe): [
            load_dictionary(dictionary_dir(cfg, layer, arm, sparsity, seed, recipe), device)
        ]
        for layer, arm, sparsity, seed, recipe in cells
    }
    sets["splice_all"] = splice_all_set(cfg, device)
    subsets = profile.evaluation.splice_subsets
    sets |= {f"subset:{name}": splice_all_set(cfg, device, layers) for name, layers in subsets.items()}
    every_layer = all_layer_sets(cfg, device)  # the CLTs and the splice-all sweep beside them
    sets |= {name: spliced for name, (_, _, spliced) in every_layer.items()}
    # 3. every set measured on the same tokens
    results = splice_metrics(model, sets, tokens, profile.evaluation.batch_size, per_context=True)
    # kept apart from the results, which the JSON outputs below are made of
    per_context = {name: results[name].pop("ce_spliced_per_context") for name in sets}
    clean_per_context = [results[name].pop("ce_clean_per_context") for name in sets][0]  # the same in all

    # 4. the per-dictionary outputs, the splice-all summary and the figure
    rows = []
    for (layer, arm, sparsity, seed, recipe), name in zip(cells, sets, strict=False):
        measured = results[name]
        reconstruction = measured["dictionaries"][0]
        l1 = sparsity.l1_coefficient if sparsity.k is None else None  # TopK arms have no L1 term
        rows.append({"profile": profile.name, "layer": layer, "kind": arm, "l1_coefficient": l1,
                     "k": sparsity.k, "seed": seed, "recipe": recipe or grid.recipe, **measured,
                     **{key: reconstruction[key] for key in ("l0", "fvu", "dead_fraction")}})  # fmt: skip
    rows += [
        all_layer_row(profile.name, kind, l1, results[name]) for name, (kind, l1, _) in every_layer.items()
    ]
    pareto = pd.DataFrame(rows, columns=PARETO_COLUMNS)
    out = results_dir(cfg)
    row_names = [grid_set_name(*cell) for cell in cells] + list(every_layer)  # pareto.csv's row order
    # Everything measured per dictionary (L0 without BOS, live and dense fractions, ...), by name;
    # per layer for the sets over every layer.
    details = {
        name: {**results[name]["dictionaries"][0], "ce_spliced": results[name]["ce_spliced"]}
        for name in row_names[: len(cells)]
    }
    details |= {
        name: {"by_layer": results[name]["dictionaries"], "ce_spliced": results[name]["ce_spliced"]}
        for name in every_layer
    }
    io.write_json(out / "dictionary_metrics.json", details)
    io.write_text(out / "pareto.csv", pareto.to_csv(index=False, float_format="%.6g"))
    spliced_per_context = torch.stack([per_context[name] for name in row_names], dim=1)
    tensors = {"spliced": spliced_per_context, "clean": clean_per_context}
    described = {"columns": "pareto.csv rows, in order", "heldout_sha256": token_hash(tokens)}
    io.write_safetensors(out / "ce_per_context.safetensors", tensors, described)
    bootstrap = {
        key: getattr(profile.evaluation, key) for key in ("n_bootstrap", "bootstrap_seed", "confidence")
    }
    spliced = spliced_per_context.numpy().astype(np.float64)
    on_grid = pareto["layer"].notna().to_numpy()  # the sets over every layer have no layer

    def recipe_gaps(recipe: str) -> list[dict]:  # each recipe's arms against its own transcoder
        rows = on_grid & (pareto["recipe"] == recipe).to_numpy()
        return matched_gaps(pareto[rows], spliced[:, rows], **bootstrap)

    gaps = {"gaps": recipe_gaps(grid.recipe)}
    if others := [recipe for recipe in pareto.loc[on_grid, "recipe"].unique() if recipe != grid.recipe]:
        gaps["recipes"] = {recipe: recipe_gaps(recipe) for recipe in others}
    held_out = {"n_contexts": len(tokens), "heldout_sha256": token_hash(tokens)}
    written_gaps = {"reference": REFERENCE_ARM, **bootstrap, **held_out, **gaps}
    if every_layer:  # the CLT sweep against the splice-all sweep, at matched total L0
        over_layers = pareto[~on_grid].assign(layer=-1)
        crosslayer = matched_gaps(over_layers, spliced[:, ~on_grid], **bootstrap, reference="splice_all")
        written_gaps["crosslayer"] = [{k: v for k, v in gap.items() if k != "layer"} for gap in crosslayer]
    io.write_json(out / "pareto_gaps.json", written_gaps)

    def summary(name: str) -> dict:
        return {key: value for key, value in results[name].items() if key != "dictionaries"}

    splice_all = summary("splice_all")
    if subsets:  # e.g. the paper's layers 1-9 spliced together, on the same tokens
        splice_all["subsets"] = {name: summary(f"subset:{name}") for name in subsets}
    splice_all |= {"source": profile.evaluation.splice_all_source, "heldout_sha256": token_hash(tokens),
                   "heldout_tokens": int(tokens.numel())}  # fmt: skip
    io.write_json(out / "splice_all.json", splice_all)
    title = f"{profile.name}: sparsity vs fidelity (held-out CE, {tokens.numel():,} tokens)"
    figure = pareto_figure(pareto, title, grid.recipe)
    save_figure(figure, figures_dir(cfg) / "pareto")

    # 5. the expected values beside the measured ones
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
