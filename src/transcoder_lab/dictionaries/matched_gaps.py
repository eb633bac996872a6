"""Matched-L0 gaps between the transcoder and every other arm, with paired intervals.

The gap is report.matched_l0_gaps's: at one layer, for each point (L0, CE) of an arm whose L0 lies
inside the reference arm's (the transcoder's) L0 range, the arm's spliced CE minus the reference's
CE interpolated linearly in log L0 between its neighbouring points; an arm's gap is the mean over
those points, in nats (negative: the arm is better than the transcoder at the same sparsity).

Algorithm (`matched_gaps`, run by the `evaluate` stage on the Pareto rows and each dictionary's
per-context spliced CE on the held-out contexts):
1. Per seed: for every seed that both the arm and the reference trained (seed s against seed s;
   the seeds are independent, so pairing them by index is as good as any pairing), the gap of
   seed s. The point estimate is the mean of these per-seed gaps.
2. Context bootstrap, paired: draw the held-out contexts with replacement `n_bootstrap` times
   (seeded). In each draw a dictionary's CE is its mean per-context CE over the drawn contexts, the
   same draw for both arms and every seed, so what makes a context hard for both arms cancels in
   the gap; the draw's gap is computed as in step 1. The interval is the percentile interval of the
   draws' gaps. L0 stays at its full-sample value (it decides which points are compared and the
   interpolation weights; on 32k tokens its sampling noise is far below the L0 steps of the sweep),
   so this interval is the held-out sample's noise in CE alone.
3. Seed spread, where both arms trained at least two seeds: mean of the per-seed gaps
   +- t_{(1+c)/2, n-1} * sd / sqrt(n) (Student's t, n seeds, c the confidence): the noise of
   training (initialisation and batch order) on the same held-out tokens.
4. A gap is called significant when an interval excludes 0; each interval has its own verdict.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

REFERENCE_ARM = "transcoder"


def matched_gap(ref_l0: np.ndarray, ref_ce: np.ndarray, arm_l0: np.ndarray, arm_ce: np.ndarray) -> np.ndarray:
    """The gap of one arm against one reference sweep (the module docstring's definition).

    `ref_l0` [m] and `arm_l0` [p] are fixed; `ref_ce` [..., m] and `arm_ce` [..., p] may carry
    leading axes (bootstrap draws), which the result keeps. NaN where no arm point lies inside the
    reference's L0 range or the reference has fewer than two points."""
    order = np.argsort(ref_l0)
    log_ref, ref_ce = np.log(ref_l0[order]), ref_ce[..., order]
    with np.errstate(divide="ignore"):
        log_arm = np.log(arm_l0)  # L0 = 0: -inf, outside every range
    inside = (log_arm >= log_ref[0]) & (log_arm <= log_ref[-1]) if len(log_ref) >= 2 else log_arm < -np.inf
    if not inside.any():
        return np.full(arm_ce.shape[:-1], np.nan)
    x = log_arm[inside]
    # the left neighbour: the last reference point at or below x (the top end takes the last segment)
    i = np.clip(np.searchsorted(log_ref, x, side="right") - 1, 0, len(log_ref) - 2)
    w = (x - log_ref[i]) / (log_ref[i + 1] - log_ref[i])
    interpolated = (1 - w) * ref_ce[..., i] + w * ref_ce[..., i + 1]
    return (arm_ce[..., inside] - interpolated).mean(-1)


def bootstrap_means(per_context: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    """[n_bootstrap, n_columns]: each column's mean over `n_bootstrap` draws of the rows (contexts)
    with replacement; every column sees the same draws (the pairing)."""
    n = per_context.shape[0]
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_bootstrap)
    return counts @ per_context / n


def t_interval(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Mean, and Student's t interval of the mean, of independent `values` (at least two)."""
    n, mean = len(values), float(np.mean(values))
    half = scipy_stats.t.ppf((1 + confidence) / 2, n - 1) * float(np.std(values, ddof=1)) / np.sqrt(n)
    return mean, mean - half, mean + half


def excludes_zero(low: float, high: float) -> bool:
    return bool(low > 0 or high < 0)


def matched_gaps(
    pareto: pd.DataFrame,
    per_context: np.ndarray,
    n_bootstrap: int,
    bootstrap_seed: int,
    confidence: float,
    reference: str = REFERENCE_ARM,
) -> list[dict[str, Any]]:
    """Steps 1-4 of the module docstring for every layer with a `reference` sweep and every other
    arm at that layer. `pareto` holds one row per dictionary (columns layer, kind, seed, l0);
    `per_context` [n_contexts, len(pareto)] its spliced CE per held-out context, in row order.

    Returns one dict per (layer, arm): its seeds, per-seed gaps and points compared, the mean gap,
    the context-bootstrap interval and the seed spread (None with fewer than two common seeds),
    each with `significant`."""
    pareto = pareto.reset_index(drop=True)
    tail = (1 - confidence) / 2
    draws = bootstrap_means(per_context, n_bootstrap, bootstrap_seed)  # [n_bootstrap, n_rows]
    full = per_context.mean(0)  # [n_rows]: the full sample's CE, on the same footing as the draws
    out = []
    for layer in sorted(pareto["layer"].unique()):
        at_layer = pareto[pareto["layer"] == layer]
        if (at_layer["kind"] == reference).sum() < 2:
            continue
        for arm in [kind for kind in at_layer["kind"].unique() if kind != reference]:
            rows = {  # arm -> seed -> its row numbers
                name: {int(s): group.index.to_numpy() for s, group in of_arm.groupby("seed")}
                for name, of_arm in ((name, at_layer[at_layer["kind"] == name]) for name in (reference, arm))
            }
            seeds = sorted(set(rows[reference]) & set(rows[arm]))
            per_seed, drawn, compared = {}, [], {}
            for s in seeds:
                ref, own = rows[reference][s], rows[arm][s]
                ref_l0, arm_l0 = pareto.loc[ref, "l0"].to_numpy(float), pareto.loc[own, "l0"].to_numpy(float)
                gap = matched_gap(ref_l0, full[ref], arm_l0, full[own])
                if np.isnan(gap):
                    continue  # no point of this seed inside the reference's range
                per_seed[s] = float(gap)
                compared[s] = int(np.sum((arm_l0 >= ref_l0.min()) & (arm_l0 <= ref_l0.max())))
                drawn.append(matched_gap(ref_l0, draws[:, ref], arm_l0, draws[:, own]))
            entry: dict[str, Any] = {"layer": int(layer), "arm": arm, "seeds": list(per_seed),
                                     "points_compared": compared, "per_seed": per_seed}  # fmt: skip
            if not per_seed:
                out.append(entry | {"gap": None, "context_bootstrap": None, "seed_spread": None})
                continue
            gaps = np.array(list(per_seed.values()))
            boot = np.mean(drawn, axis=0)  # each draw's mean over seeds, as the point estimate
            low, high = np.quantile(boot, [tail, 1 - tail])
            entry["gap"] = float(gaps.mean())
            entry["context_bootstrap"] = {"low": float(low), "high": float(high),
                                          "significant": excludes_zero(low, high)}  # fmt: skip
            entry["seed_spread"] = None
            if len(gaps) >= 2:
                mean, low, high = t_interval(gaps, confidence)
                entry["seed_spread"] = {"n": len(gaps), "sd": float(np.std(gaps, ddof=1)), "low": low,
                                        "high": high, "significant": excludes_zero(low, high)}  # fmt: skip
            out.append(entry)
    return out
