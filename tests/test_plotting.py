"""Figures: saved atomically as PNG and SVG, the same bytes every time."""

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from transcoder_lab.plotting import pareto_figure, save_figure, seed_summary


def test_the_same_figure_saves_to_the_same_bytes(tmp_path):
    figure, axis = plt.subplots()
    axis.plot([0, 1, 2], [1, 0, 2], label="a line")
    axis.legend()
    first = save_figure(figure, tmp_path / "first")
    second = save_figure(figure, tmp_path / "second")
    plt.close(figure)
    assert [p.suffix for p in first] == [".png", ".svg"]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.suffix
    assert b"<dc:date>" not in first[1].read_bytes()


def pareto_rows(seeds_of: dict[str, int]) -> pd.DataFrame:
    """Layer-2 rows at two L1 values; seed s moves L0 by s and CE by 0.01 s."""
    rows = [{"layer": 2, "kind": kind, "l1_coefficient": l1, "k": None, "seed": s, "l0": l0 + s,
             "ce_spliced": 2.5 + 0.01 * s, "ce_clean": 2.4}
            for kind, n in seeds_of.items() for s in range(n) for l1, l0 in ((1e-3, 10.0), (2e-3, 5.0))]  # fmt: skip
    return pd.DataFrame(rows)


def test_seed_summary_averages_over_seeds_and_keeps_their_range():
    summary = seed_summary(pareto_rows({"transcoder": 3})).set_index("l1_coefficient")
    assert summary.loc[1e-3, "l0"] == 11.0 and summary.loc[1e-3, "ce_spliced"] == pytest.approx(2.51)
    assert (summary.loc[1e-3, "l0_min"], summary.loc[1e-3, "l0_max"]) == (10.0, 12.0)
    assert summary.loc[2e-3, ["ce_min", "ce_max"]].tolist() == pytest.approx([2.5, 2.52])
    assert set(summary["n_seeds"]) == {3}


def test_multi_seed_arms_get_error_bars_and_single_seed_arms_none():
    figure = pareto_figure(pareto_rows({"transcoder": 3, "sae_mlp_out": 1}), "test")
    [axis] = figure.axes
    labels = axis.get_legend_handles_labels()[1]
    plt.close(figure)
    assert "transcoder (3 seeds: mean, min-max)" in labels and "SAE (MLP out)" in labels
    [bars] = axis.containers  # one ErrorbarContainer: the transcoder's
    assert bars.get_label().startswith("transcoder")
