"""Attribution vs zero-ablation on the tiny profile's trained organism (docs/design.md §5.7).

Root: the most active layer-1 transcoder feature at the last token of a held-out greater-than
prompt (a feature root at resid_mid 1). Every layer-0 transcoder feature active at that token is
zero-ablated there (`verify_graph`) and its actual effect on the root's value compared with its
attribution, the feature's total effect through a graph that keeps its direct edge to the root and
its edges through every head of attention layer 1 reading that token. Those are the only routes
from MLP 0 at token t to resid_mid 1 at t (MLP 1 writes after resid_mid 1; attention 1 at t sees
the changed residual only at source t), so with attention patterns and LayerNorm scales frozen the
model is linear from the ablated feature's output to the root and the attribution is the exact
first-order effect, and first order is everything: actual change = -attribution to float error,
hence Spearman ~1 (>= 0.9 asserted, leaving room only for float ties among tiny effects). Unfrozen
(real patterns and LN scales), attribution is only a first-order approximation: that Spearman must
beat chance in a one-sided permutation test (p < 0.01), which an attribution unrelated to the
effects fails 99 times in 100.
"""

import math

import numpy as np
import pytest
import torch

from transcoder_lab.circuits import (
    AttributionContext,
    feature_root,
    source_layer_graph,
    spearman,
    verify_graph,
)
from transcoder_lab.dictionaries import load_dictionary
from transcoder_lab.organism.mechanisms.greater_than import greater_than_prompts
from transcoder_lab.paths import dictionary_dir
from transcoder_lab.sources.models import load_model

HELDOUT_SEED = 12345  # neither the corpus (0) nor the behaviour (1) seed of the tiny profile


@pytest.fixture(scope="module")
def tiny_organism(tiny_pipeline):
    cfg, _ = tiny_pipeline
    model = load_model(cfg.profile, cfg.paths.models)
    l1 = cfg.profile.dictionaries.l1_coefficients[0]
    transcoders = {layer: load_dictionary(dictionary_dir(cfg, layer, "transcoder", l1)) for layer in (0, 1)}
    return cfg, model, transcoders


def _root_and_graph(model, transcoders, tokens):
    """The most active layer-1 feature at the last token with at least 3 active layer-0 features
    there (else the previous token, ...), and the ablation graph described in the module docstring."""
    ctx = AttributionContext.from_tokens(model, transcoders, tokens)
    for t in range(ctx.n_pos - 1, -1, -1):
        active = (ctx.feature_acts[0][t] > 0).nonzero()[:, 0].tolist()
        if len(active) >= 3 and bool((ctx.feature_acts[1][t] > 0).any()):
            break
    else:
        pytest.fail("no token with an active layer-1 feature and >= 3 active layer-0 features")
    root = feature_root(ctx, 1, int(ctx.feature_acts[1][t].argmax()), t)
    graph, n_features = source_layer_graph(ctx, root, 0)
    return root, graph, n_features


@torch.no_grad()
def test_ablation_matches_attribution_on_the_tiny_organism(tiny_organism):
    cfg, model, transcoders = tiny_organism
    prompt = greater_than_prompts(cfg.profile.corpus, HELDOUT_SEED)[37]
    tokens = model.to_tokens(prompt.text)[0]
    assert len(tokens) <= model.cfg.n_ctx
    root, graph, n = _root_and_graph(model, transcoders, tokens)

    frozen = verify_graph(model, transcoders, tokens, root, graph, freeze_attention=True, freeze_ln=True)
    unfrozen = verify_graph(model, transcoders, tokens, root, graph, freeze_attention=False, freeze_ln=False)
    print(
        f"root {root.label}, {n} layer-0 features ablated: Spearman frozen {frozen['spearman']:.4f}, "
        f"unfrozen {unfrozen['spearman']:.4f}"
    )
    assert len(frozen["nodes"]) == n
    assert frozen["spearman"] >= 0.9
    # frozen, first order is exact: the changes themselves agree, not only their ranks
    scale = max(abs(row["actual_change"]) for row in frozen["nodes"])
    for row in frozen["nodes"]:
        assert row["actual_change"] == pytest.approx(row["predicted_change"], abs=1e-3 * scale + 1e-6)
    # unfrozen, attribution is first order only; it must still rank the live effects better than
    # chance: a one-sided permutation test of the Spearman correlation (2,000 shuffles, p < 0.01)
    predicted = [row["predicted_change"] for row in unfrozen["nodes"]]
    actual = [row["actual_change"] for row in unfrozen["nodes"]]
    rho = unfrozen["spearman"]
    generator = np.random.default_rng(0)
    null = [spearman(generator.permutation(predicted), actual) for _ in range(2000)]
    p_value = (1 + sum(r >= rho for r in null)) / (1 + len(null))
    print(f"unfrozen Spearman {rho:.3f}, permutation p = {p_value:.4f} over {len(predicted)} features")
    assert math.isfinite(rho) and p_value < 0.01
