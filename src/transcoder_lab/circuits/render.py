"""Attribution graphs as figures and as JSON (docs/design.md §5.4).

Figure (`graph_figure`): x is the residual point a node reads, so layers run left to right, each
layer split into two sub-columns: attention head-source nodes at x = layer (they read resid_pre
layer), transcoder features and skip terms at x = layer + 0.5 (resid_mid layer); leaves (embedding,
errors, MLPs) sit at x = -0.5 and the root at its own point. y is the token position (the token
strings label the y axis), nodes at the same (x, position) are spread vertically a little. Edge
width is proportional to |weight| (relative to the largest edge), colour by sign (blue positive,
red negative); error nodes are small grey squares next to their parent; the root is a large
gold star. Agg backend: the function returns the figure, callers save it (`plotting.save_figure`).

JSON (`graph_to_json`, `write_graph_json`), close to circuit-tracer's graph files (its viewer reads
`circuits.circuit_tracer.graph_files.frontend_graph`'s conversion of this JSON, in circuit-tracer's
exact schema):

    {"metadata": {"prompt": str, "prompt_tokens": [str], "root": root label,
                  "root_value": v·LN(x), "root_offset": float, "fraction_explained": float,
                  "schema": "transcoder_lab.circuit_graph/1", ...caller metadata (scan, model)},
     "nodes": [{"node_id": label, "feature": feature id or head index or null,
                "layer": int or null, "ctx_idx": token position or null,
                "feature_type": "root" | "transcoder" | "attention" | "skip" | "embedding" |
                                "mlp reconstruction error" | "mlp" | "error",
                "activation": a feature's activation z (else null),
                "influence": the node's total in the root's units (value + offset; for leaves and
                             error nodes the sum of their out-edges),
                "label": label, "is_error": bool}],
     "links": [{"source": child node_id, "target": parent node_id,
                "weight": the child's direct contribution to the parent, in the root's units}]}

Error nodes (`rest(...)`, `emb(...)`, `err(...)`, `bias(...)`) have feature_type "error" and layer null.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path as FilePath
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: stages and tests never open a window
import matplotlib.pyplot as plt  # noqa: E402

from transcoder_lab import io  # noqa: E402
from transcoder_lab.circuits.beam_search import Graph, Node, fraction_explained  # noqa: E402

SCHEMA = "transcoder_lab.circuit_graph/1"
FEATURE_TYPES = {
    "root": "root",
    "feature": "transcoder",
    "head": "attention",
    "skip": "skip",
    "embedding": "embedding",
    "tc_error": "mlp reconstruction error",
    "mlp": "mlp",
}
POSITIVE, NEGATIVE = "#1f77b4", "#d62728"


def _x(graph: Graph, node: Node) -> float:
    """Left-to-right placement: the residual point the node reads (module docstring)."""
    if node.is_error:
        return _x(graph, graph.nodes[node.parent]) - 0.18
    if node.kind == "root":
        return node.layer + (0.5 if node.sublayer == "resid_mid" else 0.0)
    if node.kind == "head":
        return float(node.layer)
    if node.kind in ("feature", "skip"):
        return node.layer + 0.5
    return -0.5  # embedding, transcoder error and MLP leaves


def _positions(graph: Graph) -> dict[str, tuple[float, float]]:
    groups: dict[tuple[float, int], list[str]] = defaultdict(list)
    for node in graph.nodes.values():
        groups[(round(_x(graph, node), 3), node.position or 0)].append(node.node_id)
    placed = {}
    for (x, position), ids in groups.items():
        for rank, node_id in enumerate(sorted(ids)):
            # spread a crowded cell over most of the row, staggering x so labels do not overprint
            spread = 0.9 * (rank - (len(ids) - 1) / 2) / max(len(ids), 1)
            placed[node_id] = (x + (0.08 if rank % 2 else 0.0), position + spread)
    return placed


def graph_figure(graph: Graph, prompt_tokens: Sequence[str], title: str | None = None) -> plt.Figure:
    """The graph drawn over (residual point, token position); see the module docstring."""
    at = _positions(graph)
    n_pos = len(prompt_tokens)
    xs = [x for x, _ in at.values()]
    figure, axis = plt.subplots(figsize=(max(6.0, 2.2 * (max(xs) - min(xs) + 1)), max(4.0, 0.35 * n_pos + 2)))
    largest = max((abs(edge.weight) for edge in graph.edges), default=1.0) or 1.0
    for edge in sorted(graph.edges, key=lambda edge: abs(edge.weight)):
        (x0, y0), (x1, y1) = at[edge.source], at[edge.target]
        error = graph.is_error_edge(edge)
        axis.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops=dict(
                arrowstyle="-|>",
                color="0.6" if error else (POSITIVE if edge.weight >= 0 else NEGATIVE),
                lw=0.3 + 6.0 * abs(edge.weight) / largest,
                alpha=0.5 if error else 0.8,
                shrinkA=4,
                shrinkB=4,
            ),
            zorder=1,
        )
    for node_id, (x, y) in at.items():
        node = graph.nodes[node_id]
        if node.kind == "root":
            axis.scatter([x], [y], s=420, marker="*", color="gold", edgecolor="black", zorder=3)
        elif node.is_error:
            axis.scatter([x], [y], s=18, marker="s", color="0.7", zorder=2)
            continue  # unlabelled: their weights are in the JSON and the edge widths
        else:
            marker = {"feature": "o", "head": "D", "skip": "v"}.get(node.kind, "s")
            axis.scatter([x], [y], s=60, marker=marker, color="white", edgecolor="black", zorder=2)
        axis.annotate(node_id, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7, zorder=4)
    axis.set_yticks(range(n_pos), [f"{i}: {token!r}" for i, token in enumerate(prompt_tokens)], fontsize=7)
    axis.set_ylim(n_pos - 0.5, -0.5)  # the first token at the top, as text reads
    layers = sorted({int(node.layer) for node in graph.nodes.values() if node.layer is not None})
    ticks = [-0.5] + [x for layer in layers for x in (layer, layer + 0.5)]
    names = ["leaves"] + [name for layer in layers for name in (f"attn{layer}", f"tc{layer}")]
    axis.set_xticks(ticks, names, fontsize=8, rotation=45)
    axis.set_xlim(min(xs) - 0.4, max(xs) + 0.6)
    axis.grid(axis="y", color="0.93")
    share = fraction_explained(graph)
    axis.set_title(title or f"{graph.root_id}: graph explains {share:.0%} of the root's value", fontsize=10)
    figure.tight_layout()
    return figure


def _optional_int(value: int | None) -> int | None:
    return None if value is None else int(value)


def graph_to_json(
    graph: Graph, prompt_tokens: Sequence[str], metadata: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The graph in the schema of the module docstring (plain Python types only)."""
    out_totals: dict[str, float] = defaultdict(float)
    for edge in graph.edges:
        out_totals[edge.source] += edge.weight
    nodes = []
    for node in graph.nodes.values():
        if node.is_error or node.kind in ("embedding", "tc_error", "mlp"):
            influence = out_totals[node.node_id]
        else:
            influence = node.total
        nodes.append(
            {
                "node_id": node.node_id,
                "feature": _optional_int(node.index),
                "layer": _optional_int(node.layer),
                "ctx_idx": _optional_int(node.position),
                "feature_type": "error" if node.is_error else FEATURE_TYPES[node.kind],
                "activation": None if node.activation is None else float(node.activation),
                "influence": float(influence),
                "label": node.node_id,
                "is_error": node.is_error,
            }
        )
    root = graph.nodes[graph.root_id]
    meta = {
        "schema": SCHEMA,
        "prompt": "".join(prompt_tokens),
        "prompt_tokens": list(prompt_tokens),
        "root": graph.root_id,
        "root_value": float(root.value),
        "root_offset": float(root.offset),
        "fraction_explained": float(fraction_explained(graph)),
        **(metadata or {}),
    }
    links = [{"source": e.source, "target": e.target, "weight": float(e.weight)} for e in graph.edges]
    return {"metadata": meta, "nodes": nodes, "links": links}


def write_graph_json(
    path: str | FilePath,
    graph: Graph,
    prompt_tokens: Sequence[str],
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write `graph_to_json(...)` atomically to `path`; returns the written dict."""
    data = graph_to_json(graph, prompt_tokens, metadata)
    io.write_json(path, data)
    return data


__all__ = ["FEATURE_TYPES", "SCHEMA", "graph_figure", "graph_to_json", "write_graph_json"]
