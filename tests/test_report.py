"""The report's arithmetic: where each arm lies against the transcoder frontier (report.matched_l0_gaps)."""

import pandas as pd
import pytest

from transcoder_lab import io
from transcoder_lab.report import build_report, matched_l0_gaps


def test_gaps_interpolate_the_transcoder_frontier_in_log_l0():
    pareto = pd.DataFrame(
        [
            {"layer": 2, "kind": "transcoder", "l0": 4.0, "ce_spliced": 2.50},
            {"layer": 2, "kind": "transcoder", "l0": 16.0, "ce_spliced": 2.46},
            {"layer": 2, "kind": "sae_mlp_out", "l0": 8.0, "ce_spliced": 2.49},  # halfway in log L0
            {"layer": 2, "kind": "sae_mlp_out", "l0": 16.0, "ce_spliced": 2.45},  # on a point
            {"layer": 2, "kind": "sae_mlp_out", "l0": 64.0, "ce_spliced": 2.44},  # outside the range
            {"layer": 2, "kind": "topk_transcoder", "l0": 100.0, "ce_spliced": 2.40},
        ]
    )
    rows = {row[1]: row for row in matched_l0_gaps(pareto)}
    layer, arm, compared, outside, mean, low, high = rows["sae_mlp_out"]
    assert (layer, compared, outside) == (2, 2, 1)
    # at L0 8 the frontier is 2.48 (the log-midpoint of 4 and 16); at 16 it is 2.46
    assert low == pytest.approx(-0.01, abs=1e-12) and high == pytest.approx(0.01, abs=1e-12)
    assert mean == pytest.approx(0.0, abs=1e-12)
    assert rows["topk_transcoder"][2:] == [0, 1, None, None, None]  # nothing to compare: no number


def test_a_layer_without_two_transcoder_points_is_skipped():
    pareto = pd.DataFrame([{"layer": 1, "kind": "transcoder", "l0": 4.0, "ce_spliced": 2.5},
                           {"layer": 1, "kind": "sae_mlp_out", "l0": 4.0, "ce_spliced": 2.4}])  # fmt: skip
    assert matched_l0_gaps(pareto) == []


def test_the_gap_interval_table_marks_single_seed_arms(tmp_path):
    interval = {"low": -0.01, "high": 0.002, "significant": False}
    three_seeds = {"layer": 2, "arm": "sae_mlp_in", "seeds": [0, 1, 2], "gap": 0.03,
                   "per_seed": {"0": 0.02, "1": 0.03, "2": 0.04}, "seed_spread": interval,
                   "context_bootstrap": {"low": 0.02, "high": 0.04, "significant": True}}  # fmt: skip
    one_seed = {"layer": 2, "arm": "topk_transcoder", "seeds": [0], "gap": -0.01, "per_seed": {"0": -0.01},
                "context_bootstrap": interval, "seed_spread": None}  # fmt: skip
    gaps = {"reference": "transcoder", "confidence": 0.95, "n_bootstrap": 2000, "n_contexts": 256,
            "gaps": [three_seeds, one_seed]}  # fmt: skip
    io.write_json(tmp_path / "pareto_gaps.json", gaps)
    report = build_report("organism", {}, tmp_path, "figures", {})
    assert "### Matched-L0 gaps with 95% intervals" in report
    rows = [line for line in report.splitlines() if line.startswith("| 2 |")]
    assert rows == [
        "| 2 | sae_mlp_in | 0, 1, 2 | +0.0300 | +0.0200, +0.0300, +0.0400 | [+0.0200, +0.0400] | yes "
        "| [-0.0100, +0.0020] | no |",
        "| 2 | topk_transcoder | 0 | -0.0100 | -0.0100 | [-0.0100, +0.0020] | no | — (single seed) | — |",
    ]
