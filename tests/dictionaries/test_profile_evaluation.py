"""The evaluate stage's body on the tiny pipeline: what `evaluate_profile` writes, and `splice_all_set`."""

import copy
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from safetensors.torch import load_file

from transcoder_lab.config import load_profile
from transcoder_lab.dictionaries.evaluation import token_hash
from transcoder_lab.dictionaries.profile_evaluation import PARETO_COLUMNS, evaluate_profile, splice_all_set
from transcoder_lab.paths import figures_dir, results_dir
from transcoder_lab.report import build_report
from transcoder_lab.sources.models import load_model
from transcoder_lab.sources.text_source import heldout_contexts


@pytest.mark.parametrize(
    "overrides",
    [
        ["profile.evaluation.splice_all_l1=0.5"],  # not one of the grid's L1 coefficients
        ["profile.dictionaries.cells=[L1_transcoder]", "profile.evaluation.splice_all_layers=[0,1]"],
    ],
)
def test_splice_all_set_refuses_transcoders_the_grid_does_not_train(tmp_path, overrides):
    cfg = load_profile("tiny", tmp_path, overrides)
    with pytest.raises(ValueError, match="splice_all_l1 must be one of") as error:
        splice_all_set(cfg)  # refused before any dictionary is read
    missing = ["L0_transcoder"] if "cells" in overrides[0] else []
    assert str(error.value).endswith(f"missing: {missing}")


def test_evaluate_profile_writes_a_row_per_dictionary_the_clt_rows_and_the_splice_all_summary(
    tiny_pipeline, tmp_path, capsys
):
    cfg = copy.deepcopy(tiny_pipeline[0])  # the session fixture's config and outputs stay as they are
    cfg.paths.results, cfg.paths.figures = str(tmp_path / "results"), str(tmp_path / "figures")
    cfg.profile.evaluation.splice_subsets = {"first": [0]}
    evaluated = evaluate_profile(cfg)

    grid, out = cfg.profile.dictionaries, results_dir(cfg)
    cells = [(layer, kind, s) for layer, kind in grid.parsed_cells for s in grid.sweep(kind)]
    pareto = evaluated["pareto"]
    assert list(pareto.columns) == PARETO_COLUMNS
    on_grid = pareto[pareto["layer"].notna()]
    rows = zip(on_grid["layer"], on_grid["kind"], on_grid["l1_coefficient"], on_grid["k"], strict=True)
    expected = [
        (layer, kind, None if s.k else s.l1_coefficient, s.k) for layer, kind, s in cells
    ]  # TopK: no L1
    plain = lambda value: None if pd.isna(value) else value  # noqa: E731
    assert [(lay, kind, plain(l1), plain(k)) for lay, kind, l1, k in rows] == expected
    assert set(pareto["seed"]) == {0}  # the tiny grid trains no seed replicas
    written = pd.read_csv(out / "pareto.csv")
    assert list(written.columns) == PARETO_COLUMNS and len(written) == len(pareto)
    numbers = [
        column
        for column in PARETO_COLUMNS
        if column not in ("profile", "kind", "l0_by_layer", "fvu_by_layer")
    ]
    pd.testing.assert_frame_equal(written[numbers], pareto[numbers], check_dtype=False, rtol=1e-5)
    names = [f"{kind}@L{layer} {s.setting}" for layer, kind, s in cells]
    clt_l1s = cfg.profile.crosslayer["l1_coefficients"]
    every_layer = [f"splice_all l1={l1:g}" for l1 in grid.l1_coefficients] + [
        f"clt l1={l1:g}" for l1 in clt_l1s
    ]
    details = json.loads((out / "dictionary_metrics.json").read_text())
    assert list(details) == names + every_layer  # not the splice-all set or its subsets
    assert [details[name]["ce_spliced"] for name in names + every_layer] == pytest.approx(
        list(pareto["ce_spliced"])
    )

    splice_all = evaluated["splice_all"]
    assert json.loads((out / "splice_all.json").read_text()) == splice_all
    assert splice_all["layers"] == grid.layers_of("transcoder") and splice_all["source"] == "grid"
    assert splice_all["subsets"]["first"]["layers"] == [0]
    model = load_model(cfg.profile, cfg.paths.models)
    tokens = heldout_contexts(
        cfg, model.tokenizer, cfg.profile.evaluation.n_contexts, grid.harvest.context_size
    )
    assert splice_all["heldout_sha256"] == token_hash(tokens)
    assert splice_all["heldout_tokens"] == cfg.profile.evaluation.n_contexts * grid.harvest.context_size
    # every set is measured on the same tokens: one clean cross-entropy throughout
    assert set(pareto["ce_clean"]) == {splice_all["ce_clean"]} == {splice_all["subsets"]["first"]["ce_clean"]}

    assert all((figures_dir(cfg) / f"pareto.{suffix}").stat().st_size > 0 for suffix in ("png", "svg"))
    assert (out / "expected_vs_measured.md").read_text()
    printed = capsys.readouterr().out
    assert printed.endswith(json.dumps(splice_all, indent=2) + "\n") and "loss_recovered" in printed
    check_crosslayer_rows(cfg, pareto)


def check_crosslayer_rows(cfg, pareto: pd.DataFrame) -> None:
    """The tiny profile's CLTs (the crosslayer stage, in the fixture) spliced into both layers at
    once: a "clt" row each, after a "splice_all" row per grid L1 coefficient (both layers'
    transcoders together), with total and per-layer L0, per-layer FVU, and the matched-L0 gap.
    (Called by the test above, on its evaluation: one evaluate_profile run for both.)"""
    grid, n_layers = cfg.profile.dictionaries, cfg.profile.model.n_layers
    clt_l1s = cfg.profile.crosslayer["l1_coefficients"]
    rows = pareto[pareto["layer"].isna()]
    assert list(rows["kind"]) == ["splice_all"] * len(grid.l1_coefficients) + ["clt"] * len(clt_l1s)
    assert list(rows["l1_coefficient"]) == grid.l1_coefficients + clt_l1s
    for _, row in rows.iterrows():
        l0, fvu = json.loads(row["l0_by_layer"]), json.loads(row["fvu_by_layer"])
        assert len(l0) == len(fvu) == n_layers
        assert row["l0"] == pytest.approx(sum(l0), rel=1e-5) and row["fvu"] == pytest.approx(
            sum(fvu) / n_layers, rel=1e-5
        )
        assert row["loss_recovered"] == pytest.approx(
            (row["ce_zero_ablation"] - row["ce_spliced"]) / (row["ce_zero_ablation"] - row["ce_clean"])
        )
    # a splice_all row is the grid's transcoders of every layer together: at splice_all_l1, the summary's set
    splice_all = json.loads((results_dir(cfg) / "splice_all.json").read_text())
    at_default = rows[
        (rows["kind"] == "splice_all") & (rows["l1_coefficient"] == cfg.profile.evaluation.splice_all_l1)
    ]
    assert at_default["ce_spliced"].item() == pytest.approx(splice_all["ce_spliced"])
    written = pd.read_csv(results_dir(cfg) / "pareto.csv")
    assert list(written[written["kind"] == "clt"]["l0_by_layer"]) == list(
        rows[rows["kind"] == "clt"]["l0_by_layer"]
    )
    details = json.loads((results_dir(cfg) / "dictionary_metrics.json").read_text())
    by_layer = details[f"clt l1={clt_l1s[0]:g}"]["by_layer"]
    assert len(by_layer) == n_layers and all(0 <= layer["dead_fraction"] <= 1 for layer in by_layer)
    stored = load_file(str(results_dir(cfg) / "ce_per_context.safetensors"))
    assert stored["spliced"].mean(0).tolist() == pytest.approx(list(pareto["ce_spliced"]), rel=1e-5)
    gaps = json.loads((results_dir(cfg) / "pareto_gaps.json").read_text())
    assert [gap["arm"] for gap in gaps["crosslayer"]] == ["clt"] and "layer" not in gaps["crosslayer"][0]
    assert {gap["layer"] for gap in gaps["gaps"]} <= set(grid.layers)  # per-layer gaps: the grid rows only


def test_seed_replicas_get_their_own_rows_per_context_losses_and_gap_intervals(tiny_pipeline, tmp_path):
    """Replicas "L1_transcoder_seed1" and "L1_sae_mlp_in_seed1" made as copies of seed 0's folders:
    their rows must repeat seed 0's numbers, so the two per-seed gaps agree. (The tiny SAE on the MLP
    input has a point inside the tiny transcoder's L0 range, the SAE on the MLP output has none.)"""
    cfg = copy.deepcopy(tiny_pipeline[0])
    source = Path(cfg.paths.dictionaries) / cfg.profile.name
    cfg.paths.results, cfg.paths.figures = str(tmp_path / "results"), str(tmp_path / "figures")
    cfg.paths.dictionaries = str(tmp_path / "dictionaries")
    shutil.copytree(source, tmp_path / "dictionaries" / cfg.profile.name)
    for cell in ("L1_transcoder", "L1_sae_mlp_in"):
        shutil.copytree(source / cell, tmp_path / "dictionaries" / cfg.profile.name / f"{cell}_seed1")
    cfg.profile.dictionaries.cells += ["L1_transcoder_seed1", "L1_sae_mlp_in_seed1"]
    pareto = evaluate_profile(cfg)["pareto"]

    n_l1 = len(cfg.profile.dictionaries.l1_coefficients)
    on_grid = pareto[pareto["layer"].notna()]  # then the CLT rows, seed 0
    assert list(on_grid["seed"]) == [0] * (len(on_grid) - 2 * n_l1) + [1] * 2 * n_l1
    for kind in ("transcoder", "sae_mlp_in"):
        at = (pareto["layer"] == 1) & (pareto["kind"] == kind)
        seeds = [pareto[at & (pareto["seed"] == s)][["l0", "ce_spliced"]].to_numpy() for s in (0, 1)]
        assert (seeds[0] == seeds[1]).all()  # the same weights spliced on the same tokens
    stored = load_file(str(results_dir(cfg) / "ce_per_context.safetensors"))
    n_contexts = cfg.profile.evaluation.n_contexts
    assert stored["spliced"].shape == (n_contexts, len(pareto)) and stored["clean"].shape == (n_contexts,)
    # Row order: each column's mean is its row's CE. Every context has the same number of
    # predictions, so the mean of per-context means is the overall mean; the two differ only by
    # float32 summation (~1e-7 relative on losses of ~6 nats).
    assert stored["spliced"].mean(0).tolist() == pytest.approx(list(pareto["ce_spliced"]), rel=1e-5)
    assert stored["clean"].mean().item() == pytest.approx(pareto["ce_clean"].iloc[0], rel=1e-5)

    gaps = json.loads((results_dir(cfg) / "pareto_gaps.json").read_text())
    by_arm = {(row["layer"], row["arm"]): row for row in gaps["gaps"]}
    assert set(by_arm) == {
        (1, arm) for arm in ("sae_mlp_out", "sae_mlp_in", "skip_transcoder", "topk_transcoder")
    }
    replicated = by_arm[(1, "sae_mlp_in")]
    assert replicated["seeds"] == [0, 1] and replicated["per_seed"]["0"] == replicated["per_seed"]["1"]
    assert replicated["seed_spread"]["sd"] == 0.0 and replicated["seed_spread"]["n"] == 2
    low, high = replicated["context_bootstrap"]["low"], replicated["context_bootstrap"]["high"]
    assert low <= replicated["gap"] <= high and low < high
    outside = by_arm[(1, "sae_mlp_out")]  # single seed, and no point inside the range: no numbers
    assert outside["seeds"] == [] and outside["gap"] is None and outside["seed_spread"] is None


def test_recipe_replicas_get_their_own_rows_gaps_and_report_table(tiny_pipeline, tmp_path):
    """Replicas "L1_transcoder_live_transcoders" and "L1_sae_mlp_in_live_transcoders" (tiny's own
    recipe is the paper's) made as copies of the plain cells' folders: their rows carry their recipe
    and repeat the plain rows' numbers; their gaps are against their own recipe's transcoder, under
    "recipes", and the plain cells' gaps are as without them."""
    cfg = copy.deepcopy(tiny_pipeline[0])
    source = Path(cfg.paths.dictionaries) / cfg.profile.name
    cfg.paths.results, cfg.paths.figures = str(tmp_path / "results"), str(tmp_path / "figures")
    cfg.paths.dictionaries = str(tmp_path / "dictionaries")
    shutil.copytree(source, tmp_path / "dictionaries" / cfg.profile.name)
    for cell in ("L1_transcoder", "L1_sae_mlp_in"):
        shutil.copytree(
            source / cell, tmp_path / "dictionaries" / cfg.profile.name / f"{cell}_live_transcoders"
        )
    on_grid = lambda rows: rows[rows["layer"].notna()].reset_index(drop=True)  # noqa: E731 (not CLT rows)
    plain = on_grid(evaluate_profile(cfg)["pareto"])
    plain_gaps = json.loads((results_dir(cfg) / "pareto_gaps.json").read_text())
    cfg.profile.dictionaries.cells += ["L1_transcoder_live_transcoders", "L1_sae_mlp_in_live_transcoders"]
    pareto = on_grid(evaluate_profile(cfg)["pareto"])

    n_l1 = len(cfg.profile.dictionaries.l1_coefficients)
    assert cfg.profile.dictionaries.recipe == "paper"
    assert list(pareto["recipe"]) == ["paper"] * len(plain) + ["live_transcoders"] * 2 * n_l1
    assert set(pareto["seed"]) == {0}
    pd.testing.assert_frame_equal(pareto.iloc[: len(plain)], plain)  # the plain rows as they were
    for kind in ("transcoder", "sae_mlp_in"):
        at = (pareto["layer"] == 1) & (pareto["kind"] == kind)
        both = [
            pareto[at & (pareto["recipe"] == r)][["l0", "ce_spliced"]].to_numpy()
            for r in ("paper", "live_transcoders")
        ]
        assert (both[0] == both[1]).all()  # the same weights spliced on the same tokens

    gaps = json.loads((results_dir(cfg) / "pareto_gaps.json").read_text())
    assert gaps["gaps"] == plain_gaps["gaps"]  # the profile's own recipe: unchanged
    [replica] = gaps["recipes"]["live_transcoders"]  # only the sae_mlp_in arm has a replica
    [own] = [row for row in gaps["gaps"] if (row["layer"], row["arm"]) == (1, "sae_mlp_in")]
    assert replica == own  # copies on the same draws: the same gap and interval

    report = build_report(cfg.profile.name, {}, results_dir(cfg), "figures", {})
    assert "### Both recipes at layer 1" in report
    section = report.split("### Both recipes at layer 1")[1].split("###")[0]
    rows = [line for line in section.splitlines() if line.startswith("| 1 |")]
    assert len(rows) == 2 * n_l1
    for row in rows:  # each measure twice, the same number for both recipes (copied folders)
        cells = [cell.strip() for cell in row.strip("|").split("|")][3:]
        assert cells[0::2] == cells[1::2]
    main = report.split("## Dictionaries: sparsity vs fidelity")[1].split("###")[0]
    # the main table and the matched-L0 table under it: the profile's own recipe only
    assert main.count("| 1 | sae_mlp_in |") == n_l1 + 1
    assert "The live_transcoders recipe's arms against its own transcoder" in report
