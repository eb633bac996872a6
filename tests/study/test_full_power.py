"""The full-power rating: every live feature rated, and a primary test that can say BELOW."""

from dataclasses import replace

import pytest
import torch

from transcoder_lab.config import ConfigError, GroundTruthRaterConfig, PrimaryTest, StudyConfig, load_config
from transcoder_lab.study.full_power import ArmRatings, arm_scan, cards_agree, full_power_summary, rate_arm
from transcoder_lab.study.packet import ScanData
from transcoder_lab.study.rater import Evidence
from transcoder_lab.study.ratings import GROUND_TRUTH, Rating, RatingsFile

N_CTX = 6


class LinearReLU:
    """A stand-in dictionary: relu(x @ W), which is all `sample.encode` asks of one."""

    device, dtype = "cpu", torch.float32

    def __init__(self, weights: torch.Tensor) -> None:
        self.weights = weights

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.weights)


@pytest.fixture
def scan_and_inputs():
    generator = torch.Generator().manual_seed(0)
    n = 5
    tokens = torch.randint(0, 4, (n, N_CTX), generator=generator)
    counted = torch.ones(n, N_CTX, dtype=torch.bool)
    counted[:, 0] = False  # BOS: never counted
    labels = torch.randint(0, 3, (n, N_CTX), generator=generator)
    empty = torch.zeros(1, dtype=torch.long)
    scan = ScanData(tokens, counted, labels, ["background", "a/x", "a/y"], empty, empty, torch.zeros(0))
    x = torch.randn(n, N_CTX, 3, generator=generator)
    return scan, x


def test_arm_scan_keeps_every_feature_active_on_counted_tokens(scan_and_inputs):
    scan, x = scan_and_inputs
    weights = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    dictionary = LinearReLU(weights)
    features = torch.tensor([0, 2, 3, 4])
    sparse = arm_scan(scan, dictionary, x, features, batch_size=2)  # chunks of 2 contexts, the last short
    assert sparse.n_cards == len(features)
    acts = torch.relu(x @ weights)
    for card, feature in enumerate(features.tolist(), start=1):
        expected = torch.nonzero(((acts[..., feature] > 0) & scan.counted).reshape(-1)).flatten()
        index, values = sparse.card(card)
        assert torch.equal(index, expected)  # the same tokens, in scan order
        assert torch.equal(values, acts[..., feature].reshape(-1)[expected])


def test_rate_arm_rates_every_feature_it_is_given(scan_and_inputs):
    scan, x = scan_and_inputs
    weights = torch.randn(3, 8, generator=torch.Generator().manual_seed(2))
    live = torch.tensor([1, 2, 5, 7])  # features 0, 3, 4 and 6 stand for dead ones
    sparse = arm_scan(scan, LinearReLU(weights), x, live, batch_size=4)
    rated = rate_arm("transcoder", "path", live, sparse, GroundTruthRaterConfig())
    assert rated.features == [1, 2, 5, 7]
    assert len(rated.ratings) == len(rated.evidence) == 4
    activating = ((torch.relu(x @ weights) > 0) & scan.counted[..., None]).sum(dim=(0, 1))
    assert rated.n_activating == activating[live].tolist()
    assert rated.to_json()["n_rated"] == 4


def arm(name: str, ratings: list[tuple[str, bool, float]]) -> ArmRatings:
    """An arm from (rating, context-free, best F1) per feature."""
    evidence = [Evidence(10, "a/x", f1, 1, f1 / 2, 0.5) for _, _, f1 in ratings]
    return ArmRatings(
        name, f"dictionaries/{name}", list(range(len(ratings))),
        [Rating(r, cf) for r, cf, _ in ratings], evidence, [10] * len(ratings),
    )  # fmt: skip


def arms_with(yes_transcoder: int, yes_sae: int, n: int = 200) -> dict[str, ArmRatings]:
    def ratings(n_yes: int) -> list[tuple[str, bool, float]]:
        return [("yes", False, 0.7)] * n_yes + [("no", False, 0.1)] * (n - n_yes)

    return {"transcoder": arm("transcoder", ratings(yes_transcoder)), "sae": arm("sae", ratings(yes_sae))}


STUDY = StudyConfig(n_bootstrap=2000, primary_test=PrimaryTest.yes_share_difference)


def test_a_clearly_better_transcoder_is_ok():
    # 60% vs 20% yes of 200 each: difference 0.40, standard error sqrt(.24/200 + .16/200) ≈ 0.045,
    # so the interval's lower bound sits near 0.31, some seven standard errors above 0.
    summary = full_power_summary(arms_with(120, 40), STUDY)
    primary = summary["primary_test"]
    assert primary["name"] == "yes_share_difference"
    assert primary["difference"]["estimate"] == pytest.approx(0.4)
    assert 0.2 < primary["difference"]["low"] < 0.4 < primary["difference"]["high"]
    assert primary["verdict"] == "ok"
    assert summary["n_rated"] == {"transcoder": 200, "sae": 200}


@pytest.mark.parametrize(
    ("yes_transcoder", "yes_sae"),
    [(60, 60), (40, 120)],  # identical arms (difference exactly 0); a transcoder clearly worse
)
def test_a_case_built_to_fail_is_below(yes_transcoder, yes_sae):
    # Identical arms: the bootstrap differences centre on 0, so about half lie below it and the
    # 2.5th percentile cannot be above 0. A worse transcoder: the whole interval lies below 0.
    summary = full_power_summary(arms_with(yes_transcoder, yes_sae), STUDY)
    assert summary["primary_test"]["difference"]["low"] < 0
    assert summary["primary_test"]["verdict"] == "BELOW"


def test_the_verdict_follows_the_test_the_config_names():
    # Equal yes shares (none), but the transcoder's features score clearly higher F1 (0.25 vs 0.05).
    arms = {
        "transcoder": arm("transcoder", [("no", False, 0.25)] * 100),
        "sae": arm("sae", [("no", False, 0.05)] * 100),
    }
    by_yes = full_power_summary(arms, STUDY)
    by_f1 = full_power_summary(arms, replace(STUDY, primary_test=PrimaryTest.mean_f1_difference))
    assert by_yes["primary_test"]["verdict"] == "BELOW"
    assert by_f1["primary_test"]["verdict"] == "ok"
    assert by_f1["primary_test"]["difference"]["estimate"] == pytest.approx(0.2)
    # Both differences are always reported, drawn in the same order: the choice selects nothing.
    assert by_yes["differences"] == by_f1["differences"]


def test_context_free_is_counted_among_interpretable_features():
    arms = {
        "transcoder": arm("transcoder", [("yes", True, 0.9), ("maybe", False, 0.4), ("no", False, 0.1)] * 10),
        "sae": arm("sae", [("yes", True, 0.9), ("maybe", True, 0.4), ("no", False, 0.1)] * 10),
    }
    summary = full_power_summary(arms, STUDY)
    free = summary["context_free_among_interpretable"]
    assert free["n_interpretable"] == {"transcoder": 20, "sae": 20}
    assert free["n_context_free"] == {"transcoder": 10, "sae": 20}
    assert free["share"]["transcoder"]["estimate"] == pytest.approx(0.5)
    assert free["share"]["difference"]["estimate"] == pytest.approx(-0.5)
    assert summary["counts"]["transcoder"]["context_free"] == 10  # over all 30 rated features


def test_cards_agree_compares_each_card_with_its_features_full_rating():
    arms = {
        "transcoder": arm("transcoder", [("yes", True, 0.9), ("no", False, 0.1)]),
        "sae": arm("sae", [("maybe", False, 0.4)]),
    }
    key = {"cards": [
        {"card": 1, "arm": "sae", "feature": 0},
        {"card": 2, "arm": "transcoder", "feature": 1},
        {"card": 3, "arm": "transcoder", "feature": 0},
    ]}  # fmt: skip
    # card 3's tick differs from its feature's full rating
    cards = {1: Rating("maybe", False), 2: Rating("no", False), 3: Rating("yes", False)}
    result = cards_agree(RatingsFile(GROUND_TRUTH, "f" * 64, cards), key, arms)
    assert result == {"n_cards": 3, "agree": 2, "disagree": [3]}


def test_primary_test_is_a_closed_choice():
    with pytest.raises(ConfigError, match="primary_test"):
        load_config({"profile": {"study": {"primary_test": "largest_difference"}}})
