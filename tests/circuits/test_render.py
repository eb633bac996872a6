"""Graph figures and the circuit-tracer-like JSON export of attribution graphs."""

import json

import matplotlib.pyplot as plt
import pytest

from transcoder_lab.circuits import (
    EXPANDABLE_KINDS,
    PathFilter,
    beam_search,
    build_graph,
    fraction_explained,
    graph_figure,
    graph_to_json,
    logit_diff_root,
    write_graph_json,
)
from transcoder_lab.circuits.render import FEATURE_TYPES

from helpers.circuit_models import small_context


@pytest.fixture(scope="module")
def built():
    _, _, tokens, ctx = small_context()
    root = logit_diff_root(ctx, 1, 2, 9)
    paths = beam_search(ctx, root, 3, 8, PathFilter(kinds=EXPANDABLE_KINDS | {"embedding"}))
    prompt_tokens = [f"t{int(token)}" for token in tokens]
    return build_graph(ctx, root, paths), prompt_tokens


def test_json_round_trip_links_and_weights(built, tmp_path):
    graph, prompt_tokens = built
    data = json.loads(json.dumps(graph_to_json(graph, prompt_tokens, {"scan": "random", "model": "small"})))
    meta = data["metadata"]
    assert meta["prompt_tokens"] == prompt_tokens and meta["prompt"] == "".join(prompt_tokens)
    assert meta["root"] == graph.root_id and meta["scan"] == "random"
    assert meta["fraction_explained"] == pytest.approx(fraction_explained(graph))
    ids = [node["node_id"] for node in data["nodes"]]
    assert len(ids) == len(set(ids)) == len(graph.nodes)
    assert all(link["source"] in ids and link["target"] in ids for link in data["links"])
    assert [(link["source"], link["target"], link["weight"]) for link in data["links"]] == [
        (e.source, e.target, e.weight) for e in graph.edges
    ]
    allowed_types = set(FEATURE_TYPES.values()) | {"error"}
    assert {node["feature_type"] for node in data["nodes"]} <= allowed_types
    by_id = {node["node_id"]: node for node in data["nodes"]}
    assert by_id[graph.root_id]["feature_type"] == "root"
    for node in graph.nodes.values():
        if node.kind == "feature":
            entry = by_id[node.node_id]
            assert entry["feature_type"] == "transcoder" and entry["activation"] > 0
            assert (entry["layer"], entry["feature"], entry["ctx_idx"]) == (
                node.layer,
                node.index,
                node.position,
            )
            assert entry["influence"] == pytest.approx(
                sum(e.weight for e in graph.out_edges(node.node_id)), rel=1e-4
            )
    target = tmp_path / "graph.json"
    written = write_graph_json(target, graph, prompt_tokens, {"scan": "random"})
    assert json.loads(target.read_text()) == json.loads(json.dumps(written))


def test_figure_draws_every_labelled_node(built, tmp_path):
    graph, prompt_tokens = built
    figure = graph_figure(graph, prompt_tokens)
    texts = {text.get_text() for text in figure.axes[0].texts}
    assert {n.node_id for n in graph.nodes.values() if not n.is_error} <= texts
    assert any(tick.get_text().startswith("0: ") for tick in figure.axes[0].get_yticklabels())
    figure.savefig(tmp_path / "graph.png", dpi=60)
    assert (tmp_path / "graph.png").stat().st_size > 0
    plt.close(figure)
