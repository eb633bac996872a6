"""Our attribution graphs as graph files of circuit-tracer's own viewer (circuit-tracer 0.5.0).

circuit-tracer ships the attribution-graph viewer of "Circuit Tracing" as static HTML/JS. This module
writes our beam-search graphs and our pruned full graphs in the graph-file schema that viewer reads
(`server` serves them, `screenshots` captures them). circuit-tracer itself is never imported (it
cannot be installed beside our pinned stack): its Python source was read for the schema.

1. Conversion (`frontend_graph`): our graph JSON (`render.graph_to_json`) becomes circuit-tracer's
   graph file: `metadata` (slug, scan, transcoder_list, prompt_tokens, prompt, node_threshold,
   schema_version), `qParams`, `nodes` (node_id, feature, layer, ctx_idx, feature_type, token_prob,
   is_target_logit, run_idx, reverse_ctx_idx, jsNodeId, clerp, influence, activation) and `links`
   (source, target, weight: source is the upstream node, as in ours). The viewer draws one row per
   layer (the embeddings at the bottom, "E"; the target row on top) and one column per token, so:
   - transcoder feature i of layer l at token t: "cross layer transcoder", node_id `l_i_t`,
     feature = Cantor pairing of (l, i) (the viewer unpairs it into the "L l/i" label), clerp
     `tc<l>[<i>]` followed by the feature's label where the caller gives one (`feature_labels`,
     e.g. its best ground-truth label and F1, "citation/semicolon 0.93");
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

2. Full graphs (`frontend_full_graph`): a `full_graph.full_graph` pruned by `prune_graph` becomes
   the file circuit-tracer's `create_graph_files` writes for its own pruned graph (its
   utils/create_graph_files.py and frontend/graph_models.py were read): the node mask's nodes in
   graph order, then only those with a kept edge and every embedding and logit; feature
   `<layer>_<feature>_<pos>` (Cantor-paired feature, its activation, its clerp the caller's
   label in `feature_labels` or none, as circuit-tracer's unlabelled features), error `0_<layer>_<pos>`
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
   feature's top and bottom output tokens and its top activating contexts when given) and the index
   `<folder>/graph-metadata.json` (`{"graphs": [metadata, ...]}`, one entry per slug, replaced when
   rewritten), each atomically. `examples_file` puts contexts in the fields the viewer's feature
   panel draws (its feature_examples/*.js were read): `examples_quantiles`, a list of
   `{quantile_name, examples}`, each example `{tokens, tokens_acts_list, train_token_ind,
   is_repeated_datapoint}` (the token strings, their activations, the centred token), and
   `act_min`/`act_max`, the domain of the orange colour scale behind each token.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transcoder_lab import io
from transcoder_lab.circuits.circuit_tracer.assets import FrontendError

if TYPE_CHECKING:
    from transcoder_lab.circuits.full_graph import FullGraph, PruneResult

INDEX = "graph-metadata.json"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


# -- conversion -------------------------------------------------------------------------------------


def cantor_pair(x: int, y: int) -> int:
    """circuit-tracer's feature id of feature y of layer x (the viewer unpairs it)."""
    return (x + y) * (x + y + 1) // 2 + y


def check_name(name: str, what: str) -> str:
    """`name` if it is safe as a file name and in a URL (a slug, a scan), else a FrontendError."""
    if not _SAFE_NAME.fullmatch(name):
        raise FrontendError(f"{what} {name!r} must be 1-128 letters, digits, '_', '.' or '-'")
    return name


def scan_path(scan: str) -> str:
    """The viewer's scan for our feature files: a `./` path loads them from this server."""
    return f"./data/features/{check_name(scan, 'scan')}"


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
    feature_labels: Mapping[tuple[int, int], str] | None = None,
) -> dict[str, Any]:
    """Our graph JSON (`render.graph_to_json`) in circuit-tracer's graph-file schema (module
    docstring, step 1). `token_ids` default to the metadata's `token_ids` (only node ids use them);
    `root_label` to the root's node id; `root_prob`, the target's probability, to unknown;
    `feature_labels[(layer, index)]` is appended to that feature's clerp."""
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
            label = (feature_labels or {}).get((layer, index))
            new_id[node_id] = add(
                f"{layer}_{index}_{t}", cantor_pair(layer, index), str(layer), t, "cross layer transcoder",
                f"tc{layer}[{index}] {label}" if label else f"tc{layer}[{index}]", js=f"{layer}_{index}-0",
                activation=node["activation"],
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
        "slug": check_name(slug, "slug"),
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
    feature_labels: Mapping[tuple[int, int], str] | None = None,
) -> dict[str, Any]:
    """A full graph (`full_graph.full_graph`) pruned by `prune_graph`, in the file circuit-tracer's
    `create_graph_files` writes for its own pruned graph (module docstring, step 2).

    `prompt_tokens` label the token columns, `target_tokens` the logit targets (default: each
    target's label); `node_threshold` is the one `pruned` was made with (the viewer hides nodes
    whose cumulative influence is above it); `prompt` defaults to the tokens joined; `d_vocab` is
    needed only for targets that are not logits (`root_target`), which get circuit-tracer's virtual
    vocabulary index d_vocab + their position in the target list. `feature_labels[(layer, index)]`
    is that feature's clerp (default: none)."""
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
                clerp=(feature_labels or {}).get((layer, feat), ""),
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
        "slug": check_name(slug, "slug"),
        "scan": scan_path(scan),
        "transcoder_list": [],
        "prompt_tokens": tokens,
        "prompt": "".join(tokens) if prompt is None else prompt,
        "node_threshold": node_threshold,
        "schema_version": 1,
    }
    qparams = {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    return {"metadata": metadata, "qParams": qparams, "nodes": used, "links": links}


# -- writing ----------------------------------------------------------------------------------------


def examples_file(
    examples: Sequence[tuple[Sequence[str], Sequence[float], int]], title: str
) -> dict[str, Any]:
    """A feature file's top activating contexts in the viewer's fields (module docstring, step 3):
    each example (token strings, their activations, index of the centred token), in one group
    named `title`; the colour scale runs from 0 to the largest activation shown."""
    rows = [
        {
            "tokens": [str(token) for token in tokens],
            "tokens_acts_list": [float(act) for act in acts],
            "train_token_ind": int(center),
            "is_repeated_datapoint": False,
        }
        for tokens, acts, center in examples
    ]
    top = max((act for row in rows for act in row["tokens_acts_list"]), default=0.0)
    return {
        "examples_quantiles": [{"quantile_name": title, "examples": rows}] if rows else [],
        "act_min": 0.0,
        "act_max": top if top > 0 else 1.0,
    }


def write_frontend_graph(
    folder: str | Path,
    data: Mapping[str, Any],
    feature_info: Mapping[tuple[int, int], Mapping[str, Any]] | None = None,
) -> Path:
    """Write a `frontend_graph` result into `folder` (module docstring, step 3); returns the graph
    file. `feature_info[(layer, index)]` adds fields to that feature's file, e.g. `top_logits` and
    `bottom_logits` (lists of token strings, shown under "Token Predictions") and the fields of
    `examples_file` (its top activating contexts, listed under the feature)."""
    folder = Path(folder)
    meta = data["metadata"]
    path = folder / f"{check_name(meta['slug'], 'slug')}.json"
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
