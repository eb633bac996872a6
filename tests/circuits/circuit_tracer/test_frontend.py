"""Attribution graphs in circuit-tracer's own front end (transcoder_lab.circuits.circuit_tracer):
the graph-file schema, the files and index, the set-up's pins, the server, and the page itself in
headless Chromium (Debian's chromium driven by Playwright) against `python -m
transcoder_lab.circuits.circuit_tracer serve` in a subprocess.

The server and browser tests need the assets `make frontend` installs in .cache/frontend, and the
browser tests Debian's chromium and Playwright (the `chromium` fixture of tests/conftest.py): with
CI=true they must run, elsewhere they skip with the reason. Three graphs are opened in the browser: a
beam-search graph (`frontend_graph`), a pruned full graph (`frontend_full_graph`), and a cross-layer
transcoder's pruned full graph whose features carry ground-truth labels and top contexts
(`case_studies.feature_labels` on random labelled tokens).
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from transcoder_lab.case_studies.feature_labels import heldout_feature_labels
from transcoder_lab.circuits import (
    EXPANDABLE_KINDS,
    AttributionContext,
    PathFilter,
    beam_search,
    build_graph,
    feature_root,
    full_graph,
    graph_to_json,
    logit_diff_root,
    prune_graph,
    root_target,
)
from transcoder_lab.circuits.circuit_tracer.assets import (
    CDN_ROUTES,
    CIRCUIT_TRACER_WHEEL,
    DEFAULT_ASSETS,
    MANIFEST,
    NPM_PACKAGES,
    FrontendError,
    install,
)
from transcoder_lab.circuits.circuit_tracer.graph_files import (
    INDEX,
    cantor_pair,
    examples_file,
    frontend_full_graph,
    frontend_graph,
    transcoder_features,
    write_frontend_graph,
)
from transcoder_lab.circuits.circuit_tracer.screenshots import screenshots
from transcoder_lab.circuits.circuit_tracer.server import make_server
from transcoder_lab.config import GroundTruthRaterConfig

from helpers.circuit_models import SMALL, labelled_tokens, small_clt, small_context, small_model, small_tokens
from helpers.local_server import free_port, start_server, unavailable

# the fields of circuit-tracer 0.5.0's pydantic models (frontend/graph_models.py)
METADATA_FIELDS = {
    "slug",
    "scan",
    "transcoder_list",
    "prompt_tokens",
    "prompt",
    "node_threshold",
    "schema_version",
}
QPARAMS_FIELDS = {"pinnedIds", "supernodes", "linkType", "clickedId", "sg_pos"}
NODE_FIELDS = {
    "node_id", "feature", "layer", "ctx_idx", "feature_type", "token_prob", "is_target_logit", "run_idx",
    "reverse_ctx_idx", "jsNodeId", "clerp", "influence", "activation",
}  # fmt: skip
N_LAYERS, D_VOCAB = SMALL["n_layers"], SMALL["d_vocab"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # much faster for these tiny products, and fair to a shared machine
    yield
    torch.set_num_threads(threads)


def assets() -> Path:
    manifest = DEFAULT_ASSETS / MANIFEST
    if not manifest.is_file():
        unavailable(f"{DEFAULT_ASSETS} has no front end (run `make frontend`)")
    pinned = {name: version for name, (version, _, _) in NPM_PACKAGES.items()}
    if {name: e["version"] for name, e in json.loads(manifest.read_text())["npm"].items()} != pinned:
        unavailable(f"{DEFAULT_ASSETS} was installed with other pins (run `make frontend`)")
    return DEFAULT_ASSETS


@pytest.fixture(scope="module")
def graphs():
    """Two graphs on the small random model: a logit difference (paths may end on embeddings) and
    a layer-2 feature; each as (our graph JSON, circuit-tracer's file)."""
    _, _, tokens, ctx = small_context()
    prompt_tokens = [f"t{int(token)}" for token in tokens]
    meta = {"token_ids": tokens.tolist()}
    logit = logit_diff_root(ctx, 1, 2, 9)
    paths = beam_search(ctx, logit, 3, 8, PathFilter(kinds=EXPANDABLE_KINDS | {"embedding"}))
    ours_logit = graph_to_json(build_graph(ctx, logit, paths), prompt_tokens, meta)
    feature = int(ctx.feature_acts[2][7].argmax())
    root = feature_root(ctx, 2, feature, 7)
    ours_feature = graph_to_json(build_graph(ctx, root, beam_search(ctx, root, 2, 6)), prompt_tokens, meta)
    common = {"scan": "small", "n_layers": N_LAYERS, "d_vocab": D_VOCAB}
    return {
        "logit-diff": (
            ours_logit,
            frontend_graph(ours_logit, slug="logit-diff", root_label="1 - 2", **common),
        ),
        "feature-root": (ours_feature, frontend_graph(ours_feature, slug="feature-root", **common)),
    }


def feature_info(data) -> dict:
    return {
        key: {"top_logits": [f"up{key[1]}"], "bottom_logits": [f"down{key[1]}"]}
        for key in transcoder_features(data)
    }


@pytest.fixture(scope="module")
def full():
    """A full graph of the small model's prompt (circuit-tracer's salient-logit targets), pruned at
    circuit-tracer's default thresholds: (graph, prune result, circuit-tracer's file)."""
    _, _, tokens, ctx = small_context()
    graph = full_graph(ctx)
    pruned = prune_graph(graph, 0.8, 0.98)
    data = frontend_full_graph(
        graph,
        pruned,
        slug="full-graph",
        scan="small",
        prompt_tokens=[f"t{int(t)}" for t in tokens],
        token_ids=tokens.tolist(),
        target_tokens=[f"t{t.token}" for t in graph.targets],
        node_threshold=0.8,
    )
    return graph, pruned, data


@pytest.fixture(scope="module")
def clt_full():
    """A cross-layer transcoder's full graph of the small model's prompt, pruned at circuit-tracer's
    default thresholds, every feature labelled from random ground truth: (graph, circuit-tracer's
    file, its features' file fields)."""
    model, tokens, clt = small_model(), small_tokens(), small_clt()
    graph = full_graph(AttributionContext.from_tokens(model, clt, tokens))
    labels = heldout_feature_labels(model, clt, labelled_tokens(), GroundTruthRaterConfig())
    data = frontend_full_graph(
        graph,
        prune_graph(graph, 0.8, 0.98),
        slug="clt-full",
        scan="small-clt",
        prompt_tokens=[f"t{int(t)}" for t in tokens],
        token_ids=tokens.tolist(),
        target_tokens=[f"t{t.token}" for t in graph.targets],
        feature_labels=labels.clerps(),
    )
    return graph, data, labels.viewer_files(transcoder_features(data), lambda t: f"t{t}")


def test_every_feature_node_carries_the_callers_label(graphs, full, clt_full):
    """With `feature_labels`, a feature node's clerp is its label (the beam-search graph keeps its
    tc<layer>[<index>] in front); without, the beam-search graph's is tc<layer>[<index>] alone and
    the full graph's empty, and every other node's is unchanged."""
    ours, unlabelled = graphs["logit-diff"]
    common = {"scan": "small", "n_layers": N_LAYERS, "d_vocab": D_VOCAB, "root_label": "1 - 2"}
    names = {key: f"label {key[0]}.{key[1]} 0.50" for key in transcoder_features(unlabelled)}
    labelled = frontend_graph(ours, slug="logit-diff", feature_labels=names, **common)
    features = 0
    for plain, node in zip(unlabelled["nodes"], labelled["nodes"], strict=True):
        if node["feature_type"] == "cross layer transcoder":
            layer, index = (int(part) for part in node["node_id"].split("_")[:2])
            assert (
                plain["clerp"] == f"tc{layer}[{index}]"
                and node["clerp"] == f"tc{layer}[{index}] label {layer}.{index} 0.50"
            )
            features += 1
        else:
            assert node == plain
    assert features > 0
    graph, pruned, plain_full = full
    assert all(n["clerp"] == "" for n in plain_full["nodes"] if n["feature_type"] == "cross layer transcoder")
    _, data, _ = clt_full
    feature_nodes = [n for n in data["nodes"] if n["feature_type"] == "cross layer transcoder"]
    assert feature_nodes and all(n["clerp"] for n in feature_nodes)
    assert any(
        n["clerp"].split()[0] in ("citation/semicolon", "citation/year", "citation/*", "prose/semicolon")
        for n in feature_nodes
    )


def test_examples_file_has_the_fields_the_feature_panel_reads():
    examples = [(["a", "b", "c"], [0.0, 1.5, 0.25], 1), (["d"], [0.5], 0)]
    assert examples_file(examples, "Top") == {
        "examples_quantiles": [
            {
                "quantile_name": "Top",
                "examples": [
                    {"tokens": ["a", "b", "c"], "tokens_acts_list": [0.0, 1.5, 0.25], "train_token_ind": 1,
                     "is_repeated_datapoint": False},
                    {"tokens": ["d"], "tokens_acts_list": [0.5], "train_token_ind": 0,
                     "is_repeated_datapoint": False},
                ],
            }
        ],
        "act_min": 0.0,
        "act_max": 1.5,
    }  # fmt: skip
    assert examples_file([], "Top") == {"examples_quantiles": [], "act_min": 0.0, "act_max": 1.0}


@pytest.mark.parametrize("slug", ["logit-diff", "feature-root"])
def test_the_file_has_circuit_tracers_schema_and_encoding(graphs, slug):
    ours, data = graphs[slug]
    assert set(data) == {"metadata", "qParams", "nodes", "links"}
    meta = data["metadata"]
    assert set(meta) == METADATA_FIELDS and set(data["qParams"]) == QPARAMS_FIELDS
    assert meta["slug"] == slug and meta["scan"] == "./data/features/small"  # a local path: no hub
    assert meta["prompt_tokens"] == ours["metadata"]["prompt_tokens"]
    assert meta["prompt"] == "".join(meta["prompt_tokens"]) and meta["schema_version"] == 1
    nodes = {node["node_id"]: node for node in data["nodes"]}
    assert len(nodes) == len(data["nodes"])
    for node in data["nodes"]:
        assert set(node) == NODE_FIELDS
        assert isinstance(node["feature"], int) and isinstance(node["layer"], str)
        assert isinstance(node["ctx_idx"], int) and isinstance(node["jsNodeId"], str)
    # the viewer groups nodes by layer, feature and token: no two may share all three
    assert len({(n["layer"], n["feature"], n["ctx_idx"]) for n in data["nodes"]}) == len(nodes)
    assert all(link["source"] in nodes and link["target"] in nodes for link in data["links"])
    assert all(set(link) == {"source", "target", "weight"} for link in data["links"])

    # the root: the one target "logit", with circuit-tracer's virtual index of a custom target
    (target,) = [node for node in data["nodes"] if node["feature_type"] == "logit"]
    root = next(node for node in ours["nodes"] if node["node_id"] == ours["metadata"]["root"])
    assert target["is_target_logit"] and target["feature"] == D_VOCAB and target["layer"] == str(N_LAYERS + 1)
    assert target["ctx_idx"] == root["ctx_idx"] and target["clerp"].startswith('Root "')
    # every token has its embedding node (the viewer labels only those tokens)
    embeddings = sorted((n for n in data["nodes"] if n["layer"] == "E"), key=lambda n: n["ctx_idx"])
    ids = ours["metadata"]["token_ids"]
    assert [(n["node_id"], n["feature"]) for n in embeddings] == [
        (f"E_{tok}_{t}", t) for t, tok in enumerate(ids)
    ]
    # transcoder features: layer_index_token ids, Cantor-paired feature ids, their activations
    for node in ours["nodes"]:
        if node["feature_type"] == "transcoder":
            layer, index, t = node["layer"], node["feature"], node["ctx_idx"]
            mine = nodes[f"{layer}_{index}_{t}"]
            assert mine["feature_type"] == "cross layer transcoder" and mine["layer"] == str(layer)
            assert (
                mine["feature"] == cantor_pair(layer, index) and mine["activation"] == node["activation"] > 0
            )
    # rows: embeddings, layers 0..n-1 (the root's rest node sits in the last), then the target
    rows = {int(n["layer"]) for n in data["nodes"] if n["layer"] != "E" and n["feature_type"] != "logit"}
    assert min(rows) >= 0 and max(rows) == N_LAYERS - 1

    # weights are ours, in the root's units: merging emb(P) into the embedding nodes loses none
    assert sum(link["weight"] for link in data["links"]) == pytest.approx(
        sum(e["weight"] for e in ours["links"])
    )
    into_root = sum(link["weight"] for link in data["links"] if link["target"] == target["node_id"])
    assert into_root == pytest.approx(root["influence"], rel=1e-4)  # value + offset of the root
    # influence: circuit-tracer's running share, largest |contribution to the root| first
    out = {node_id: 0.0 for node_id in nodes}
    for link in data["links"]:
        out[link["source"]] += link["weight"]
    ranked = sorted(
        (n for n in data["nodes"] if n is not target), key=lambda n: (n["influence"], -abs(out[n["node_id"]]))
    )
    assert target["influence"] is None and ranked[-1]["influence"] == pytest.approx(1.0)
    assert [abs(out[n["node_id"]]) for n in ranked] == sorted(
        (abs(out[n["node_id"]]) for n in ranked), reverse=True
    )


def test_full_graph_file_is_circuit_tracers_pruned_graph(full):
    """circuit-tracer's create_graph_files, restated: the node_mask's nodes that have a kept edge,
    and every embedding and logit; feature ids layer_feature_pos, error ids 0_layer_pos, embedding
    ids E_token_pos, logit ids (n_layers + 1)_token_(last pos); links are the edge_mask's edges
    among those nodes, weighted by the adjacency; influence is the cumulative influence share."""
    graph, pruned, data = full
    assert set(data) == {"metadata", "qParams", "nodes", "links"}
    meta = data["metadata"]
    assert set(meta) == METADATA_FIELDS and set(data["qParams"]) == QPARAMS_FIELDS
    assert meta["node_threshold"] == 0.8 and meta["scan"] == "./data/features/small"
    assert meta["prompt_tokens"] == [f"t{t}" for t in graph_tokens(data)]
    for node in data["nodes"]:
        assert set(node) == NODE_FIELDS
    nodes = {node["node_id"]: node for node in data["nodes"]}
    assert len(nodes) == len(data["nodes"])
    n_feat, n_pos, n_layers = graph.n_features, graph.n_pos, graph.n_layers
    tokens = graph_tokens(data)
    kept = pruned.node_mask
    edges = pruned.edge_mask & kept[:, None] & kept[None, :]
    always = torch.zeros_like(kept)
    always[graph.embedding_slice.start :] = True
    shown = kept & (edges.any(dim=0) | edges.any(dim=1) | always)
    feature_ids = {f"{layer}_{f}_{pos}" for layer, pos, f in graph.active_features[shown[:n_feat]].tolist()}

    def node_id(i: int) -> str:
        if i < n_feat:
            layer, pos, feature = graph.active_features[i].tolist()
            return f"{layer}_{feature}_{pos}"
        if i < n_feat + n_layers * n_pos:  # err_: where 0_<layer>_<pos> is a shown layer-0 feature's id
            layer, pos = divmod(i - n_feat, n_pos)
            return f"{'err' if f'0_{layer}_{pos}' in feature_ids else '0'}_{layer}_{pos}"
        if i < n_feat + (n_layers + 1) * n_pos:
            pos = i - n_feat - n_layers * n_pos
            return f"E_{tokens[pos]}_{pos}"
        return f"{n_layers + 1}_{graph.targets[i - graph.n_nodes + graph.n_targets].token}_{n_pos - 1}"

    assert [n["node_id"] for n in data["nodes"]] == [node_id(i) for i in shown.nonzero()[:, 0].tolist()]
    assert 0 < (kept[:n_feat]).sum() < n_feat  # pruning kept some features, not all
    for i in shown.nonzero()[:, 0].tolist():
        node = nodes[node_id(i)]
        if i >= graph.target_slice.start:
            k = i - graph.target_slice.start
            target = graph.targets[k]
            assert node["feature_type"] == "logit" and node["layer"] == str(n_layers + 1)
            assert node["is_target_logit"] == (k == 0) and node["influence"] is None
            assert node["token_prob"] == target.weight and node["feature"] == target.token
            assert node["clerp"] == f'Output "t{target.token}" (p={target.weight:.3f})'
            continue
        assert node["influence"] == pytest.approx(float(pruned.cumulative_scores[i]))
        if i < n_feat:
            layer, pos, feature = graph.active_features[i].tolist()
            assert node["feature_type"] == "cross layer transcoder" and node["ctx_idx"] == pos
            assert (
                node["feature"] == cantor_pair(layer, feature) and node["jsNodeId"] == f"{layer}_{feature}-0"
            )
            assert node["activation"] == pytest.approx(float(graph.activations[i])) and node["activation"] > 0
        elif i < graph.embedding_slice.start:
            layer, pos = divmod(i - n_feat, n_pos)
            assert node["feature_type"] == "mlp reconstruction error" and node["feature"] == -1
            assert (node["layer"], node["ctx_idx"]) == (str(layer), pos)
        else:
            assert node["feature_type"] == "embedding" and node["layer"] == "E" and node["activation"] is None
    expected = {(node_id(s), node_id(t)): float(graph.adjacency[t, s]) for t, s in edges.nonzero().tolist()}
    assert {(link["source"], link["target"]): link["weight"] for link in data["links"]} == expected
    assert len(data["links"]) == len(expected) > 0
    assert any(n["node_id"].startswith("err_") for n in data["nodes"])  # the fixture has a clash


def graph_tokens(data) -> list[int]:
    """The token ids of a full graph's file, read off its embedding nodes (E_<token>_<pos>)."""
    embeddings = sorted((n for n in data["nodes"] if n["layer"] == "E"), key=lambda n: n["ctx_idx"])
    return [int(n["node_id"].split("_")[1]) for n in embeddings]


def test_full_graph_refuses_mismatched_tokens_and_unnamed_custom_targets(full):
    graph, pruned, data = full
    tokens = data["metadata"]["prompt_tokens"]
    with pytest.raises(FrontendError, match="token ids"):
        frontend_full_graph(graph, pruned, slug="x", scan="small", prompt_tokens=tokens, token_ids=[1])
    _, _, _, ctx = small_context()
    custom = full_graph(ctx, [root_target(logit_diff_root(ctx, 1, 2, -1))])
    kept = prune_graph(custom)
    ids = graph_tokens(data)
    with pytest.raises(FrontendError, match="d_vocab"):
        frontend_full_graph(custom, kept, slug="x", scan="small", prompt_tokens=tokens, token_ids=ids)
    (target,) = [
        n
        for n in frontend_full_graph(
            custom, kept, slug="x", scan="small", prompt_tokens=tokens, token_ids=ids, d_vocab=D_VOCAB
        )["nodes"]
        if n["feature_type"] == "logit"
    ]
    assert target["feature"] == D_VOCAB and target["clerp"].startswith(f'Output "{custom.targets[0].label}"')


# Opt-in: circuit-tracer's own create_graph_files code (its node, edge and file builders) on our
# graph and prune masks, in circuit-tracer's Python (see test_export.py).
CIRCUIT_TRACER_PYTHON = os.environ.get("TRANSCODER_LAB_CIRCUIT_TRACER_PYTHON")
CIRCUIT_TRACER_FILES = """
import json, sys, torch
from safetensors.torch import load_file
from transformer_lens import HookedTransformerConfig
from circuit_tracer.attribution.targets import LogitTarget
from circuit_tracer.graph import Graph
from circuit_tracer.utils.create_graph_files import build_model, create_nodes, create_used_nodes_and_edges
folder = sys.argv[1]
t, meta = load_file(f"{folder}/graph.safetensors"), json.load(open(f"{folder}/meta.json"))
class Tokenizer:  # the prompt's tokens are named t<id>
    def decode(self, ids):
        return f"t{int(ids)}"
cfg = HookedTransformerConfig(**meta["cfg"])
graph = Graph(meta["prompt"], t["tokens"], t["active_features"], t["adjacency"], cfg,
              torch.arange(len(t["active_features"])), t["activations"],
              [LogitTarget(s, i) for s, i in meta["targets"]], t["probabilities"], scan=meta["scan"])
nodes = create_nodes(graph, t["node_mask"], Tokenizer(), t["cumulative"])
used_nodes, used_edges = create_used_nodes_and_edges(graph, nodes, t["edge_mask"])
model = build_model(graph, used_nodes, used_edges, meta["slug"], meta["scan"], meta["node_threshold"],
                    Tokenizer())
open(f"{folder}/theirs.json", "w").write(model.model_dump_json())
"""


@pytest.mark.skipif(CIRCUIT_TRACER_PYTHON is None, reason="set TRANSCODER_LAB_CIRCUIT_TRACER_PYTHON")
def test_full_graph_file_equals_circuit_tracers(full, tmp_path):
    from safetensors.torch import save_file

    graph, pruned, data = full
    tensors = {
        "tokens": torch.tensor(graph_tokens(data)),
        "active_features": graph.active_features,
        "adjacency": graph.adjacency,
        "activations": graph.activations,
        "probabilities": torch.tensor([t.weight for t in graph.targets], dtype=torch.float64),
        "node_mask": pruned.node_mask,
        "edge_mask": pruned.edge_mask,
        "cumulative": pruned.cumulative_scores,
    }
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp_path / "graph.safetensors")
    cfg = {
        "n_layers": N_LAYERS,
        "d_model": SMALL["d_model"],
        "n_ctx": SMALL["n_ctx"],
        "d_head": SMALL["d_head"],
        "n_heads": SMALL["n_heads"],
        "d_mlp": SMALL["d_mlp"],
        "d_vocab": D_VOCAB,
        "act_fn": "gelu_new",
    }
    meta = {
        "cfg": cfg,
        "prompt": data["metadata"]["prompt"],
        "scan": data["metadata"]["scan"],
        "slug": "full-graph",
        "node_threshold": 0.8,
        "targets": [[f"t{t.token}", t.token] for t in graph.targets],
    }
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    run = subprocess.run(
        [CIRCUIT_TRACER_PYTHON, "-c", CIRCUIT_TRACER_FILES, str(tmp_path)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    # the same file, but for our err_<layer>_<pos> ids where circuit-tracer's 0_<layer>_<pos> clash
    ours = json.loads(json.dumps(data).replace('"err_', '"0_'))
    assert json.loads((tmp_path / "theirs.json").read_text()) == ours


def test_files_and_index(graphs, tmp_path):
    folder = tmp_path / "graphs"
    for _, data in graphs.values():
        write_frontend_graph(folder, data, feature_info(data))
    index = json.loads((folder / INDEX).read_text())
    assert [g["slug"] for g in index["graphs"]] == ["logit-diff", "feature-root"]
    assert set(index["graphs"][0]) == METADATA_FIELDS
    _, data = graphs["logit-diff"]
    assert json.loads((folder / "logit-diff.json").read_text()) == json.loads(json.dumps(data))
    for layer, index_ in transcoder_features(data):
        feature = json.loads(
            (folder / "features" / "small" / f"{cantor_pair(layer, index_)}.json").read_text()
        )
        assert feature == {
            "examples_quantiles": [],
            "top_logits": [f"up{index_}"],
            "bottom_logits": [f"down{index_}"],
        }
    write_frontend_graph(folder, data)  # rewriting a slug replaces its entry
    assert [g["slug"] for g in json.loads((folder / INDEX).read_text())["graphs"]] == [
        "feature-root",
        "logit-diff",
    ]
    with pytest.raises(FrontendError, match="slug"):
        write_frontend_graph(folder, {**data, "metadata": {**data["metadata"], "slug": "../escape"}})
    ours, _ = graphs["logit-diff"]
    with pytest.raises(FrontendError, match="token ids"):
        frontend_graph(ours, slug="x", scan="small", n_layers=N_LAYERS, d_vocab=D_VOCAB, token_ids=[1, 2])


def test_install_refuses_downloads_that_do_not_match_the_pins(tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with pytest.raises(FrontendError, match="missing"):
        install(downloads, tmp_path / "assets")
    (downloads / CIRCUIT_TRACER_WHEEL).write_bytes(b"not the wheel")
    with pytest.raises(FrontendError, match="SHA-256"):
        install(downloads, tmp_path / "assets")
    assert not (tmp_path / "assets").exists()  # nothing half-installed
    assert not list(tmp_path.glob(".assets.*"))  # no staging folder left behind


@pytest.fixture()
def written(graphs, full, tmp_path):
    """A graph folder: the two beam-search graphs, then the full graph."""
    folder = tmp_path / "graphs"
    for data in [data for _, data in graphs.values()] + [full[2]]:
        write_frontend_graph(folder, data, feature_info(data))
    return folder


def test_server_routes(written):
    server = make_server(written, 0, assets())
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def request(method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request(method, path, body, {"Host": f"127.0.0.1:{port}", **(headers or {})})
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, response.getheader("Content-Type"), data

    try:
        assert server.server_address[0] == "127.0.0.1"
        status, kind, page = request("GET", "/")
        assert status == 200 and kind.startswith("text/html")
        assert all(url.encode() not in page for url in CDN_ROUTES) and b"/vendor/d3.min.js" in page
        for name in set(CDN_ROUTES.values()):
            status, kind, _ = request("GET", f"/vendor/{name}")
            assert status == 200 and kind.startswith("text/javascript"), name
        assert json.loads(request("GET", f"/data/{INDEX}")[2])["graphs"][0]["slug"] == "logit-diff"
        assert request("GET", "/graph_data/logit-diff.json")[0] == 200
        for escape in (
            "/data/../logit-diff.json",
            "/data/%2e%2e/%2e%2e/etc/passwd",
            "/vendor/../manifest.json",
        ):
            assert request("GET", escape)[0] == 404, escape
        assert request("GET", "/", headers={"Host": "evil.example:80"})[0] == 421
        # the viewer's Save button: the posted qParams are stored in the graph file
        q_params = {"pinnedIds": "a,b", "clickedId": "x"}
        body = json.dumps({"qParams": q_params}).encode()
        status, _, _ = request("POST", "/save_graph/logit-diff", body, {"Content-Type": "application/json"})
        assert status == 200 and json.loads((written / "logit-diff.json").read_text())["qParams"] == q_params
        assert request("POST", "/save_graph/nope", body, {"Content-Type": "application/json"})[0] == 404
        assert request("POST", "/save_graph/logit-diff", body, {"Content-Type": "text/plain"})[0] == 415
    finally:
        server.shutdown()
        server.server_close()


def start_frontend(folder: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "transcoder_lab.circuits.circuit_tracer", "serve", str(folder),
               "--port", str(port)]  # fmt: skip
    # 90 s: the package imports torch and TransformerLens first
    return start_server(command, f"http://127.0.0.1:{port}/data/{INDEX}", timeout_s=90)


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    if process.stdout:
        process.stdout.close()


PAINTED = """() => Array.from(document.querySelectorAll('.link-graph canvas')).reduce((sum, canvas) => {
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data
    let painted = 0
    for (let i = 3; i < pixels.length; i += 4) painted += pixels[i] > 0
    return sum + painted
}, 0)"""


class WatchedPage:
    """A new page of `browser` that records every request, failed request and page error."""

    def __init__(self, browser) -> None:
        self.requests, self.failed, self.errors = [], [], []
        self.page = page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.url}: {r.status}"))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))

    def check(self, origin: str) -> None:
        """Requests went to `origin` only, and none failed; the page logged no error."""
        self.page.close()
        assert self.requests and all(url.startswith(origin) for url in self.requests), sorted(
            set(self.requests)
        )
        assert not self.failed and not self.errors, (self.failed, self.errors)


def click_node(page, node_id: str) -> None:
    """Click the graph's node `node_id` (the viewer's text.node elements carry it as datum().nodeId)."""
    index = page.evaluate(
        "id => Array.from(document.querySelectorAll('.link-graph text.node'))"
        ".findIndex(e => d3.select(e).datum().nodeId === id)",
        node_id,
    )
    assert index >= 0, node_id
    box = page.locator(".link-graph text.node").nth(index).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_graph_in_chromium(graphs, written, tmp_path, chromium):
    from playwright.sync_api import expect

    assets()
    ours, data = graphs["logit-diff"]
    port = free_port()
    origin = f"http://127.0.0.1:{port}/"
    server = start_frontend(written, port)
    try:
        watched = WatchedPage(chromium)
        page = watched.page
        page.goto(origin)

        # every node, one row per layer plus embeddings and target, every token's label
        nodes = page.locator(".link-graph text.node")
        expect(nodes).to_have_count(len(data["nodes"]))
        expect(page.locator(".link-graph .y .tick")).to_have_count(N_LAYERS + 2)
        tokens = page.locator(".link-graph g.prompt-token text")
        expect(tokens).to_have_text(data["metadata"]["prompt_tokens"])
        expect(page.locator(".link-graph")).to_contain_text("1 - 2")  # the target's label
        assert page.evaluate(PAINTED) == 0  # links are drawn for the clicked node only

        # click a transcoder feature with inputs and outputs: its links and details appear
        sources, targets = {}, {}
        for link in data["links"]:
            sources.setdefault(link["target"], []).append(link)
            targets.setdefault(link["source"], []).append(link)
        both = sources.keys() & targets.keys()
        clicked = next(
            n for n in data["nodes"] if n["feature_type"] == "cross layer transcoder" and n["node_id"] in both
        )
        click_node(page, clicked["node_id"])
        layer, feature = clicked["node_id"].split("_")[:2]
        connections = page.locator(".node-connections")
        expect(connections.locator(".section-title").first).to_contain_text(f"tc{layer}[{feature}]")
        n_in = sum(link["weight"] != 0 for link in sources[clicked["node_id"]])
        n_out = sum(link["weight"] != 0 for link in targets[clicked["node_id"]])
        expect(connections.locator(".features.input .feature-row")).to_have_count(n_in)
        expect(connections.locator(".features.output .feature-row")).to_have_count(n_out)
        detail = page.locator(".feature-detail")
        expect(detail).to_contain_text(f"L{layer}/{feature}")  # the viewer unpairs the feature id
        expect(detail).to_contain_text(f"up{feature}")  # its feature file's token predictions
        assert page.evaluate(PAINTED) > 0  # the clicked node's links, on the canvas
        page.screenshot(path=str(tmp_path / "graph.png"))

        # the feature-root graph: the same rows, its target labelled by its node id
        page.goto(origin + "?slug=feature-root")
        _, feature_data = graphs["feature-root"]
        expect(nodes).to_have_count(len(feature_data["nodes"]))
        expect(page.locator(".link-graph .y .tick")).to_have_count(N_LAYERS + 2)
        expect(tokens).to_have_text(feature_data["metadata"]["prompt_tokens"])
        page.screenshot(path=str(tmp_path / "feature_graph.png"))
        watched.check(origin)
    finally:
        stop(server)
    assert (tmp_path / "graph.png").stat().st_size > 0


def test_full_graph_in_chromium(full, written, tmp_path, chromium):
    """The pruned full graph: the viewer shows the nodes at or under its node_threshold's
    cumulative influence (and every embedding and logit), one row per layer plus embeddings and
    logits, every token; clicking a feature lists its links to shown nodes."""
    from playwright.sync_api import expect

    assets()
    graph, _, data = full
    threshold = data["metadata"]["node_threshold"]
    shown = [
        n for n in data["nodes"] if n["feature_type"] in ("embedding", "logit") or n["influence"] <= threshold
    ]
    ids = {n["node_id"] for n in shown}
    links = [link for link in data["links"] if link["source"] in ids and link["target"] in ids]
    kinds = {n["feature_type"] for n in shown}
    assert {"cross layer transcoder", "mlp reconstruction error", "embedding", "logit"} <= kinds
    port = free_port()
    origin = f"http://127.0.0.1:{port}/"
    server = start_frontend(written, port)
    try:
        watched = WatchedPage(chromium)
        page = watched.page
        page.goto(origin + "?slug=full-graph")
        nodes = page.locator(".link-graph text.node")
        expect(nodes).to_have_count(len(shown))
        rows = {n["layer"] for n in shown if n["feature_type"] != "logit"}
        expect(page.locator(".link-graph .y .tick")).to_have_count(len(rows) + 1)  # + the logits' row
        expect(page.locator(".link-graph g.prompt-token text")).to_have_text(
            data["metadata"]["prompt_tokens"]
        )
        assert page.evaluate(PAINTED) == 0

        inputs = {n: [lk for lk in links if lk["target"] == n and lk["weight"] != 0] for n in ids}
        outputs = {n: [lk for lk in links if lk["source"] == n and lk["weight"] != 0] for n in ids}
        clicked = next(
            n
            for n in shown
            if n["feature_type"] == "cross layer transcoder"
            and inputs[n["node_id"]]
            and outputs[n["node_id"]]
        )
        click_node(page, clicked["node_id"])
        layer, feature = clicked["node_id"].split("_")[:2]
        connections = page.locator(".node-connections")
        expect(connections.locator(".features.input .feature-row")).to_have_count(
            len(inputs[clicked["node_id"]])
        )
        expect(connections.locator(".features.output .feature-row")).to_have_count(
            len(outputs[clicked["node_id"]])
        )
        expect(page.locator(".feature-detail")).to_contain_text(f"L{layer}/{feature}")
        assert page.evaluate(PAINTED) > 0
        page.screenshot(path=str(tmp_path / "full_graph.png"))

        # an error node and a logit: the viewer labels them from the file
        error = next(
            n for n in shown if n["feature_type"] == "mlp reconstruction error" and outputs[n["node_id"]]
        )
        click_node(page, error["node_id"])
        expect(connections.locator(".section-title").first).to_contain_text("Err: mlp")
        expect(page.locator(".link-graph")).to_contain_text(f"t{graph.targets[0].token}")
        watched.check(origin)
    finally:
        stop(server)
    assert (tmp_path / "full_graph.png").stat().st_size > 0


def test_labelled_crosslayer_graph_in_chromium(clt_full, tmp_path, chromium):
    """A CLT's pruned full graph with its features' labels and top contexts: the viewer draws it,
    and a clicked feature shows its label (in its connections' title and its detail), its inputs'
    and outputs' labels, and its top held-out contexts with their tokens."""
    from playwright.sync_api import expect

    assets()
    graph, data, files = clt_full
    folder = tmp_path / "graphs"
    write_frontend_graph(folder, data, files)
    threshold = data["metadata"]["node_threshold"]
    shown = [
        n for n in data["nodes"] if n["feature_type"] in ("embedding", "logit") or n["influence"] <= threshold
    ]
    ids = {n["node_id"] for n in shown}
    by_id = {n["node_id"]: n for n in shown}
    links = [lk for lk in data["links"] if lk["source"] in ids and lk["target"] in ids and lk["weight"] != 0]
    inputs = {n: [lk["source"] for lk in links if lk["target"] == n] for n in ids}
    outputs = {n: [lk["target"] for lk in links if lk["source"] == n] for n in ids}
    port = free_port()
    origin = f"http://127.0.0.1:{port}/"
    server = start_frontend(folder, port)
    try:
        watched = WatchedPage(chromium)
        page = watched.page
        page.goto(origin + "?slug=clt-full")
        expect(page.locator(".link-graph text.node")).to_have_count(len(shown))
        expect(page.locator(".link-graph g.prompt-token text")).to_have_text(
            data["metadata"]["prompt_tokens"]
        )

        def labelled(node_id: str) -> bool:
            node = by_id[node_id]
            return node["feature_type"] == "cross layer transcoder" and node["clerp"] not in (
                "no label",
                "never active",
            )

        clicked = next(
            n for n in shown if labelled(n["node_id"]) and inputs[n["node_id"]] and outputs[n["node_id"]]
            and files[tuple(int(p) for p in n["node_id"].split("_")[:2])]["examples_quantiles"]
        )  # fmt: skip
        click_node(page, clicked["node_id"])
        connections = page.locator(".node-connections")
        expect(connections.locator(".section-title").first).to_contain_text(clicked["clerp"])
        detail = page.locator(".feature-detail")
        expect(detail.locator(".pp-clerp")).to_have_text(clicked["clerp"])
        # the labels of its inputs and outputs, in their rows
        rows = connections.locator(".feature-row .label")
        for neighbour in inputs[clicked["node_id"]] + outputs[clicked["node_id"]]:
            if by_id[neighbour]["feature_type"] == "cross layer transcoder":
                expect(rows.filter(has_text=by_id[neighbour]["clerp"]).first).to_be_visible()
        # its top held-out contexts from its feature file, each with its tokens
        layer, feature = (int(p) for p in clicked["node_id"].split("_")[:2])
        (group,) = files[(layer, feature)]["examples_quantiles"]
        examples = detail.locator(".feature-example-list .ctx-container")
        expect(examples).to_have_count(len(group["examples"]))
        expect(detail.locator(".feature-example-list .quantile-title")).to_contain_text(clicked["clerp"])
        top = group["examples"][0]
        expect(examples.first).to_contain_text(top["tokens"][top["train_token_ind"]])
        page.screenshot(path=str(tmp_path / "clt_graph.png"))
        watched.check(origin)
    finally:
        stop(server)
    assert (tmp_path / "clt_graph.png").stat().st_size > 0


def test_screenshot_captures_the_drawn_graph(written, tmp_path, chromium):
    from PIL import Image

    assets()
    (out,) = screenshots(written, ["logit-diff"], tmp_path / "shots", size=(1200, 800), browser=chromium)
    image = Image.open(out)
    assert image.format == "PNG" and image.width == 1200 and image.height >= 800
    grey = torch.tensor(list(image.convert("L").getdata()), dtype=torch.float32)
    assert grey.std() > 10  # nodes, labels and axes drawn, not a blank page
    assert [p.name for p in out.parent.iterdir()] == ["logit-diff.png"]  # no staging file left


def test_screenshot_without_a_browser_says_how_to_get_one(written, tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMIUM", str(tmp_path / "no-such-browser"))
    with pytest.raises(FrontendError, match="make browser"):
        screenshots(written, ["logit-diff"], tmp_path)
