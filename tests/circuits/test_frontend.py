"""Attribution graphs in circuit-tracer's own front end (transcoder_lab.circuits.frontend): the
graph-file schema, the files and index, the set-up's pins, the server, and the page itself in
headless Chromium (Debian's chromium driven by Playwright) against `python -m
transcoder_lab.circuits.frontend serve` in a subprocess.

The server and browser tests need the assets `make frontend` installs in .cache/frontend, and the
browser test Debian's chromium and Playwright: with CI=true they must run, elsewhere they skip
with the reason.
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
from local_server import free_port, start_server
from models_for_tests import SMALL, small_context

from transcoder_lab.circuits import (
    EXPANDABLE_KINDS,
    PathFilter,
    beam_search,
    build_graph,
    feature_root,
    graph_to_json,
    logit_diff_root,
)
from transcoder_lab.circuits.frontend import (
    CDN_ROUTES,
    CIRCUIT_TRACER_WHEEL,
    DEFAULT_ASSETS,
    INDEX,
    MANIFEST,
    NPM_PACKAGES,
    FrontendError,
    cantor_pair,
    frontend_graph,
    install,
    make_server,
    transcoder_features,
    write_frontend_graph,
)

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
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"CI=true requires this test to run, but {reason}")
    pytest.skip(reason)


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
def written(graphs, tmp_path):
    folder = tmp_path / "graphs"
    for _, data in graphs.values():
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
    command = [sys.executable, "-m", "transcoder_lab.circuits.frontend", "serve", str(folder),
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


def test_graph_in_chromium(graphs, written, tmp_path):
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (run `make browser`, i.e. apt-get install chromium)")
    assets()
    ours, data = graphs["logit-diff"]
    port = free_port()
    origin = f"http://127.0.0.1:{port}/"
    requests, failed, errors = [], [], []
    server = start_frontend(written, port)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: requests.append(r.url))
            page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
            page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.url}: {r.status}"))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
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
                n
                for n in data["nodes"]
                if n["feature_type"] == "cross layer transcoder" and n["node_id"] in both
            )
            index = page.evaluate(
                "id => Array.from(document.querySelectorAll('.link-graph text.node'))"
                ".findIndex(e => d3.select(e).datum().nodeId === id)",
                clicked["node_id"],
            )
            box = nodes.nth(index).bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
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
            browser.close()
    finally:
        stop(server)
    assert (tmp_path / "graph.png").stat().st_size > 0
    assert requests and all(url.startswith(origin) for url in requests), sorted(set(requests))
    assert not failed and not errors, (failed, errors)
