"""Beam search and attribution graphs (docs/design.md §5.4) on a small random model with random transcoders.

Identities tested, each to relative 1e-4 (float32 model, float64 attribution: see test_attribution):
- a path's value is its last node's contribution in the root's units, and for feature -> feature
  paths it equals the multiplicative rule c_1 · a_21 / z_1;
- the beam keeps at most n_branches paths per iteration, ranked by |value|, and obeys its filter;
- every expanded graph node: Σ in-edges (kept + error nodes) = value + offset;
- every path node: Σ out-edges = value + offset (merging several parents is linear);
- edges into the root from kept nodes equal the root's direct contributions.
"""

import pytest
import torch

from transcoder_lab.circuits import (
    EXPANDABLE_KINDS,
    Contributor,
    Path,
    PathFilter,
    attribute,
    beam_search,
    build_graph,
    feature_root,
    filter_paths,
    fraction_explained,
    logit_diff_root,
    top_contributors,
)

from helpers.circuit_models import small_context

REL = 1e-4


@pytest.fixture(scope="module")
def setup():
    return small_context(skip_layer=1)


@pytest.fixture(scope="module")
def ctx(setup):
    return setup[3]


def active_feature(ctx, layer, t):
    return int(ctx.feature_acts[layer][t].argmax())


def close(a, b, scale):
    return abs(a - b) <= REL * max(abs(scale), 1e-12)


def test_first_iteration_is_the_roots_top_expandable_contributors(ctx):
    root = logit_diff_root(ctx, 1, 2, 7)
    paths = beam_search(ctx, root, n_iterations=1, n_branches=6)
    expected = top_contributors(attribute(ctx, root), k=6, kinds=EXPANDABLE_KINDS)
    assert [p.labels for p in paths] == [[c.label] for c in expected]
    assert [p.value for p in paths] == pytest.approx([c.value for c in expected])


def test_beam_sizes_ranking_and_path_values(ctx):
    root = logit_diff_root(ctx, 1, 2, 7)
    paths = beam_search(ctx, root, n_iterations=3, n_branches=5)
    by_length = {n: [p for p in paths if len(p) == n] for n in (1, 2, 3)}
    assert all(1 <= len(v) <= 5 for v in by_length.values())
    assert [abs(p.value) for p in paths] == sorted((abs(p.value) for p in paths), reverse=True)
    assert all(p.nodes[-1].value == p.value for p in paths)
    # every extension's prefix was in the previous beam
    labels = {tuple(p.labels) for p in paths}
    assert all(tuple(p.labels[:-1]) in labels for p in paths if len(p) > 1)


def test_grandchild_contributions_are_in_the_roots_units(ctx):
    """Feature j at resid_mid 3 <- feature i of layer 2 <- feature k of layer 0: the path value
    c_i · a_ki / z_i uses only natural-unit attributions of feature roots."""
    t = 6
    j = active_feature(ctx, 3, t)
    root = feature_root(ctx, 3, j, t)
    only_features = PathFilter(kinds=frozenset({"feature"}))
    paths = [p for p in beam_search(ctx, root, 2, 8, only_features) if len(p) == 2]
    assert paths
    root_attribution = attribute(ctx, root)
    for path in paths:
        first, second = path.nodes
        c_i = float(root_attribution.features[first.layer][first.index])
        z_i = float(ctx.feature_acts[first.layer][t, first.index])
        natural = attribute(ctx, feature_root(ctx, first.layer, first.index, t))
        a_ki = float(natural.features[second.layer][second.index])
        assert path.value == pytest.approx(c_i * a_ki / z_i, rel=REL)


def test_filters_apply_during_and_after_search(ctx):
    root = logit_diff_root(ctx, 3, 4, 8)
    flt = PathFilter(layers=(1, 3), kinds=frozenset({"feature", "head"}), positions=frozenset({5, 8}))
    paths = beam_search(ctx, root, 3, 10, flt)
    assert paths and all(flt.accepts(node) for p in paths for node in p.nodes)
    # a filter on feature ids: the search still fills its beam from allowed features
    allowed = (ctx.feature_acts[2][8] > 0).nonzero()[:, 0][:3].tolist()
    only = PathFilter(kinds=frozenset({"feature"}), features=frozenset(allowed))
    found = beam_search(ctx, root, 1, 10, only)
    assert {node.index for p in found for node in p.nodes} <= set(allowed) and found
    assert filter_paths(paths, PathFilter(layers=(3, 3))) == [
        p for p in paths if all(node.layer == 3 for node in p.nodes)
    ]


def check_graph(graph):
    for node_id, node in graph.nodes.items():
        incoming = graph.in_edges(node_id)
        if node.expanded:
            total = sum(e.weight for e in incoming)
            assert close(total, node.total, max(abs(node.value), abs(node.total))), (
                node_id,
                total,
                node.total,
            )
            assert sum(graph.nodes[e.source].is_error for e in incoming) >= 1  # rest(...) is always there
        else:
            assert not incoming
        if node.kind in EXPANDABLE_KINDS:
            outgoing = sum(e.weight for e in graph.out_edges(node_id))
            assert close(outgoing, node.total, abs(node.total)), (node_id, outgoing, node.total)
    ids = set(graph.nodes)
    assert all(e.source in ids and e.target in ids for e in graph.edges)


@pytest.mark.parametrize("which", ["logit", "feature"])
def test_graph_identities(ctx, which):
    root = (
        logit_diff_root(ctx, 1, 2, 9)
        if which == "logit"
        else feature_root(ctx, 3, active_feature(ctx, 3, 9), 9)
    )
    paths = beam_search(ctx, root, 3, 12, PathFilter(kinds=EXPANDABLE_KINDS | {"embedding"}))
    graph = build_graph(ctx, root, paths)
    check_graph(graph)
    # nodes shared between paths are merged: fewer nodes than path entries
    assert len([n for n in graph.nodes.values() if not n.is_error]) - 1 < sum(len(p) for p in paths)
    # kept edges into the root are the root's own direct contributions
    attribution = attribute(ctx, root)
    for edge in graph.in_edges(graph.root_id):
        node = graph.nodes[edge.source]
        if node.is_error:
            continue
        path = next(p for p in paths if p.labels[0] == edge.source)
        assert edge.weight == pytest.approx(path.nodes[0].value, rel=1e-9)
    kept = sum(e.weight for e in graph.in_edges(graph.root_id) if not graph.is_error_edge(e))
    assert fraction_explained(graph) == pytest.approx(kept / attribution.value)


def test_a_node_with_two_parents_is_one_node_whose_total_is_both_contributions(ctx):
    """Hand-made paths: feature i of layer 1 directly under a resid_mid 3 feature root and again
    under a layer-2 feature: one node, two out-edges, each equal to the search's own values."""
    t = 5
    root = feature_root(ctx, 3, active_feature(ctx, 3, t), t)
    root_attribution = attribute(ctx, root)
    i = active_feature(ctx, 1, t)
    k = active_feature(ctx, 2, t)
    direct = Contributor("feature", float(root_attribution.features[1][i]), 1, i, t)
    middle = Contributor("feature", float(root_attribution.features[2][k]), 2, k, t)
    via = beam_search(
        ctx, root, 2, 400, PathFilter(kinds=frozenset({"feature"}), layers=(1, 2)), per_node=400
    )
    through = next(p for p in via if p.labels == [middle.label, direct.label])
    graph = build_graph(ctx, root, [Path((direct,), direct.value), Path((middle, direct), 0.0)])
    check_graph(graph)
    out = {e.target: e.weight for e in graph.out_edges(direct.label)}
    assert out[root.label] == pytest.approx(direct.value, rel=REL)
    assert out[middle.label] == pytest.approx(through.value, rel=REL)
    assert graph.nodes[direct.label].total == pytest.approx(direct.value + through.value, rel=REL)


def test_split_error_nodes(ctx):
    root = logit_diff_root(ctx, 5, 6, 4)
    paths = beam_search(ctx, root, 2, 4)
    everything = build_graph(ctx, root, paths, split_fraction=0.0)
    kinds = {n.kind for n in everything.nodes.values() if n.parent == root.label}
    assert {"rest", "emb_rest", "err_rest", "bias_rest"} <= kinds
    check_graph(everything)
    lumped = build_graph(ctx, root, paths, split_fraction=float("inf"))
    assert {n.kind for n in lumped.nodes.values() if n.is_error} == {"rest"}
    check_graph(lumped)
    assert torch.isclose(
        torch.tensor(fraction_explained(lumped)), torch.tensor(fraction_explained(everything)), rtol=1e-9
    )


GRAPH_SCRIPT = """
import json, sys
sys.path.insert(0, {tests_dir!r})
from helpers.circuit_models import small_context
from transcoder_lab.circuits import EXPANDABLE_KINDS, PathFilter, beam_search, build_graph, logit_diff_root
ctx = small_context(skip_layer=1)[3]
root = logit_diff_root(ctx, 1, 2, 9)
paths = beam_search(ctx, root, 3, 12, PathFilter(kinds=EXPANDABLE_KINDS | {{"embedding"}}))
graph = build_graph(ctx, root, paths)
print(json.dumps([[n.node_id, n.value] for n in graph.nodes.values()]))
"""


def test_graph_node_order_does_not_depend_on_string_hashing():
    """Nodes of one layer and kind used to come out in set-iteration order, which changes with
    PYTHONHASHSEED: the same graph was written in a different order on every run."""
    import os
    import subprocess
    import sys
    from pathlib import Path as FilePath

    script = GRAPH_SCRIPT.format(tests_dir=str(FilePath(__file__).parents[1]))
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    ]
    assert outputs[0] and outputs[0] == outputs[1] == outputs[2]
