"""Verification of attribution graphs by ablation, and the Spearman correlation it reports.

Exactness (float32 model, relative 1e-4): with attention patterns and LayerNorm scales frozen to
the clean run, the model is linear from a layer-(L-1) feature to the resid_mid L root: the feature
reaches the root directly and through the heads of attention L that read its token, nothing else.
A graph that keeps the feature directly and under every head of attention L at that token has
total effect = direct + through heads, so the actual change of the root equals -attribution.

Without frozen LN scales the root's LN scale reacts to the ablation at first order: the relative
change of the scale is about (x_c·δ)/|x_c|^2 for a residual change δ, and it rescales the
root's whole new value. For the logit root below with features in the last layer (no attention in between,
only the final LN), the ablated value is exactly (value - attribution) · σ/σ' with σ' the final LN
scale of the ablated residual, which we compute from the cache and test at 1e-4, rather than
picking a loose tolerance for the attribution itself (it is off by |1 - σ/σ'|, a few % here).
"""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from transcoder_lab.circuits import (
    Contributor,
    Path,
    PathFilter,
    attribute,
    average_ranks,
    beam_search,
    build_graph,
    feature_root,
    logit_diff_root,
    spearman,
    verify_graph,
)

from helpers.circuit_models import small_context

REL = 1e-4


@pytest.fixture(scope="module")
def setup():
    return small_context()


def test_spearman_by_hand_with_ties():
    assert average_ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    # ranks a: [1, 2.5, 2.5, 4]; b: [1, 2, 3, 4]: centred dot 4.5, norms sqrt(4.5) and sqrt(5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / np.sqrt(4.5 * 5))
    assert spearman([3, 1, 2], [30, 10, 20]) == pytest.approx(1.0)
    assert spearman([3, 1, 2], [-30, -10, -20]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3])) and np.isnan(spearman([1], [2]))
    g = np.random.default_rng(0)
    a, b = g.integers(0, 5, 40), g.integers(0, 5, 40)  # many ties
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, rel=1e-12)


def test_layer_below_a_resid_mid_root_is_exact_with_frozen_patterns_and_ln(setup):
    model, tcs, tokens, ctx = setup
    L = 2
    # the token (after the first) that attention L's heads read most from itself, so the paths
    # through the heads are not negligible
    t = 1 + int(ctx.patterns[L].diagonal(dim1=-2, dim2=-1)[:, 1:].sum(0).argmax())
    root = feature_root(ctx, L, int(ctx.feature_acts[L][t].argmax()), t)
    root_attribution = attribute(ctx, root)
    features = (ctx.feature_acts[L - 1][t] > 0).nonzero()[:, 0][:6].tolist()
    paths = []
    for i in features:
        direct = Contributor("feature", float(root_attribution.features[L - 1][i]), L - 1, i, t)
        paths.append(Path((direct,), direct.value))
        for h in range(model.cfg.n_heads):
            head = Contributor("head", float(root_attribution.heads[L, h, t]), L, h, t)
            paths.append(Path((head, direct), 0.0))
    graph = build_graph(ctx, root, paths)
    result = verify_graph(model, tcs, tokens, root, graph, freeze_attention=True, freeze_ln=True)
    assert result["clean_value"] == pytest.approx(root_attribution.value, rel=1e-5)
    assert len(result["nodes"]) == len(features)
    for row in result["nodes"]:
        assert row["actual_change"] == pytest.approx(
            -row["attribution"], rel=REL, abs=REL * abs(root_attribution.value)
        )
        assert row["direct_attribution"] == pytest.approx(
            float(root_attribution.features[L - 1][row["feature"]])
        )
    through_heads = [abs(row["attribution"] - row["direct_attribution"]) for row in result["nodes"]]
    assert max(through_heads) > 1e-2 * max(abs(row["attribution"]) for row in result["nodes"])
    assert result["spearman"] == pytest.approx(1.0)


def test_last_layer_features_under_a_logit_root(setup):
    """Frozen LN: exact. Unfrozen LN: off by the first-order LN-scale term, bounded from the cache."""
    model, tcs, tokens, ctx = setup
    n, t = model.cfg.n_layers, 8
    root = logit_diff_root(ctx, 3, 7, t)
    only_last = PathFilter(layers=(n - 1, n - 1), kinds=frozenset({"feature"}))
    graph = build_graph(ctx, root, beam_search(ctx, root, 1, 8, only_last))
    frozen = verify_graph(model, tcs, tokens, root, graph, freeze_attention=True, freeze_ln=True)
    value = attribute(ctx, root).value
    for row in frozen["nodes"]:
        assert row["actual_change"] == pytest.approx(-row["attribution"], rel=REL, abs=REL * abs(value))
        # float32 pullbacks computed from two different vectors
        assert row["attribution"] == pytest.approx(row["direct_attribution"], rel=1e-5)
    assert frozen["spearman"] == pytest.approx(1.0)

    unfrozen = verify_graph(model, tcs, tokens, root, graph, freeze_attention=False, freeze_ln=False)
    x = ctx.residual(n, "resid_pre", t)
    scale = float(ctx.ln_pre_scale[n, t])
    tc = tcs[n - 1]
    relative_errors = []
    for row in unfrozen["nodes"]:
        # the only nonlinearity left is ln_final's scale: the value after ablation is
        # (value - attribution) · σ / σ', with σ' the scale of the ablated residual
        delta = -row["activation"] * tc.W_dec[row["feature"]].detach().double()
        moved = x + delta - (x + delta).mean()
        new_scale = float(torch.sqrt(moved.pow(2).mean() + model.cfg.eps))
        expected = (value - row["attribution"]) * scale / new_scale - value
        assert row["actual_change"] == pytest.approx(expected, rel=REL, abs=REL * abs(value))
        relative_errors.append(abs(row["actual_change"] + row["attribution"]) / abs(row["attribution"]))
    # the attribution misses only the rescaling, first order in the ablation's size: small here
    assert 0 < max(relative_errors) < 0.1
    assert (
        unfrozen["freeze_attention"] is False
        and unfrozen["fraction_explained"] == frozen["fraction_explained"]
    )
