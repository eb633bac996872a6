"""Matched-L0 gaps with paired context-bootstrap and seed intervals (dictionaries.matched_gaps)."""

import math

import numpy as np
import pandas as pd
import pytest

from transcoder_lab.dictionaries.matched_gaps import bootstrap_means, matched_gap, matched_gaps, t_interval
from transcoder_lab.report import matched_l0_gaps

L0 = [2.0, 4.0, 8.0, 16.0, 32.0]
N_CONTEXTS = 256


def sweep_rows(arm_offsets: dict[tuple[str, int], float], l0: dict | None = None) -> pd.DataFrame:
    """Pareto rows at layer 2: every (arm, seed) of `arm_offsets` at the L0s of `l0` (default L0)."""
    rows = [{"layer": 2, "kind": arm, "seed": seed, "l0": value}
            for arm, seed in arm_offsets for value in (l0 or {}).get(arm, L0)]  # fmt: skip
    return pd.DataFrame(rows)


def per_context_ce(pareto: pd.DataFrame, offsets: dict[tuple[str, int], float], noise_sd: float = 0.0,
                   difficulty_sd: float = 1.0, seed: int = 0) -> np.ndarray:  # fmt: skip
    """[contexts, rows]: CE = 2.5 - 0.02 log L0 + a context's difficulty (shared by every row, large)
    + the (arm, seed)'s offset + independent per-context noise of `noise_sd`."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, difficulty_sd, size=(N_CONTEXTS, 1))
    curve = 2.5 - 0.02 * np.log(pareto["l0"].to_numpy())
    offset = np.array([offsets[(kind, s)] for kind, s in zip(pareto["kind"], pareto["seed"], strict=True)])
    noise = rng.normal(0, noise_sd, size=(N_CONTEXTS, len(pareto)))
    return difficulty + curve + offset + noise


def gaps_of(offsets, noise_sd=0.0, **kwargs):
    pareto = sweep_rows(offsets)
    [row] = matched_gaps(pareto, per_context_ce(pareto, offsets, noise_sd, **kwargs), 2000, 0, 0.95)
    return row


def test_identical_arms_give_an_interval_around_zero_and_no_verdict():
    # the same sweep, each row with its own per-context noise: the true gap is 0
    row = gaps_of({("transcoder", 0): 0.0, ("sae_mlp_out", 0): 0.0}, noise_sd=0.02)
    boot = row["context_bootstrap"]
    assert boot["low"] < 0 < boot["high"] and not boot["significant"]
    assert row["seed_spread"] is None and row["seeds"] == [0]  # one seed: no seed interval


def test_a_shifted_arm_is_significant_and_the_pairing_removes_shared_difficulty():
    row = gaps_of({("transcoder", 0): 0.0, ("sae_mlp_out", 0): 0.05}, noise_sd=0.02)
    boot = row["context_bootstrap"]
    assert boot["significant"] and boot["low"] > 0
    # The gap is a mean over 5 points of a difference of two rows with noise 0.02 each, over 256
    # contexts: its standard error is 0.02 * sqrt(2 / 5) / 16 ~ 0.0008, so the estimate sits within
    # 4 standard errors of 0.05.
    standard_error = 0.02 * math.sqrt(2 / 5) / math.sqrt(N_CONTEXTS)
    assert row["gap"] == pytest.approx(0.05, abs=4 * standard_error)
    # Paired, the half-width is 1.96 standard errors; the contexts' shared difficulty (sd 1, 50 times
    # the noise) cancels. Unpaired draws would give ~1.96 * sqrt(2) / 16 ~ 0.17. The percentile
    # interval's width from 2000 draws varies by about 5%: 25% is a loose, still decisive bound.
    half_width = (boot["high"] - boot["low"]) / 2
    assert half_width == pytest.approx(1.96 * standard_error, rel=0.25)


def test_seed_spread_and_context_bootstrap_answer_different_questions():
    # noise-free contexts, per-seed gaps of exactly 0.01, 0.02, 0.03
    offsets = {("transcoder", s): 0.0 for s in range(3)}
    offsets |= {("sae_mlp_in", s): 0.01 * (s + 1) for s in range(3)}
    row = gaps_of(offsets)
    assert row["seeds"] == [0, 1, 2]
    assert [row["per_seed"][s] for s in range(3)] == pytest.approx([0.01, 0.02, 0.03], abs=1e-12)
    assert row["gap"] == pytest.approx(0.02, abs=1e-12)
    # every context shows the same gap: no held-out noise at all, so the context interval is a point
    assert row["context_bootstrap"]["low"] == pytest.approx(0.02, abs=1e-12)
    assert row["context_bootstrap"]["significant"]
    # across seeds: 0.02 +- t(0.975, 2) * 0.01 / sqrt(3) = 0.02 +- 0.0248, which includes 0
    spread = row["seed_spread"]
    assert spread["n"] == 3 and spread["sd"] == pytest.approx(0.01)
    assert spread["high"] - 0.02 == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-6)
    assert spread["low"] < 0 and not spread["significant"]


def test_the_gap_is_the_reports_matched_l0_gap_on_its_own_sweep():
    # L0s that do not coincide: the reference is interpolated in log L0; 1.0 and 64.0 fall outside
    l0 = {"transcoder": [2.0, 5.0, 9.0, 30.0], "sae_mlp_out": [1.0, 3.0, 7.0, 30.0, 64.0]}
    pareto = sweep_rows({("transcoder", 0): 0.0, ("sae_mlp_out", 0): 0.0}, l0)
    ce = np.random.default_rng(3).normal(2.5, 0.1, size=len(pareto))
    pareto["ce_spliced"] = ce
    [[_, _, compared, outside, mean, *_]] = matched_l0_gaps(pareto)
    ref, arm = pareto["kind"] == "transcoder", pareto["kind"] == "sae_mlp_out"
    ours = matched_gap(pareto.loc[ref, "l0"].to_numpy(), ce[ref], pareto.loc[arm, "l0"].to_numpy(), ce[arm])
    assert (compared, outside) == (3, 2)
    assert ours == pytest.approx(mean, abs=1e-12)


def test_no_point_inside_the_reference_range_gives_no_gap():
    gap = matched_gap(np.array([4.0, 8.0]), np.array([2.5, 2.4]), np.array([1.0, 0.0]), np.array([2.6, 2.7]))
    assert np.isnan(gap)


def test_bootstrap_draws_are_seeded_and_resample_whole_rows():
    values = np.arange(6.0)[:, None] * [1, 10]  # column 1 is 10 x column 0
    draws = bootstrap_means(values, 50, seed=1)
    assert np.array_equal(draws, bootstrap_means(values, 50, seed=1))
    assert not np.array_equal(draws, bootstrap_means(values, 50, seed=2))
    np.testing.assert_allclose(draws[:, 1], 10 * draws[:, 0])  # the same contexts for every column
    assert draws[:, 0].min() >= 0 and draws[:, 0].max() <= 5  # means of drawn values, within their range
    assert draws[:, 0].std() > 0  # the draws differ (a mean over all rows every time would not)


def test_t_interval_of_two_values():
    mean, low, high = t_interval(np.array([1.0, 3.0]), 0.95)
    # sd = sqrt(2), n = 2: half-width t(0.975, 1) * sqrt(2) / sqrt(2) = 12.706
    assert mean == 2.0 and high - mean == pytest.approx(12.7062, rel=1e-4)
    assert low == pytest.approx(2 - 12.7062, rel=1e-4)
