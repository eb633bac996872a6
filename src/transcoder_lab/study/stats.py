"""Statistics of the blind study: counts per arm, Fisher exact tests, bootstrap intervals, agreement.

1. Counts (`arm_counts`): per arm, the rated cards that are yes / maybe / no and those ticked
   context-free (over all rated cards), the paper's table layout (arms as rows).
2. Fisher exact tests (`fisher_tests`, scipy.stats.fisher_exact, two-sided) on 2x2 tables of arm
   x outcome: "interpretable" (yes vs maybe or no, the paper's reading), "not uninterpretable"
   (yes or maybe vs no) and "context_free" (ticked vs not).
3. Bootstrap (`bootstrap_means`, `bootstrap_shares`): `n_bootstrap` resamples of each arm's cards
   with replacement (numpy's default generator, seeded), each arm independently; percentile
   intervals (95%) of each arm's mean (for 0/1 outcomes: its share, e.g. of yes and of
   context-free over all rated cards) and of the difference transcoder - SAE.
4. Agreement between raters on the cards both rated: Cohen's kappa
   κ = (p_o - p_e) / (1 - p_e), p_o the observed agreement and p_e = Σ_c p_a(c) p_b(c) from the
   two raters' marginals (None when p_e = 1: both always gave the same single category).
   Krippendorff's alpha for nominal data over any number of raters with missing values:
   α = 1 - (n - 1) Σ_{c≠k} o_ck / Σ_{c≠k} n_c n_k, where the coincidence matrix o gets, from
   every unit (card) with m >= 2 values, 1/(m - 1) for each ordered pair of two of its values,
   n_c = Σ_k o_ck and n = Σ_c n_c (units with one value are not pairable and drop out).
5. Context-free among interpretable (`context_free_among_interpretable`), the paper's count: per
   arm, of the yes-or-maybe cards, the share ticked context-free, with a bootstrap interval that
   resamples those cards; beside step 1's count over all rated cards.
6. Verdict of a pre-named difference (`verdict`): "ok" when its interval's lower bound is > 0
   (transcoder better), "BELOW" otherwise, including an interval that straddles 0.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from itertools import permutations

import numpy as np
from scipy.stats import fisher_exact

from transcoder_lab.study.ratings import CATEGORIES, Rating

Arms = Mapping[str, Sequence[Rating]]  # arm -> its rated cards' ratings


def arm_counts(arms: Arms) -> dict[str, dict[str, int]]:
    counts = {}
    for arm, ratings in arms.items():
        row = {category: sum(r.rating == category for r in ratings) for category in CATEGORIES}
        row["context_free"] = sum(r.context_free for r in ratings)
        row["n"] = len(ratings)
        counts[arm] = row
    return counts


def fisher(table: list[list[int]]) -> dict:
    result = fisher_exact(table, alternative="two-sided")
    odds = float(result.statistic)
    return {
        "table": table,
        "odds_ratio": odds if np.isfinite(odds) else None,
        "p_value": float(result.pvalue),
    }


def fisher_tests(
    counts: Mapping[str, Mapping[str, int]], arms: tuple[str, str] = ("transcoder", "sae")
) -> dict:
    """Step 2: each table's rows are `arms`, columns (outcome, not outcome)."""

    def table(outcome) -> list[list[int]]:
        return [[outcome(counts[a]), counts[a]["n"] - outcome(counts[a])] for a in arms]

    return {
        "rows": list(arms),
        "interpretable": fisher(table(lambda c: c["yes"])),
        "yes_or_maybe": fisher(table(lambda c: c["yes"] + c["maybe"])),
        "context_free": fisher(table(lambda c: c["context_free"])),
    }


def _interval(samples: np.ndarray, estimate: float, level: float) -> dict:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return {"estimate": estimate, "low": float(low), "high": float(high)}


def bootstrap_means(
    per_arm: Mapping[str, np.ndarray],
    n_bootstrap: int,
    seed: int | np.random.Generator,
    level: float = 0.95,
    pair: tuple[str, str] = ("transcoder", "sae"),
) -> dict:
    """Step 3 for any per-item values: {arm: ci, "difference": ci}, ci = estimate, low, high.

    Each arm's values are resampled with replacement `n_bootstrap` times (arms independently, in
    `per_arm`'s order, from `seed`'s generator: pass a Generator to continue its stream); an arm
    without values gets None and no difference."""
    generator = np.random.default_rng(seed)
    resampled, entry = {}, {}
    for arm, values in per_arm.items():
        if len(values) == 0:
            entry[arm] = None
            continue
        index = generator.integers(0, len(values), size=(n_bootstrap, len(values)))
        resampled[arm] = values[index].mean(axis=1)
        entry[arm] = _interval(resampled[arm], float(values.mean()), level)
    a, b = pair
    if a in resampled and b in resampled:
        estimate = float(per_arm[a].mean() - per_arm[b].mean())
        entry["difference"] = _interval(resampled[a] - resampled[b], estimate, level)
    return entry


def bootstrap_shares(
    arms: Arms,
    n_bootstrap: int,
    seed: int,
    level: float = 0.95,
    pair: tuple[str, str] = ("transcoder", "sae"),
) -> dict:
    """Step 3: {"yes": {arm: ci, "difference": ci}, "context_free": {...}}, ci = estimate, low, high."""
    generator = np.random.default_rng(seed)
    outcomes = {
        "yes": {a: np.array([r.rating == "yes" for r in rs], dtype=float) for a, rs in arms.items()},
        "context_free": {a: np.array([r.context_free for r in rs], dtype=float) for a, rs in arms.items()},
    }
    result: dict = {"n_bootstrap": n_bootstrap, "level": level}
    for name, per_arm in outcomes.items():
        result[name] = bootstrap_means(per_arm, n_bootstrap, generator, level, pair)
    return result


def context_free_among_interpretable(
    arms: Arms,
    n_bootstrap: int,
    seed: int | np.random.Generator,
    level: float = 0.95,
    pair: tuple[str, str] = ("transcoder", "sae"),
) -> dict:
    """Step 5: per arm, the share of its yes-or-maybe items that are ticked context-free.

    The paper's denominator: a feature with no explanation cannot be context-free in any useful
    sense, so the share is of the interpretable ones. The interval resamples each arm's
    yes-or-maybe items (the share is conditional on how many there are)."""
    interpretable = {
        arm: np.array([r.context_free for r in ratings if r.rating != "no"], dtype=float)
        for arm, ratings in arms.items()
    }
    return {
        "n_interpretable": {arm: len(values) for arm, values in interpretable.items()},
        "n_context_free": {arm: int(values.sum()) for arm, values in interpretable.items()},
        "share": bootstrap_means(interpretable, n_bootstrap, seed, level, pair),
    }


def verdict(interval: Mapping[str, float] | None) -> str:
    """Step 6: "ok" when the difference's interval lies above 0 (low > 0), else "BELOW"."""
    return "ok" if interval is not None and interval["low"] > 0 else "BELOW"


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    if len(a) != len(b):
        raise ValueError(f"Cohen's kappa needs paired ratings; got {len(a)} and {len(b)}")
    if not a:
        return None
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    categories = set(a) | set(b)
    expected = sum((list(a).count(c) / n) * (list(b).count(c) / n) for c in categories)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def krippendorff_alpha_nominal(units: Sequence[Sequence[Hashable | None]]) -> float | None:
    """Nominal alpha; `units[u]` holds each rater's value for unit u, None where missing."""
    coincidence: dict[tuple[Hashable, Hashable], float] = {}
    for unit in units:
        values = [v for v in unit if v is not None]
        m = len(values)
        if m < 2:
            continue
        for x, y in permutations(values, 2):
            coincidence[(x, y)] = coincidence.get((x, y), 0.0) + 1 / (m - 1)
    totals: dict[Hashable, float] = {}
    for (x, _), weight in coincidence.items():
        totals[x] = totals.get(x, 0.0) + weight
    n = sum(totals.values())
    disagree = sum(w for (x, y), w in coincidence.items() if x != y)
    expected = sum(totals[x] * totals[y] for x in totals for y in totals if x != y)
    if n <= 1 or expected == 0:
        return None
    return 1 - (n - 1) * disagree / expected


def pairwise_agreement(raters: Mapping[str, Mapping[int, Rating]]) -> list[dict]:
    """Step 4 for each pair of raters: kappa and observed agreement on the rating and the tick."""
    names = sorted(raters)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            cards = sorted(set(raters[a]) & set(raters[b]))
            ra = [raters[a][c].rating for c in cards]
            rb = [raters[b][c].rating for c in cards]
            ca = [raters[a][c].context_free for c in cards]
            cb = [raters[b][c].context_free for c in cards]
            pairs.append({
                "raters": [a, b],
                "n": len(cards),
                "observed": sum(x == y for x, y in zip(ra, rb, strict=True)) / len(cards) if cards else None,
                "kappa": cohen_kappa(ra, rb),
                "kappa_context_free": cohen_kappa(ca, cb),
            })  # fmt: skip
    return pairs


def krippendorff_all(raters: Mapping[str, Mapping[int, Rating]], n_cards: int) -> dict:
    names = sorted(raters)
    cards = range(1, n_cards + 1)
    rating_units = [[raters[r][c].rating if c in raters[r] else None for r in names] for c in cards]
    tick_units = [[raters[r][c].context_free if c in raters[r] else None for r in names] for c in cards]
    return {
        "raters": names,
        "rating": krippendorff_alpha_nominal(rating_units),
        "context_free": krippendorff_alpha_nominal(tick_units),
    }
