"""The evaluate stage's body on the tiny pipeline: what `evaluate_profile` writes, and `splice_all_set`."""

import copy
import json

import pandas as pd
import pytest

from transcoder_lab.config import load_profile
from transcoder_lab.dictionaries.evaluation import token_hash
from transcoder_lab.dictionaries.profile_evaluation import PARETO_COLUMNS, evaluate_profile, splice_all_set
from transcoder_lab.paths import figures_dir, results_dir
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


def test_evaluate_profile_writes_a_row_per_dictionary_and_the_splice_all_summary(
    tiny_pipeline, tmp_path, capsys
):
    cfg = copy.deepcopy(tiny_pipeline[0])  # the session fixture's config and outputs stay as they are
    cfg.paths.results, cfg.paths.figures = str(tmp_path / "results"), str(tmp_path / "figures")
    cfg.profile.evaluation.splice_subsets = {"first": [0]}
    evaluated = evaluate_profile(cfg)

    grid, out = cfg.profile.dictionaries, results_dir(cfg)
    cells = [(layer, kind, l1) for layer, kind in grid.parsed_cells for l1 in grid.l1_coefficients]
    pareto = evaluated["pareto"]
    assert list(pareto.columns) == PARETO_COLUMNS
    assert list(zip(pareto["layer"], pareto["kind"], pareto["l1_coefficient"], strict=True)) == cells
    written = pd.read_csv(out / "pareto.csv")
    assert list(written.columns) == PARETO_COLUMNS and len(written) == len(cells)
    numbers = [column for column in PARETO_COLUMNS if column not in ("profile", "kind")]
    pd.testing.assert_frame_equal(written[numbers], pareto[numbers], check_dtype=False, rtol=1e-5)
    names = [f"{kind}@L{layer} l1={l1:g}" for layer, kind, l1 in cells]
    details = json.loads((out / "dictionary_metrics.json").read_text())
    assert list(details) == names  # grid dictionaries only, not the splice-all set or its subsets
    assert [details[name]["ce_spliced"] for name in names] == pytest.approx(list(pareto["ce_spliced"]))

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
