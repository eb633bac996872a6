"""Scoring features against ground-truth labels (organism.ground_truth) on hand-made cases."""

import pytest
import torch

from transcoder_lab.organism.ground_truth import (
    NO_LABEL,
    active_tokens,
    best_labels,
    f1,
    label_candidates,
    label_counts,
    label_sets,
)

LABELS = ["background", "citation/semicolon", "citation/year", "prose/semicolon", "caught/passive_caught"]


def test_label_sets_exclude_background_and_add_families():
    sets = label_sets(LABELS, ["background"])
    assert "background" not in sets
    assert sets["citation/*"] == [1, 2] and sets["citation/semicolon"] == [1]
    assert "prose/*" not in sets  # a family of one label adds nothing


def test_active_tokens_are_above_the_fraction_of_the_largest_activation():
    acts = torch.tensor([[2.0, 0.0], [0.15, 0.0], [0.25, 0.0], [-1.0, 0.0]])
    assert active_tokens(acts, 0.1).tolist() == [[True, False], [False, False], [True, False], [False, False]]
    # a chunk of the tokens, with the largest activation over all of them: the same rule
    chunk = active_tokens(acts[1:], 0.1, top=acts.amax(dim=0))
    assert chunk.tolist() == [[False, False], [True, False], [False, False]]
    assert active_tokens(torch.zeros(0, 3), 0.1).shape == (0, 3)


def test_f1_and_best_labels_for_many_features_at_once():
    # 10 counted tokens: 3 citation semicolons, 2 citation years, 2 prose semicolons, 3 background
    labels = torch.tensor([1, 1, 1, 2, 2, 3, 3, 0, 0, 0])
    c = label_candidates(labels, LABELS, ["background"])
    assert c.names == [
        "citation/semicolon",
        "citation/*",
        "citation/year",
        "prose/semicolon",
        "caught/passive_caught",
    ]
    assert c.sizes.tolist() == [3, 5, 2, 2, 0]
    active = torch.stack(
        [
            labels == 1,  # citation semicolons: F1 1
            (labels == 1) | (labels == 2),  # the citation family: F1 1 (the label 2·3/(5+3) = 0.75)
            (labels == 1) | (labels == 3),  # every semicolon: citation/semicolon 2·3/(5+3)
            labels == 0,  # background only: no label
            torch.zeros(10, dtype=torch.bool),  # never active: no label
        ],
        dim=1,
    )
    hits = active.T.double() @ torch.nn.functional.one_hot(labels, len(LABELS)).double()
    best, score = best_labels(hits, active.sum(dim=0), c)
    assert best.tolist() == [0, 1, 0, NO_LABEL, NO_LABEL]
    assert score.tolist() == pytest.approx([1.0, 1.0, 2 * 3 / (5 + 3), 0.0, 0.0])
    # one feature alone (the rater's use): the same answer
    one, one_score = best_labels(label_counts(labels[active[:, 2]], len(LABELS)), torch.tensor(5), c)
    assert (int(one), float(one_score)) == (0, pytest.approx(0.75))
    assert f1(torch.tensor(0), 0, torch.tensor(0)) == 0  # both sets empty
