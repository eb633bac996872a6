"""Statistics against hand-computed and textbook values."""

import math

import numpy as np
import pytest

from transcoder_lab.study.ratings import Rating
from transcoder_lab.study.stats import (
    arm_counts,
    bootstrap_means,
    bootstrap_shares,
    cohen_kappa,
    context_free_among_interpretable,
    fisher_tests,
    krippendorff_alpha_nominal,
    pairwise_agreement,
    verdict,
)


def hypergeometric_two_sided(table):
    """Fisher's two-sided p from the hypergeometric formula: the probability of every table with
    the observed margins that is no more likely than the observed one."""
    (a, b), (c, d) = table
    row1, col1, n = a + b, a + c, a + b + c + d

    def probability(x):
        return math.comb(row1, x) * math.comb(n - row1, col1 - x) / math.comb(n, col1)

    observed = probability(a)
    support = range(max(0, col1 - (n - row1)), min(row1, col1) + 1)
    return sum(p for p in map(probability, support) if p <= observed * (1 + 1e-9))


def paper_arms():
    """The paper's blind study (Pythia-410M L15): transcoder 41/8/1, SAE 38/8/4; context-free 6 vs 16."""

    def arm(yes, maybe, no, free):
        ratings = [Rating("yes")] * yes + [Rating("maybe")] * maybe + [Rating("no")] * no
        return [Rating(r.rating, i < free) for i, r in enumerate(ratings)]

    return {"transcoder": arm(41, 8, 1, 6), "sae": arm(38, 8, 4, 16)}


def test_counts_in_the_papers_layout():
    counts = arm_counts(paper_arms())
    assert counts["transcoder"] == {"yes": 41, "maybe": 8, "no": 1, "context_free": 6, "n": 50}
    assert counts["sae"] == {"yes": 38, "maybe": 8, "no": 4, "context_free": 16, "n": 50}


def test_fisher_on_the_papers_table_matches_the_hypergeometric_formula():
    tests = fisher_tests(arm_counts(paper_arms()))
    assert tests["interpretable"]["table"] == [[41, 9], [38, 12]]
    assert tests["interpretable"]["p_value"] == pytest.approx(
        hypergeometric_two_sided([[41, 9], [38, 12]]), rel=1e-9
    )
    assert tests["interpretable"]["odds_ratio"] == pytest.approx(41 * 12 / (9 * 38))
    assert tests["yes_or_maybe"]["table"] == [[49, 1], [46, 4]]
    assert tests["yes_or_maybe"]["p_value"] == pytest.approx(
        hypergeometric_two_sided([[49, 1], [46, 4]]), rel=1e-9
    )
    assert tests["context_free"]["table"] == [[6, 44], [16, 34]]
    free = tests["context_free"]["p_value"]
    assert free == pytest.approx(hypergeometric_two_sided([[6, 44], [16, 34]]), rel=1e-9)
    assert (
        tests["interpretable"]["p_value"] > 0.5 and free < 0.05
    )  # the paper's reading: only context-free differs


def test_cohen_kappa_on_a_hand_worked_example():
    # 50 items: both yes 20, a yes / b no 5, a no / b yes 10, both no 15.
    # p_o = 35/50 = 0.7; p_e = (25/50)(30/50) + (25/50)(20/50) = 0.5; kappa = (0.7 - 0.5) / 0.5 = 0.4.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert cohen_kappa(["yes"] * 4, ["yes"] * 4) is None  # p_e = 1: undefined


def test_cohen_kappa_three_categories():
    # 6 cards: agreement on 4 -> p_o = 4/6; marginals a: yes 3 maybe 2 no 1, b: yes 2 maybe 2 no 2,
    # p_e = (3*2 + 2*2 + 1*2) / 36 = 12/36; kappa = (4/6 - 1/3) / (2/3) = 0.5.
    a = ["yes", "yes", "yes", "maybe", "maybe", "no"]
    b = ["yes", "yes", "maybe", "maybe", "no", "no"]
    assert sum(x == y for x, y in zip(a, b, strict=True)) == 4
    assert cohen_kappa(a, b) == pytest.approx(0.5)


def test_krippendorff_alpha_textbook_example():
    """Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers, 12 units,
    values 1-5 with missing data; nominal alpha = 0.743."""
    m = None
    observers = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, m, m, m],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, m, 3],
        [m, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, m],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, m],
    ]
    units = [list(values) for values in zip(*observers, strict=True)]
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_binary_two_observers():
    """Krippendorff (2011): two observers, ten units, binary; alpha = 0.095."""
    a = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    b = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert krippendorff_alpha_nominal(list(zip(a, b, strict=True))) == pytest.approx(0.095, abs=5e-4)
    assert krippendorff_alpha_nominal([(0, 0), (1, 1)]) == pytest.approx(1.0)
    assert krippendorff_alpha_nominal([(1, 1), (1, 1)]) is None  # one value only: undefined


def test_pairwise_agreement_uses_cards_both_rated():
    a = {1: Rating("yes"), 2: Rating("no", True), 3: Rating("maybe")}
    b = {1: Rating("yes"), 2: Rating("no", False), 4: Rating("yes")}
    (pair,) = pairwise_agreement({"a": a, "b": b})
    assert pair["raters"] == ["a", "b"] and pair["n"] == 2 and pair["observed"] == 1.0
    assert pair["kappa"] == pytest.approx(1.0)


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    arms = paper_arms()
    first = bootstrap_shares(arms, 2000, seed=3)
    assert first == bootstrap_shares(arms, 2000, seed=3)
    yes = first["yes"]
    assert yes["transcoder"]["estimate"] == pytest.approx(41 / 50)
    assert yes["difference"]["estimate"] == pytest.approx(3 / 50)
    for interval in (yes["transcoder"], yes["sae"], yes["difference"], first["context_free"]["difference"]):
        assert interval["low"] <= interval["estimate"] <= interval["high"]
    # Binomial standard error of 41/50 is 0.054: a 95% interval about +-0.11 wide.
    assert 0.15 < yes["transcoder"]["high"] - yes["transcoder"]["low"] < 0.3
    assert first["context_free"]["difference"]["high"] < 0  # 6 vs 16 of 50
    every = bootstrap_shares({"transcoder": [Rating("yes")] * 5, "sae": [Rating("no")] * 5}, 100, seed=0)
    assert every["yes"]["transcoder"] == {"estimate": 1.0, "low": 1.0, "high": 1.0}


def test_context_free_among_interpretable_by_hand():
    # Transcoder: yes+tick, yes, maybe+tick, no, and a "no" a human still ticked context-free.
    transcoder = [Rating("yes", True), Rating("yes"), Rating("maybe", True), Rating("no"), Rating("no", True)]
    sae = [Rating("no", True), Rating("no")]  # nothing interpretable: the share is undefined
    result = context_free_among_interpretable({"transcoder": transcoder, "sae": sae}, 5000, seed=0)
    assert result["n_interpretable"] == {"transcoder": 3, "sae": 0}
    assert result["n_context_free"] == {"transcoder": 2, "sae": 0}  # the ticked "no" cards do not count
    share = result["share"]
    assert share["transcoder"]["estimate"] == pytest.approx(2 / 3)
    # Resamples of three 0/1 values can only have shares 0, 1/3, 2/3 or 1; with 5000 of them the
    # 2.5th and 97.5th percentiles are 0 (all three zero: p = 1/27, 185 ± 13 expected, 125 needed)
    # and 1 (all three one: p = 8/27).
    assert share["transcoder"]["low"] == pytest.approx(0.0)
    assert share["transcoder"]["high"] == pytest.approx(1.0)
    assert share["sae"] is None and "difference" not in share
    # The all-cards count keeps its own denominator: 3 ticks of 5 rated cards.
    assert arm_counts({"transcoder": transcoder})["transcoder"]["context_free"] == 3


def test_bootstrap_means_continues_a_generator_stream():
    values = {"transcoder": np.array([0.2, 0.9, 0.4]), "sae": np.array([0.1, 0.3])}
    generator = np.random.default_rng(7)
    first, second = bootstrap_means(values, 300, generator), bootstrap_means(values, 300, generator)
    assert first == bootstrap_means(values, 300, seed=7)  # an int seed starts the same stream
    assert first != second  # a passed generator is continued, not restarted
    assert first["difference"]["estimate"] == pytest.approx(0.5 - 0.2)


def test_verdict_needs_the_whole_interval_above_zero():
    assert verdict({"estimate": 0.05, "low": 0.001, "high": 0.1}) == "ok"
    assert verdict({"estimate": 0.05, "low": 0.0, "high": 0.1}) == "BELOW"  # touching 0 is not above it
    assert verdict({"estimate": 0.05, "low": -0.01, "high": 0.1}) == "BELOW"
    assert verdict({"estimate": -0.2, "low": -0.3, "high": -0.1}) == "BELOW"
    assert verdict(None) == "BELOW"  # an arm with nothing rated cannot pass
