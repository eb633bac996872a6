"""The ground-truth rater on hand-made scan data whose answers are known."""

import pytest
import torch

from transcoder_lab.config import GroundTruthRaterConfig
from transcoder_lab.study.packet import ScanData
from transcoder_lab.study.rater import evidence, judge, rate_all

LABELS = ["background", "citation/semicolon", "citation/year", "prose/semicolon", "caught/passive_caught"]
SEMI, YEAR, WORD, CAUGHT = 5, 6, 7, 8


def scan_with(cards: list[torch.Tensor], tokens: torch.Tensor, labels: torch.Tensor) -> ScanData:
    """cards[i]: card i + 1's activations over the (flat) tokens."""
    index, values, offsets = [], [], [0]
    for acts in cards:
        active = torch.nonzero(acts > 0).flatten()
        index.append(active)
        values.append(acts[active])
        offsets.append(offsets[-1] + len(active))
    return ScanData(
        tokens=tokens[None], counted=torch.ones(1, len(tokens), dtype=torch.bool), labels=labels[None],
        label_names=LABELS, active_offsets=torch.tensor(offsets), active_index=torch.cat(index),
        active_values=torch.cat(values),
    )  # fmt: skip


@pytest.fixture
def scan():
    # 40 tokens: 5 citation semicolons, 5 prose semicolons, 5 citation years, 5 "caught", 20 background words.
    tokens = torch.tensor([SEMI] * 10 + [YEAR] * 5 + [CAUGHT] * 5 + [WORD] * 20)
    labels = torch.tensor([1] * 5 + [3] * 5 + [2] * 5 + [4] * 5 + [0] * 20)
    on = lambda mask: mask.float() * 2.0  # noqa: E731
    position = torch.arange(40)
    weak = torch.zeros(40)
    weak[20:40] = 0.05  # faint firing below active_fraction (0.1) of the max: ignored
    cards = [
        on(labels == 1) + weak,  # citation semicolons only: yes, not context-free
        on(tokens == SEMI),  # every semicolon: yes, context-free (the token beats both labels)
        on(torch.isin(position, torch.tensor([0, 10, 15, 20, 21]))),  # scattered: no (best F1 0.27)
        # citation semicolons, two citation years and eight words: maybe (citation/* F1 0.56, token F1 0.46)
        on((labels == 1) | (position == 10) | (position == 11) | ((position >= 20) & (position < 28))),
        torch.zeros(40),  # never active: no
        on(labels == 4),  # "caught" label that is one token: yes, context-free (tie)
    ]
    return scan_with(cards, tokens, labels)


def test_ratings_follow_the_stated_rule(scan):
    rule = GroundTruthRaterConfig()
    judged = [judge(evidence(scan, card, rule), rule) for card in range(1, 7)]
    assert [(r.rating, r.context_free) for r in judged] == [
        ("yes", False), ("yes", True), ("no", False), ("maybe", False), ("no", False), ("yes", True),
    ]  # fmt: skip
    first = evidence(scan, 1, rule)
    assert first.best_label == "citation/semicolon" and first.best_label_f1 == pytest.approx(1.0)
    assert first.best_token == SEMI and first.best_token_f1 == pytest.approx(2 * 5 / (5 + 10))
    fourth = evidence(scan, 4, rule)
    assert fourth.best_label == "citation/*" and fourth.best_label_f1 == pytest.approx(2 * 7 / (15 + 10))
    assert fourth.best_token == WORD and fourth.best_token_f1 == pytest.approx(2 * 8 / (15 + 20))


def test_rate_all_writes_a_ground_truth_ratings_file(scan):
    ratings = rate_all(scan, GroundTruthRaterConfig(), packet_id="abc")
    assert ratings.rater == "ground_truth" and ratings.packet_id == "abc"
    assert sorted(ratings.ratings) == [1, 2, 3, 4, 5, 6]
    assert ratings.to_json()["rule"]["yes_f1"] == 0.6
    assert ratings.to_json()["evidence"]["5"]["n_active"] == 0
