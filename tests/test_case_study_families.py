"""The dictionary-family comparison's measures and statistics (case_studies.families): the hop
profile against the influence it decomposes, hand-computed path lengths and context shares, the
paired bootstrap, the verdicts (which can come out BELOW) and the settings' checks. The stage runs
end to end on the tiny profile in tests/test_pipeline.py."""

import numpy as np
import pytest
import torch

from transcoder_lab.case_studies.families import (
    FAMILIES,
    MEASURES,
    FamiliesConfig,
    context_share,
    families_config,
    families_section,
    hop_profile,
    path_lengths,
    statistics,
    summarise,
    verdicts,
)
from transcoder_lab.circuits import AttributionContext, full_graph
from transcoder_lab.circuits.full_graph import node_influence
from transcoder_lab.config import ConfigError

from helpers.circuit_models import SMALL, crosslayer_from, small_context


@pytest.fixture(scope="module")
def per_layer_graph():
    model, transcoders, tokens, ctx = small_context()
    return model, transcoders, tokens, full_graph(ctx)


def test_hop_terms_decompose_the_influence_and_conserve_the_targets_weight(per_layer_graph):
    """sum_k e_k is the embeddings' influence (full_graph.node_influence sums the same series); the
    mass reaching embeddings and errors is the targets' total weight, since every feature row of the
    normalised matrix sums to 1; a path crosses at most one feature per layer."""
    *_, graph = per_layer_graph
    embeddings, errors = hop_profile(graph)
    influence = node_influence(graph)
    torch.testing.assert_close(
        embeddings.sum(dim=0), influence[graph.embedding_slice], rtol=1e-12, atol=1e-12
    )
    total = float(embeddings.sum() + errors.sum())
    assert total == pytest.approx(float(graph.target_weights.sum()), rel=1e-12)
    assert len(embeddings) <= SMALL["n_layers"] + 1
    assert float(embeddings[2:].sum()) > 0  # multi-feature paths exist on this model


def test_a_clt_without_cross_layer_decoders_has_the_per_layer_hop_profile(per_layer_graph):
    model, transcoders, tokens, graph = per_layer_graph
    clt = crosslayer_from(transcoders, cross_scale=0.0)
    clt_graph = full_graph(AttributionContext.from_tokens(model, clt, tokens))
    ours, theirs = hop_profile(graph)[0], hop_profile(clt_graph)[0]
    torch.testing.assert_close(theirs, ours, rtol=1e-6, atol=1e-9)


def test_path_lengths_and_context_share_by_hand():
    # positions 0..4; hop 0 reaches position 3, hop 1 positions 1 and 4, hop 2 position 2
    e = torch.zeros(3, 5, dtype=torch.float64)
    e[0, 3], e[1, 1], e[1, 4], e[2, 2] = 0.2, 0.3, 0.1, 0.4
    mean, multi, by_k = path_lengths(e)
    assert mean == pytest.approx((0 * 0.2 + 1 * 0.4 + 2 * 0.4) / 1.0)
    assert multi == pytest.approx(0.4)
    assert by_k == pytest.approx([0.2, 0.4, 0.4])
    # earlier tokens: positions 1..3 (BOS and the last excluded): 0.3 + 0.4 + 0.2 = 0.9
    share, chance = context_share(e, [2])
    assert share == pytest.approx(0.4 / 0.9) and chance == pytest.approx(1 / 3)


def test_the_bootstrap_pairs_the_families_and_leaves_out_undefined_prompts():
    settings = FamiliesConfig(mechanisms=["x"], n_bootstrap=500)
    rng = np.random.default_rng(0)
    base = rng.normal(size=20)
    values = np.stack([base, base - 0.5, base + rng.normal(scale=0.1, size=20), base], axis=1)
    values[3, 2] = np.nan
    out = summarise(values, settings)
    assert out["n_prompts"] == 19
    # CLT minus PLT is exactly -0.5 on every prompt, so every paired draw gives -0.5
    assert out["CLT"]["minus_PLT"] == pytest.approx({"mean": -0.5, "low": -0.5, "high": -0.5})
    assert out["PLT"]["low"] < out["PLT"]["mean"] < out["PLT"]["high"]
    assert out["TopK"]["minus_PLT"]["mean"] == 0.0


def _pooled(clt_minus_plt: float, spread: float, share_above: float) -> dict:
    entry = {"mean": clt_minus_plt, "low": clt_minus_plt - spread, "high": clt_minus_plt + spread}
    above = {
        f: {"mean": share_above, "low": share_above - 0.05, "high": share_above + 0.05} for f in FAMILIES
    }
    return {"mean_features_per_path": {"CLT": {"minus_PLT": entry}}, "context_share_above_chance": above}


@pytest.mark.parametrize(
    "difference, spread, direction, verdict",
    [(-0.5, 0.1, "shorter", "ok"), (0.5, 0.1, "longer", "BELOW"), (-0.05, 0.1, "no difference", "BELOW")],
)
def test_the_hop_verdict_comes_out_either_way(difference, spread, direction, verdict):
    hops = verdicts(_pooled(difference, spread, 0.2))["hops"]
    assert (hops["direction"], hops["verdict"]) == (direction, verdict)


def test_the_ground_truth_verdict_needs_the_share_above_chance():
    assert set(verdicts(_pooled(-0.5, 0.1, 0.2))["ground_truth"].values()) >= {"ok"}
    below = verdicts(_pooled(-0.5, 0.1, 0.02))["ground_truth"]
    assert all(below[f] == "BELOW" for f in FAMILIES)


def test_the_report_section_has_every_measure_and_the_verdicts():
    rng = np.random.default_rng(1)
    rows = [
        {
            f: {m: float(rng.uniform(0.1, 3)) for m in MEASURES} | {"share_by_features_per_path": [0.5, 0.5]}
            for f in FAMILIES
        }
        for _ in range(6)
    ]
    settings = FamiliesConfig(mechanisms=["citation"], n_bootstrap=100)
    pooled = statistics(rows, settings)
    result = {
        "compared": True,
        "settings": {"swap_layer": 2, "node_threshold": 0.8, "edge_threshold": 0.98},
        "families": [{"name": f, "dictionaries": f"{f} dictionaries", "total_l0": 70.0} for f in FAMILIES],
        "pooled": pooled,
        "mechanisms": {"citation": {"n_prompts": 6, "statistics": pooled, "prompts": rows}},
        "verdicts": verdicts(pooled),
    }
    text = "\n".join(families_section(result, "../../figures/organism"))
    for header in (
        "feature nodes kept",
        "edges kept",
        "replacement",
        "completeness",
        "sufficiency",
        "necessity",
        "context share",
        "features per path",
        "multi-hop share",
    ):
        assert f"| {header} " in text
    assert text.count("| PLT |") == 1 and "Hops, fixed before the run" in text
    assert "../../figures/organism/families/families.png" in text


def test_settings_are_checked_and_an_empty_list_compares_nothing():
    class Profile:
        families: dict

    class Cfg:
        profile = Profile()

    cfg = Cfg()
    cfg.profile.families = {"mechanisms": []}
    assert families_config(cfg) is None
    cfg.profile.families = {"mechanisms": ["citation"], "n_promts": 3}
    with pytest.raises(ConfigError, match="profile.families.n_promts"):
        families_config(cfg)
    cfg.profile.families = {"mechanisms": ["citation"], "n_prompts": 3}
    assert families_config(cfg).n_prompts == 3
