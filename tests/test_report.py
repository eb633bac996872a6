"""The report's arithmetic: where each arm lies against the transcoder frontier (report.matched_l0_gaps)."""

import pandas as pd
import pytest

from transcoder_lab.report import matched_l0_gaps


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
