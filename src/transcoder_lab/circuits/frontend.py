"""Attribution graphs in circuit-tracer's own front end, offline (circuit-tracer 0.5.0).

circuit-tracer ships the attribution-graph viewer of "Circuit Tracing" as static HTML/JS. This module
writes our beam-search graphs and our pruned full graphs in the graph-file schema that viewer reads,
and serves the viewer on 127.0.0.1 with nothing fetched from the network.
circuit-tracer itself is never imported (it cannot be installed beside our pinned stack): its
Python source was read for the schema, and only its static files are reused, as downloaded.

1. Set-up (`fetch`, run by `make frontend`): `pip download circuit-tracer==0.5.0 --no-deps` (the
   wheel) and `npm pack` of the JavaScript libraries its index.html loads from CDNs (d3, d3-jetpack
   with the d3-collection it needs, dagre, pako, at the pinned versions of `NPM_PACKAGES`) into a
   temporary folder; `install` checks the wheel's SHA-256 and each tarball's npm integrity (sha512)
   against the pins, copies the wheel's `circuit_tracer/frontend/assets/` and one file of each
   tarball (jetpack's wrapped for the page by `_jetpack_script`) into a staging folder, and renames
   it into place (`.cache/frontend/`, git-ignored): complete or absent, never half there.

2. Conversion (`frontend_graph`): our graph JSON (`render.graph_to_json`) becomes circuit-tracer's
   graph file: `metadata` (slug, scan, transcoder_list, prompt_tokens, prompt, node_threshold,
   schema_version), `qParams`, `nodes` (node_id, feature, layer, ctx_idx, feature_type, token_prob,
   is_target_logit, run_idx, reverse_ctx_idx, jsNodeId, clerp, influence, activation) and `links`
   (source, target, weight: source is the upstream node, as in ours). The viewer draws one row per
   layer (the embeddings at the bottom, "E"; the target row on top) and one column per token, so:
   - transcoder feature i of layer l at token t: "cross layer transcoder", node_id `l_i_t`,
     feature = Cantor pairing of (l, i) (the viewer unpairs it into the "L l/i" label);
   - the embedding of every prompt token t (all of them, even unconnected: the viewer writes a
     token's label under the x axis only where that token has an embedding node): layer "E",
     node_id `E_<token id>_t`, feature = t. Our `emb@t` leaves and `emb(P)` error nodes (the
     embedding at P's token, feeding P directly) are edges out of that node;
   - the root (a feature, a logit difference, any direction): the target node, a "logit" with a
     virtual vocabulary index d_vocab (circuit-tracer's own encoding of a custom target, such as a
     logit difference), layer n_layers + 1 (the viewer moves the logit row to one above the deepest
     other node), clerp `Root "<label>" = <value> (p=...)` (the viewer parses the quoted label and p);
   - attention head h of layer l reading token s, skip terms, transcoder errors and MLPs without a
     transcoder: row l at their token; errors `rest(P)`, `err(P)`, `bias(P)` (what P's kept inputs
     leave out): P's row and token (the root's: the last layer's row, just under the target);
     every one of these gets a distinct negative `feature`, so the viewer's per-feature grouping
     (by layer, feature and token) never merges two nodes;
   - influence: circuit-tracer's cumulative influence: nodes sorted by |their contribution to the
     root| (the sum of their out-edges, in the root's units), the running share of the total; the
     root has none. node_threshold is null, so the viewer prunes nothing (the beam already did).
   Rows: every graph whose root has inputs shows n_layers + 2 rows (embeddings, layers 0..n-1, the
   target), since the root's `rest` node sits in the last layer's row.

2b. Full graphs (`frontend_full_graph`): a `full_graph.full_graph` pruned by `prune_graph` becomes
   the file circuit-tracer's `create_graph_files` writes for its own pruned graph (its
   utils/create_graph_files.py and frontend/graph_models.py were read): the node mask's nodes in
   graph order, then only those with a kept edge and every embedding and logit; feature
   `<layer>_<feature>_<pos>` (Cantor-paired feature, its activation), error `0_<layer>_<pos>`
   ("mlp reconstruction error", feature -1), embedding `E_<token>_<pos>`, logit
   `<n_layers + 1>_<token>_<last pos>` (`Output "<token>" (p=...)`, the first one the target logit;
   a non-logit target gets the virtual index d_vocab + its position); influence the cumulative
   influence share of `prune_graph` (none on logits); links the edge mask's edges among those
   nodes, weighted by the adjacency; metadata.node_threshold the pruning's (the viewer hides the
   nodes above it). One deviation: circuit-tracer's error id `0_<layer>_<pos>` is also the id of
   feature <layer> of layer 0 at <pos>; where both are in the file the error is `err_<layer>_<pos>`
   (the viewer keys nodes by id). Checked against circuit-tracer's own code (opt-in test).

3. Writing (`write_frontend_graph`): `<folder>/<slug>.json`, a feature file per transcoder feature
   (`<folder>/features/<scan>/<feature>.json`: the viewer loads it when a feature is clicked, from
   the scan `./data/features/<scan>`, a local path, so it never asks the hub; it holds the
   feature's top and bottom output tokens when given) and the index `<folder>/graph-metadata.json`
   (`{"graphs": [metadata, ...]}`, one entry per slug, replaced when rewritten), each atomically.

4. Serving (`make_server`, `python -m transcoder_lab.circuits.frontend serve <folder>`), on
   127.0.0.1 only: `/` and the viewer's files from the installed assets, HTML with each CDN address
   of `CDN_ROUTES` rewritten to `/vendor/<file>` (the npm copies; the live-reload client and the
   .npy reader, which graphs never use, are empty scripts); `/data/...` and `/graph_data/...` from
   the graph folder, as circuit-tracer's local server does; `POST /save_graph/<slug>` (the viewer's
   Save button) stores the posted qParams in the graph file. Paths never leave their folder.

5. Screenshots (`screenshots`, `python -m transcoder_lab.circuits.frontend screenshot <folder>
   <out dir> <slug>...`; the `graph_screenshots` stage): the server of step 4 on a free port, in a
   thread; headless Chromium (Debian's, `make browser`, or $CHROMIUM) driven by Playwright loads
   `/?slug=<slug>`, and once the graph's nodes and token labels are drawn the target logit is
   clicked (the viewer then draws its input links and lists them) and the page is captured.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import mimetypes
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import zipfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from transcoder_lab import io
from transcoder_lab.config import REPO_ROOT

if TYPE_CHECKING:
    from transcoder_lab.circuits.full_graph import FullGraph, PruneResult

# -- pins -------------------------------------------------------------------------------------------

CIRCUIT_TRACER = "circuit-tracer==0.5.0"
CIRCUIT_TRACER_WHEEL = "circuit_tracer-0.5.0-py3-none-any.whl"
CIRCUIT_TRACER_SHA256 = "e457e6558e1c9eb0d3d7c54ce2298492b4e919a4f7f2b8b7e217427284fdc802"
WHEEL_ASSETS = "circuit_tracer/frontend/assets/"
# name -> (version, file inside the tarball's package/ folder, npm integrity of the tarball)
NPM_PACKAGES: dict[str, tuple[str, str, str]] = {
    "d3": ("7.9.0", "dist/d3.min.js",
           "sha512-e1U46jVP+w7Iut8Jt8ri1YsPOvFpg46k+K8TpCb0P+zjCkjkPnV7WzfDJzMHy1LnA+wj5pLT1wjO901gLXeEhA=="),
    "d3-jetpack": ("2.3.0", "build/d3-jetpack.cjs",
                   "sha512-P6cgpLIKudalA5sohATXeZ78fHWcmXbAyPXYNIvxi8lc6qjRaNMggx1O/tcdIBTyTM26pTMpHPJI0N1FhPIzTg=="),
    # d3-jetpack's nestBy uses d3-collection's nest, which d3 v7 no longer has
    "d3-collection": ("1.0.7", "dist/d3-collection.min.js",
                      "sha512-ii0/r5f4sjKNTfh84Di+DpztYwqKhEyUlKoPrzUFfeSkWxjW49xU2QzO9qrPrNkpdI0XJkfzvmTu8V2Zylln6A=="),
    "dagre": ("0.8.5", "dist/dagre.min.js",
              "sha512-/aTqmnRta7x7MCCpExk7HQL2O4owCT2h8NT//9I1OQ9vt29Pa0BzSAkR5lwFUcQ7491yVi/3CXU9jQ5o0Mn2Sw=="),
    "pako": ("2.1.0", "dist/pako.min.js",
             "sha512-w+eufiZ1WuJYgPXbV/PO3NCMEc3xqylkKHzp8bxp1uW4qaSNQUkwmLLEc3kKsfz8lpV1F8Ht3U1Cm+9Srog2ug=="),
}  # fmt: skip
_LIB = "https://transformer-circuits.pub/2025/attribution-graphs/static_js/lib/"
# every script address the viewer's HTML loads -> the file under /vendor/ that answers it
CDN_ROUTES: dict[str, str] = {
    _LIB + "hotserver-client-ws.js": "hotserver-client-ws.js",  # stub: a dev server's live reload
    _LIB + "d3.js": "d3.min.js",
    _LIB + "jetpack_2024-07-20.js": "d3-jetpack.js",  # made by `_jetpack_script`
    _LIB + "npy_v0.js": "npy_v0.js",  # stub: reads .npy files, which graph pages never load
    "https://unpkg.com/dagre@0.8.5/dist/dagre.min.js": "dagre.min.js",
    "https://unpkg.com/pako@2.1.0/dist/pako.min.js": "pako.min.js",
}
STUBS = {
    "hotserver-client-ws.js": "/* offline: no live-reload server to connect to */\n",
    "npy_v0.js": "/* offline: attribution graph pages never read .npy files */\n",
}
DEFAULT_ASSETS = REPO_ROOT / ".cache" / "frontend"
MANIFEST = "manifest.json"  # written last into an installed folder; the Makefile's target
HOST = "127.0.0.1"
DEFAULT_PORT = 8032  # circuit-tracer's default
MAX_BODY_BYTES = 1024 * 1024
INDEX = "graph-metadata.json"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class FrontendError(Exception):
    """A download that does not match its pin, an asset folder that is missing, a bad name."""


# -- 1. set-up --------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _npm_integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch(dest: str | Path = DEFAULT_ASSETS) -> Path:
    """Download the wheel (pip) and the npm tarballs (npm pack) into a temporary folder, then
    `install` them into `dest` (module docstring, step 1)."""
    with tempfile.TemporaryDirectory(prefix="frontend-") as tmp:
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:"]
        _run([*pip, CIRCUIT_TRACER, "-d", tmp], f"pip could not download {CIRCUIT_TRACER}'s wheel")
        specs = [f"{name}@{version}" for name, (version, _, _) in NPM_PACKAGES.items()]
        npm = shutil.which("npm")
        if npm is None:
            raise FrontendError(
                "npm is not installed (Debian: apt-get install nodejs npm); it fetches " + " ".join(specs)
            )
        _run([npm, "pack", "--silent", *specs], f"npm pack could not fetch {' '.join(specs)}", cwd=tmp)
        return install(tmp, dest)


def _run(command: list[str], failure: str, cwd: str | None = None) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise FrontendError(f"{failure}: {(done.stderr or done.stdout).strip()[-2000:]}")


def install(downloads: str | Path, dest: str | Path = DEFAULT_ASSETS) -> Path:
    """Check the downloads against the pins and lay out `dest` (module docstring, step 1):
    `circuit_tracer/` (the wheel's front-end assets), `vendor/` (one file per npm package) and
    `manifest.json`, written last."""
    downloads, dest = Path(downloads), Path(dest)
    wheel = downloads / CIRCUIT_TRACER_WHEEL
    if not wheel.is_file():
        raise FrontendError(f"{wheel} is missing; `pip download {CIRCUIT_TRACER} --no-deps` makes it")
    if (digest := _sha256(wheel)) != CIRCUIT_TRACER_SHA256:
        raise FrontendError(f"{wheel} has SHA-256 {digest}, not the pinned {CIRCUIT_TRACER_SHA256}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.staging-"))
    staging.chmod(0o755)  # mkdtemp makes it private; the assets are public files
    try:
        _copy_wheel_assets(wheel, staging / "circuit_tracer")
        vendor = staging / "vendor"
        vendor.mkdir()
        files = {name: _npm_file(downloads, name) for name in NPM_PACKAGES}
        for name in ("d3", "dagre", "pako"):
            (vendor / Path(NPM_PACKAGES[name][1]).name).write_bytes(files[name])
        jetpack = _jetpack_script(files["d3-collection"].decode("utf-8"), files["d3-jetpack"].decode("utf-8"))
        (vendor / "d3-jetpack.js").write_text(jetpack)
        for name, text in STUBS.items():
            (vendor / name).write_text(text)
        index = (staging / "circuit_tracer" / "index.html").read_text()
        unknown = set(re.findall(r"src='(https?://[^']+)'", index)) - CDN_ROUTES.keys()
        if unknown:
            raise FrontendError(f"the viewer loads scripts with no local copy: {sorted(unknown)}")
        manifest = {
            "circuit_tracer": {"requirement": CIRCUIT_TRACER, "sha256": CIRCUIT_TRACER_SHA256},
            "npm": {
                name: {"version": v, "file": f, "integrity": i} for name, (v, f, i) in NPM_PACKAGES.items()
            },
            "cdn_routes": CDN_ROUTES,
        }
        io.write_json(staging / MANIFEST, manifest)
        _replace_dir(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _npm_file(downloads: Path, name: str) -> bytes:
    """The pinned file of npm package `name`, read from its hash-checked tarball."""
    version, member, integrity = NPM_PACKAGES[name]
    tarball = downloads / f"{name}-{version}.tgz"
    if not tarball.is_file():
        raise FrontendError(f"{tarball} is missing; `npm pack {name}@{version}` makes it")
    if (found := _npm_integrity(tarball)) != integrity:
        raise FrontendError(f"{tarball} has integrity {found}, not the pinned {integrity}")
    with tarfile.open(tarball, "r:gz") as archive:
        handle = archive.extractfile(f"package/{member}")
        if handle is None:
            raise FrontendError(f"{tarball} has no regular file package/{member}")
        return handle.read()


def _jetpack_script(collection: str, jetpack: str) -> str:
    """d3-jetpack for a page that already loaded d3 v7, as one classic script.

    Why: the jetpack builds on npm do not work on d3 v7 as they are: `d3v7+jetpack.js` patches
    jetpack's selection helpers (appendMany, at, st, ...) onto a second copy of d3-selection, not
    onto the d3 it exports, and the UMD `d3-jetpack.cjs` replaces `window.d3` with an empty object
    before reading d3 from it. Its CommonJS branch works: it gets `require` and `module` from this
    wrapper, `require` answering d3-collection (for nestBy) and otherwise a snapshot of the page's
    d3 (a snapshot, so jetpack's timer wrappers call d3's timers, not themselves); the helpers then
    patch d3's own selection prototype, and jetpack's exports are added to `window.d3`. One gap
    is filled: the viewer was written against a later jetpack build whose `conventions` objects
    also have `drawAxis(svg)` (jetpack's drawAxis drawn into `svg`, default the object's svg)."""
    return (
        "/* d3-jetpack on the page's d3 v7; see transcoder_lab.circuits.frontend._jetpack_script */\n"
        "(function () {\n"
        "  var define;  /* the packages' UMD headers must take their CommonJS branch */\n"
        "  function load(source) {\n"
        "    var module = {exports: {}};\n"
        "    source(module, module.exports);\n"
        "    return module.exports;\n"
        "  }\n"
        "  var d3 = window.d3, snapshot = Object.assign({}, d3);\n"
        "  var collection = load(function (module, exports) {\n" + collection + "\n});\n"
        "  function require(name) { return name === 'd3-collection' ? collection : snapshot; }\n"
        "  var jetpack = load(function (module, exports) {\n" + jetpack + "\n});\n"
        "  var conventions = jetpack.conventions;\n"
        "  jetpack.conventions = function (c) {\n"
        "    c = conventions(c);\n"
        "    c.drawAxis = function (svg) {\n"
        "      return jetpack.drawAxis(Object.assign({}, c, {svg: svg || c.svg}));\n"
        "    };\n"
        "    return c;\n"
        "  };\n"
        "  Object.assign(d3, jetpack);\n"
        "})();\n"
    )


def _copy_wheel_assets(wheel: Path, target: Path) -> None:
    """The wheel's `circuit_tracer/frontend/assets/` files, each name checked to stay inside."""
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.infolist() if m.filename.startswith(WHEEL_ASSETS) and not m.is_dir()]
        if not members:
            raise FrontendError(f"{wheel} has no {WHEEL_ASSETS}")
        for member in members:
            relative = Path(member.filename[len(WHEEL_ASSETS) :])
            if relative.is_absolute() or ".." in relative.parts:
                raise FrontendError(f"{wheel}: refusing the member {member.filename!r}")
            out = target / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(archive.read(member))


def _replace_dir(staging: Path, dest: Path) -> None:
    """Rename `staging` to `dest`; a previous `dest` is moved aside first and then removed."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
        os.replace(dest, old / dest.name)
    os.replace(staging, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def installed_assets(assets: str | Path = DEFAULT_ASSETS) -> Path:
    """`assets` if `install` completed there, else a FrontendError saying how to set it up."""
    assets = Path(assets)
    if not (assets / MANIFEST).is_file():
        raise FrontendError(f"circuit-tracer's front end is not installed in {assets}; run `make frontend`")
    return assets


# -- 2. conversion ----------------------------------------------------------------------------------


def cantor_pair(x: int, y: int) -> int:
    """circuit-tracer's feature id of feature y of layer x (the viewer unpairs it)."""
    return (x + y) * (x + y + 1) // 2 + y


def _check_name(name: str, what: str) -> str:
    if not _SAFE_NAME.fullmatch(name):
        raise FrontendError(f"{what} {name!r} must be 1-128 letters, digits, '_', '.' or '-'")
    return name


def scan_path(scan: str) -> str:
    """The viewer's scan for our feature files: a `./` path loads them from this server."""
    return f"./data/features/{_check_name(scan, 'scan')}"


def _error_kind(node_id: str) -> str:
    return node_id.split("(", 1)[0]  # rest(...), emb(...), err(...), bias(...)


def frontend_graph(
    graph_json: Mapping[str, Any],
    *,
    slug: str,
    scan: str,
    n_layers: int,
    d_vocab: int,
    token_ids: Sequence[int] | None = None,
    root_label: str | None = None,
    root_prob: float | None = None,
) -> dict[str, Any]:
    """Our graph JSON (`render.graph_to_json`) in circuit-tracer's graph-file schema (module
    docstring, step 2). `token_ids` default to the metadata's `token_ids` (only node ids use them);
    `root_label` to the root's node id; `root_prob`, the target's probability, to unknown."""
    meta = graph_json["metadata"]
    if meta.get("schema") != "transcoder_lab.circuit_graph/1":
        raise FrontendError(f"not a transcoder_lab graph (schema {meta.get('schema')!r})")
    tokens = [str(token) for token in meta["prompt_tokens"]]
    ids = list(token_ids if token_ids is not None else meta.get("token_ids", range(len(tokens))))
    if len(ids) != len(tokens):
        raise FrontendError(f"{len(ids)} token ids for {len(tokens)} prompt tokens")
    ours = {node["node_id"]: node for node in graph_json["nodes"]}
    parent_of = {
        link["source"]: link["target"] for link in graph_json["links"] if ours[link["source"]]["is_error"]
    }
    root_id = meta["root"]
    root = ours[root_id]
    last_row = n_layers - 1

    def row(node: Mapping[str, Any]) -> int:
        """The layer row a parent's error nodes sit in (the root's: the last layer's)."""
        return last_row if node["node_id"] == root_id else min(int(node["layer"]), last_row)

    negative = iter(range(-1, -(len(ours) + 2), -1))  # a distinct feature for every non-feature node
    new_id: dict[str, str] = {}
    nodes: dict[str, dict[str, Any]] = {}

    def add(node_id: str, feature: int, layer: str, ctx: int, kind: str, clerp: str, **extra: Any) -> str:
        nodes.setdefault(node_id, {
            "node_id": node_id, "feature": feature, "layer": layer, "ctx_idx": ctx, "feature_type": kind,
            "token_prob": 0.0, "is_target_logit": False, "run_idx": 0, "reverse_ctx_idx": 0,
            "jsNodeId": extra.pop("js", node_id), "clerp": clerp, "influence": None, "activation": None,
            **extra,
        })  # fmt: skip
        return node_id

    embedding = [
        add(f"E_{int(tok)}_{t}", t, "E", t, "embedding", "", js=f"E_{int(tok)}-{t}")
        for t, tok in enumerate(ids)
    ]
    for node_id, node in ours.items():
        kind, t = node["feature_type"], node["ctx_idx"]
        if node_id == root_id:
            label = root_label or root_id
            value = "" if root["influence"] is None else f" = {root['influence']:.4g}"  # value + offset
            p = "n/a" if root_prob is None else f"{root_prob:.3f}"
            vocab = d_vocab  # circuit-tracer's virtual index of its first custom target
            new_id[node_id] = add(
                f"{n_layers + 1}_{vocab}_{t}", vocab, str(n_layers + 1), t, "logit",
                f'Root "{label}"{value} (p={p})', js=f"L_{vocab}-{t}",
                is_target_logit=True, token_prob=root_prob or 0.0,
            )  # fmt: skip
        elif kind == "transcoder":
            layer, index = int(node["layer"]), int(node["feature"])
            new_id[node_id] = add(
                f"{layer}_{index}_{t}", cantor_pair(layer, index), str(layer), t, "cross layer transcoder",
                f"tc{layer}[{index}]", js=f"{layer}_{index}-0", activation=node["activation"],
            )  # fmt: skip
        elif kind == "embedding" or (node["is_error"] and _error_kind(node_id) == "emb"):
            position = t if t is not None else ours[parent_of[node_id]]["ctx_idx"]
            new_id[node_id] = embedding[int(position)]
        elif kind == "attention":
            layer, head = int(node["layer"]), int(node["feature"])
            clerp = f"attn{layer}.{head} reading “{tokens[t]}” ({t})"
            new_id[node_id] = add(
                f"{layer}_h{head}_{t}", next(negative), str(layer), t, "attention head", clerp
            )
        elif kind in ("skip", "mlp reconstruction error", "mlp"):
            layer = int(node["layer"])
            short, name = {
                "skip": ("skip", f"skip tc{layer}"),
                "mlp": ("mlp", f"MLP{layer} (no transcoder)"),
            }.get(kind, ("err", f"err tc{layer}: transcoder error"))
            ftype = "skip connection" if kind == "skip" else "mlp reconstruction error"
            new_id[node_id] = add(f"{layer}_{short}_{t}", next(negative), str(layer), t, ftype, name)
        elif node["is_error"]:
            parent = ours[parent_of[node_id]]
            what = {
                "rest": ("pruned error", "inputs the graph does not keep"),
                "err": ("mlp reconstruction error", "transcoder errors and MLPs"),
                "bias": ("bias error", "output biases and offsets"),
            }[_error_kind(node_id)]
            clerp = f"{_error_kind(node_id)} → {parent['node_id']}: {what[1]}"
            new_id[node_id] = add(
                node_id, next(negative), str(row(parent)), parent["ctx_idx"], what[0], clerp
            )
        else:
            raise FrontendError(f"node {node_id!r} has an unknown feature_type {kind!r}")

    weights: dict[tuple[str, str], float] = defaultdict(float)
    for link in graph_json["links"]:
        weights[(new_id[link["source"]], new_id[link["target"]])] += float(link["weight"])
    links = [{"source": s, "target": t, "weight": w} for (s, t), w in weights.items()]

    # circuit-tracer's influence: the running share of |contribution to the root|, largest first
    out = defaultdict(float)
    for link in links:
        out[link["source"]] += link["weight"]
    target = new_id[root_id]
    scored = sorted((n for n in nodes if n != target), key=lambda n: -abs(out[n]))
    total = sum(abs(out[n]) for n in scored) or 1.0
    running = 0.0
    for node_id in scored:
        running += abs(out[node_id])
        nodes[node_id]["influence"] = running / total
    for node in nodes.values():
        if node["activation"] is not None and not math.isfinite(node["activation"]):
            node["activation"] = None

    metadata = {
        "slug": _check_name(slug, "slug"),
        "scan": scan_path(scan),
        "transcoder_list": [],
        "prompt_tokens": tokens,
        "prompt": "".join(tokens),
        "node_threshold": None,
        "schema_version": 1,
    }
    qparams = {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    return {"metadata": metadata, "qParams": qparams, "nodes": list(nodes.values()), "links": links}


def transcoder_features(data: Mapping[str, Any]) -> list[tuple[int, int]]:
    """(layer, index) of every transcoder-feature node of a `frontend_graph` result."""
    return [
        (int(node["layer"]), int(node["node_id"].split("_")[1]))
        for node in data["nodes"]
        if node["feature_type"] == "cross layer transcoder"
    ]


def frontend_full_graph(
    graph: FullGraph,
    pruned: PruneResult,
    *,
    slug: str,
    scan: str,
    prompt_tokens: Sequence[str],
    token_ids: Sequence[int],
    target_tokens: Sequence[str] | None = None,
    node_threshold: float | None = 0.8,
    prompt: str | None = None,
    d_vocab: int | None = None,
) -> dict[str, Any]:
    """A full graph (`full_graph.full_graph`) pruned by `prune_graph`, in the file circuit-tracer's
    `create_graph_files` writes for its own pruned graph (module docstring, step 2b).

    `prompt_tokens` label the token columns, `target_tokens` the logit targets (default: each
    target's label); `node_threshold` is the one `pruned` was made with (the viewer hides nodes
    whose cumulative influence is above it); `prompt` defaults to the tokens joined; `d_vocab` is
    needed only for targets that are not logits (`root_target`), which get circuit-tracer's virtual
    vocabulary index d_vocab + their position in the target list."""
    n_feat, n_pos, n_layers = graph.n_features, graph.n_pos, graph.n_layers
    if len(prompt_tokens) != n_pos or len(token_ids) != n_pos:
        raise FrontendError(
            f"{len(prompt_tokens)} tokens and {len(token_ids)} token ids for {n_pos} positions"
        )
    labels = list(target_tokens) if target_tokens is not None else [t.label for t in graph.targets]
    if len(labels) != graph.n_targets:
        raise FrontendError(f"{len(labels)} target tokens for {graph.n_targets} targets")
    node_mask, edge_mask = pruned.node_mask.cpu(), pruned.edge_mask.cpu()
    cumulative = pruned.cumulative_scores.cpu().tolist()
    error_end = n_feat + n_layers * n_pos
    token_end = error_end + n_pos

    def node(node_id: str, feature: int, layer: str, ctx: int, kind: str, js: str, **extra: Any) -> dict:
        fields = {
            "node_id": node_id,
            "feature": feature,
            "layer": layer,
            "ctx_idx": ctx,
            "feature_type": kind,
            "token_prob": 0.0,
            "is_target_logit": False,
            "run_idx": 0,
            "reverse_ctx_idx": 0,
            "jsNodeId": js,
            "clerp": "",
            "influence": None,
            "activation": None,
        }
        fields.update(extra)
        return fields

    nodes: dict[int, dict[str, Any]] = {}
    for index in node_mask.nonzero()[:, 0].tolist():
        influence = float(cumulative[index])
        if index < n_feat:
            layer, pos, feat = graph.active_features[index].tolist()
            nodes[index] = node(
                f"{layer}_{feat}_{pos}",
                cantor_pair(layer, feat),
                str(layer),
                pos,
                "cross layer transcoder",
                f"{layer}_{feat}-0",
                influence=influence,
                activation=float(graph.activations[index]),
            )
        elif index < error_end:
            layer, pos = divmod(index - n_feat, n_pos)
            nodes[index] = node(
                f"0_{layer}_{pos}",
                -1,
                str(layer),
                pos,
                "mlp reconstruction error",
                f"{layer}_{pos}-0",
                influence=influence,
            )
        elif index < token_end:
            pos = index - error_end
            tok = int(token_ids[pos])
            nodes[index] = node(
                f"E_{tok}_{pos}", pos, "E", pos, "embedding", f"E_{tok}-{pos}", influence=influence
            )
        else:
            k = index - token_end
            target = graph.targets[k]
            # a logit's vocabulary index; any other root gets circuit-tracer's virtual index
            if target.token is None and d_vocab is None:
                raise FrontendError(f"target {target.label!r} is not a logit: give d_vocab for its index")
            vocab = target.token if target.token is not None else d_vocab + k
            layer, pos, prob = str(n_layers + 1), n_pos - 1, float(target.weight)
            nodes[index] = node(
                f"{layer}_{vocab}_{pos}",
                vocab,
                layer,
                pos,
                "logit",
                f"L_{vocab}-{pos}",
                token_prob=prob,
                is_target_logit=k == 0,
                clerp=f'Output "{labels[k]}" (p={prob:.3f})',
            )

    # circuit-tracer's error id 0_<layer>_<pos> is also the id of feature <layer> of layer 0 at <pos>;
    # where both are in the file, the error gets err_<layer>_<pos> (the viewer needs unique ids)
    feature_ids = {n["node_id"] for n in nodes.values() if n["feature_type"] == "cross layer transcoder"}
    for n in nodes.values():
        if n["feature_type"] == "mlp reconstruction error" and n["node_id"] in feature_ids:
            n["node_id"] = "err" + n["node_id"][1:]

    targets, sources = edge_mask.nonzero(as_tuple=True)
    weights = graph.adjacency.cpu()[targets, sources].tolist()
    links = [
        {"source": nodes[s]["node_id"], "target": nodes[t]["node_id"], "weight": w}
        for s, t, w in zip(sources.tolist(), targets.tolist(), weights, strict=True)
        if s in nodes and t in nodes
    ]
    connected = {link["source"] for link in links} | {link["target"] for link in links}
    used = [
        n for n in nodes.values() if n["node_id"] in connected or n["feature_type"] in ("embedding", "logit")
    ]

    tokens = [str(token) for token in prompt_tokens]
    metadata = {
        "slug": _check_name(slug, "slug"),
        "scan": scan_path(scan),
        "transcoder_list": [],
        "prompt_tokens": tokens,
        "prompt": "".join(tokens) if prompt is None else prompt,
        "node_threshold": node_threshold,
        "schema_version": 1,
    }
    qparams = {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    return {"metadata": metadata, "qParams": qparams, "nodes": used, "links": links}


# -- 3. writing -------------------------------------------------------------------------------------


def write_frontend_graph(
    folder: str | Path,
    data: Mapping[str, Any],
    feature_info: Mapping[tuple[int, int], Mapping[str, Any]] | None = None,
) -> Path:
    """Write a `frontend_graph` result into `folder` (module docstring, step 3); returns the graph
    file. `feature_info[(layer, index)]` adds fields to that feature's file, e.g. `top_logits` and
    `bottom_logits` (lists of token strings, shown under "Token Predictions")."""
    folder = Path(folder)
    meta = data["metadata"]
    path = folder / f"{_check_name(meta['slug'], 'slug')}.json"
    io.write_json(path, data)
    scan = meta["scan"].removeprefix("./data/")
    for layer, index in transcoder_features(data):
        info = dict((feature_info or {}).get((layer, index), {}))
        # examples_quantiles must be a list: the viewer draws each quantile's examples
        io.write_json(folder / scan / f"{cantor_pair(layer, index)}.json", {"examples_quantiles": [], **info})
    add_to_index(folder, meta)
    return path


def add_to_index(folder: str | Path, metadata: Mapping[str, Any]) -> None:
    """Put `metadata` into `<folder>/graph-metadata.json`, replacing the entry with its slug."""
    index = Path(folder) / INDEX
    graphs = json.loads(index.read_text())["graphs"] if index.exists() else []
    graphs = [g for g in graphs if g["slug"] != metadata["slug"]] + [dict(metadata)]
    io.write_json(index, {"graphs": graphs})


# -- 4. serving -------------------------------------------------------------------------------------


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def _inside(root: Path, relative: str) -> Path:
    """`root / relative` if it names a file inside `root`, else a 404."""
    parts = [part for part in relative.split("/") if part]
    if not parts or any(part in (".", "..") or "\\" in part or "\x00" in part for part in parts):
        raise RequestError(HTTPStatus.NOT_FOUND, f"no such file: {relative!r}")
    path = root.joinpath(*parts).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise RequestError(HTTPStatus.NOT_FOUND, f"no such file: {relative!r}")
    return path


def rewrite_cdn(html: str) -> str:
    """The viewer's HTML with every CDN script address pointing at /vendor/ on this server."""
    for url, name in CDN_ROUTES.items():
        html = html.replace(url, f"/vendor/{name}")
    return html


def make_server(
    graph_dir: str | Path, port: int = DEFAULT_PORT, assets: str | Path = DEFAULT_ASSETS
) -> ThreadingHTTPServer:
    """A ThreadingHTTPServer on 127.0.0.1:`port` (0: any free port) for the graphs in `graph_dir`."""
    assets = installed_assets(assets)
    graph_dir = Path(graph_dir)
    if not (graph_dir / INDEX).is_file():
        raise FrontendError(f"{graph_dir} has no {INDEX}; write graphs there with write_frontend_graph")
    viewer, vendor = assets / "circuit_tracer", assets / "vendor"
    port_holder = [port]

    class Handler(BaseHTTPRequestHandler):
        server_version = "transcoder-lab-graphs"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            sys.stderr.write(f"[graphs] {self.address_string()} {format % args}\n")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def _file(self, path: Path) -> None:
            body = path.read_bytes()
            if path.suffix == ".html":
                body = rewrite_cdn(body.decode("utf-8")).encode("utf-8")
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            charset = (
                "; charset=utf-8" if kind.startswith("text/") or kind.endswith(("json", "javascript")) else ""
            )
            self._send(HTTPStatus.OK, body, kind + charset)

        def _route(self) -> str:
            host = self.headers.get("Host", "")  # against DNS rebinding: only our own address
            if host not in {f"{HOST}:{port_holder[0]}", f"localhost:{port_holder[0]}"}:
                raise RequestError(HTTPStatus.MISDIRECTED_REQUEST, f"Host {host!r} is not this server's")
            return unquote(urlsplit(self.path).path)

        def _handle(self, action) -> None:
            try:
                action()
            except RequestError as error:
                self._send(error.status, json.dumps({"error": str(error)}).encode(), "application/json")
            except Exception as error:  # the server keeps serving; the page shows the reason
                body = json.dumps({"error": f"{type(error).__name__}: {error}"}).encode()
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, body, "application/json")

        def do_GET(self) -> None:  # noqa: N802
            self._handle(self._get)

        def do_POST(self) -> None:  # noqa: N802
            self._handle(self._post)

        def _get(self) -> None:
            path = self._route()
            if path == "/":
                path = "/index.html"
            if path == "/favicon.ico":  # the viewer has none; answer so the browser logs no 404
                return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            for prefix in ("/data/", "/graph_data/"):  # circuit-tracer's local server's two routes
                if path.startswith(prefix):
                    return self._file(_inside(graph_dir, path[len(prefix) :]))
            if path.startswith("/vendor/"):
                return self._file(_inside(vendor, path[len("/vendor/") :]))
            self._file(_inside(viewer, path))

        def _post(self) -> None:
            path = self._route()
            if not path.startswith("/save_graph/"):
                raise RequestError(HTTPStatus.NOT_FOUND, f"cannot POST to {path}")
            slug = _check_name(path[len("/save_graph/") :], "slug")
            target = _inside(graph_dir, f"{slug}.json")
            length = self.headers.get("Content-Length", "")
            if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                raise RequestError(
                    HTTPStatus.BAD_REQUEST, f"need a Content-Length of at most {MAX_BODY_BYTES}"
                )
            if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
                raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json")
            body = json.loads(self.rfile.read(int(length)))
            if not isinstance(body, dict) or not isinstance(body.get("qParams"), dict):
                raise RequestError(HTTPStatus.BAD_REQUEST, 'the body must be {"qParams": {...}}')
            graph = json.loads(target.read_text())
            graph["qParams"] = body["qParams"]
            io.write_json(target, graph)
            self._send(HTTPStatus.OK, b"{}", "application/json")

    server = ThreadingHTTPServer((HOST, port), Handler)
    server.daemon_threads = True
    port_holder[0] = server.server_address[1]
    return server


def serve(graph_dir: str | Path, port: int = DEFAULT_PORT, assets: str | Path = DEFAULT_ASSETS) -> None:
    server = make_server(graph_dir, port, assets)
    host, bound = server.server_address[:2]
    print(f"Serving the graphs of {graph_dir} at http://{host}:{bound}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# -- 5. screenshots ---------------------------------------------------------------------------------


def chromium_path() -> Path:
    """Debian's chromium (`make browser`), or the browser the CHROMIUM environment variable names."""
    return Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))


CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def screenshots(
    graph_dir: str | Path,
    slugs: Sequence[str],
    out_dir: str | Path,
    assets: str | Path = DEFAULT_ASSETS,
    size: tuple[int, int] = (1400, 900),
    timeout_s: float = 60.0,
    browser: Any = None,
) -> list[Path]:
    """`out_dir/<slug>.png` for each graph of `graph_dir` named in `slugs`, as circuit-tracer's
    viewer draws it (module docstring, step 5): `make_server` on a free port of 127.0.0.1 in a
    thread; each page captured once the graph's nodes and token labels are drawn; written atomically.
    `browser`: a Playwright browser to use (default: launch headless Chromium, `chromium_path`)."""
    server = make_server(graph_dir, 0, assets)  # missing assets or graphs: the fix, before any browser
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        if browser is not None:
            return [
                _capture(browser, server, Path(graph_dir), slug, Path(out_dir), size, timeout_s)
                for slug in slugs
            ]
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as error:
            raise FrontendError("screenshots need playwright: pip install -e . (a dependency)") from error
        executable = chromium_path()
        if not executable.exists():
            raise FrontendError(
                f"no browser at {executable}: run `make browser` (apt-get install chromium), or set "
                "CHROMIUM to a Chromium or Chrome executable"
            )
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
            try:
                return [
                    _capture(launched, server, Path(graph_dir), slug, Path(out_dir), size, timeout_s)
                    for slug in slugs
                ]
            finally:
                launched.close()
    finally:
        server.shutdown()
        server.server_close()


def _target_node(data: Mapping[str, Any]) -> str | None:
    """The node the screenshot clicks: the target logit (circuit-tracer's is_target_logit)."""
    logits = [node for node in data["nodes"] if node["feature_type"] == "logit"]
    marked = [node for node in logits if node.get("is_target_logit")]
    return (marked or logits or [{"node_id": None}])[0]["node_id"]


def _capture(
    browser: Any,
    server: ThreadingHTTPServer,
    graph_dir: Path,
    slug: str,
    out_dir: Path,
    size: tuple[int, int],
    timeout_s: float,
) -> Path:
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    try:
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"http://{HOST}:{server.server_address[1]}/?slug={_check_name(slug, 'slug')}")
        for drawn in (".link-graph text.node", ".link-graph g.prompt-token text"):
            page.wait_for_selector(drawn, timeout=timeout_s * 1000)
        target = _target_node(json.loads((Path(graph_dir) / f"{slug}.json").read_text()))
        index = page.evaluate(
            "id => Array.from(document.querySelectorAll('.link-graph text.node'))"
            ".findIndex(e => d3.select(e).datum().nodeId === id)",
            target,
        )
        if index >= 0:  # click the target: the viewer draws its input links and lists them
            box = page.locator(".link-graph text.node").nth(index).bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_selector(".node-connections .feature-row", timeout=timeout_s * 1000)
        if errors:
            raise FrontendError(f"the viewer failed on graph {slug!r}: {errors}")
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"{slug}.png"
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            staged = Path(tmp) / out.name
            page.screenshot(path=str(staged), full_page=True)
            staged.replace(out)
        return out
    finally:
        page.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m transcoder_lab.circuits.frontend", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_parser = commands.add_parser("fetch", help="download and install the front end (make frontend)")
    fetch_parser.add_argument("dest", type=Path, nargs="?", default=DEFAULT_ASSETS)
    install_parser = commands.add_parser("install", help="install already downloaded files")
    install_parser.add_argument("downloads", type=Path)
    install_parser.add_argument("dest", type=Path, nargs="?", default=DEFAULT_ASSETS)
    serve_parser = commands.add_parser("serve", help="serve a graph folder on 127.0.0.1")
    serve_parser.add_argument("graph_dir", type=Path, help="a folder holding graph-metadata.json")
    serve_parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    serve_parser.add_argument(
        "--assets", type=Path, default=DEFAULT_ASSETS, help="where `make frontend` put them"
    )
    shot_parser = commands.add_parser("screenshot", help="PNGs of graphs in the viewer (headless Chromium)")
    shot_parser.add_argument("graph_dir", type=Path, help="a folder holding graph-metadata.json")
    shot_parser.add_argument("out_dir", type=Path, help="where <slug>.png goes")
    shot_parser.add_argument("slugs", nargs="+", help="the graphs' slugs")
    shot_parser.add_argument("--assets", type=Path, default=DEFAULT_ASSETS)
    args = parser.parse_args(argv)
    try:
        if args.command == "screenshot":
            print(*screenshots(args.graph_dir, args.slugs, args.out_dir, args.assets), sep="\n")
        elif args.command == "fetch":
            fetch(args.dest)
        elif args.command == "install":
            install(args.downloads, args.dest)
        else:
            serve(args.graph_dir, args.port, args.assets)
    except (FrontendError, OSError, tarfile.TarError, zipfile.BadZipFile) as error:
        print(f"frontend: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
