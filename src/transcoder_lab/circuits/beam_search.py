"""Backward path search from a root and the attribution graph built from the paths (docs/design.md §5.4).

Beam search (`beam_search`), from one root (a feature, a logit difference, any direction):

1. Attribute the root (`attribute`) and rank its *expandable* contributors (transcoder features of
   earlier layers, attention head-source pairs, skip terms) by |contribution|; contributors that
   the `PathFilter` forbids are masked out of the attribution tensors first (so a restrictive
   filter never starves the ranking). The top `n_branches` become paths of length 1 whose value
   is their contribution, in the root's units.
2. Each later iteration expands the last node of every kept path: `child_root` turns the node into
   a root whose value + offset equals the node's contribution, `attribute` decomposes that child,
   and its top `n_branches` allowed contributors extend the path. The child root's vector already
   carries the parent's scale (for a feature, P_i W_enc[:, i] with P_i = W_dec[i]·u, or for a
   cross-layer transcoder the sum of its decoders into the MLPs below the parent; for a head,
   A[h, t, s] W_V^h W_O^h u), so the contributions of a grandchild are *already in the root's
   units*: a path's value is its last node's contribution, no product needs to be formed. For a
   feature child this equals the multiplicative rule value(path) = c_1 · a_21 / z_1, with c_1 the
   child's contribution to the root, a_21 the grandchild's contribution to the child's
   pre-activation and z_1 the child's activation (tested).
3. Of all extensions, the `n_branches` with the largest |value| are kept (the beam). The result is
   every kept path of every iteration, largest |value| first; the filter is applied again to the
   result (`filter_paths`, which can also re-filter a finished search with another filter).
   Only the beam is a Python loop; each attribution is batched over all features and heads.

Graph (`build_graph`): paths share nodes, so they are merged into a DAG whose nodes are the root,
the path nodes (one per label: `tc8[355]@37`, `attn9.1@6`, `skip_tc3@37`, `emb@6`, ...) and error
nodes. Units: attribution is linear in a root's vector, so a node reached from several parents is
one root whose vector is the *sum* of the child vectors `child_root` gives under each parent. Nodes
are processed from the root backwards, ordered by their residual point (resid_mid L after
resid_pre L after resid_mid L-1; a child always reads an earlier point than its parent), so when a
node is reached its merged vector is complete. Every edge is then exact in the root's units:

- edge child -> parent: the child's direct contribution to the parent's (merged) value;
- node value convention: `value` is v·LN(x) at the node (what `attribute` decomposes) and
  `offset` the node's input-independent constant (effective encoder bias share, logit bias), so
  `total = value + offset` is what the node stands for; for a path node `total` equals the sum of
  its out-edges (flow conservation, tested);
- every parent (a node with kept children) gets error nodes so that its in-edges sum to its
  total: `rest(<parent>)` holds every contribution not kept (other features, heads, skips), plus,
  split out when larger than `split_fraction` of |value|, `emb(<parent>)` (the embedding),
  `err(<parent>)` (transcoder errors and MLPs without a transcoder) and `bias(<parent>)`
  (attention and transcoder output biases, plus the node's own offset); small ones stay in rest.
  Σ in-edges = attribution total + offset = value + offset (tested at relative 1e-4).

`fraction_explained(graph)`: the kept (non-error) in-edges of the root over the root's value
v·LN(x) (its offset, an input-independent constant, is not something a circuit explains).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from transcoder_lab.circuits.attribution import (
    EXPANDABLE_KINDS,
    LEAF_KINDS,
    Attribution,
    AttributionContext,
    Contributor,
    Root,
    attribute,
    child_root,
    root_value,
    top_contributors,
)

# leaves a path may end on when the filter asks for them ("bias" has no position: never a path node)
PATH_LEAF_KINDS: frozenset[str] = frozenset({"embedding", "tc_error", "mlp"})
ERROR_KINDS: frozenset[str] = frozenset({"rest", "emb_rest", "err_rest", "bias_rest"})


# -- filters ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathFilter:
    """Which contributors may be path nodes; every node of a kept path satisfies all given fields.

    layers: inclusive (low, high) range of writer layers (features, heads, skips, errors, MLPs);
    kinds: contributor kinds (default: the expandable ones; add "embedding", "tc_error" or "mlp"
        to let paths end on those leaves);
    positions: token positions a node's input is read at (source token for heads);
    features: allowed feature ids (any layer); other kinds are unaffected.
    """

    layers: tuple[int, int] | None = None
    kinds: frozenset[str] = EXPANDABLE_KINDS
    positions: frozenset[int] | None = None
    features: frozenset[int] | None = None

    def __post_init__(self) -> None:
        kinds = frozenset(self.kinds)
        unknown = kinds - (EXPANDABLE_KINDS | PATH_LEAF_KINDS)
        if unknown:
            raise ValueError(f"kinds {sorted(unknown)} cannot be path nodes; use {sorted(EXPANDABLE_KINDS)}")
        object.__setattr__(self, "kinds", kinds)
        for name in ("positions", "features"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, frozenset(int(v) for v in value))

    def layer_ok(self, layer: int | None) -> bool:
        return self.layers is None or layer is None or self.layers[0] <= layer <= self.layers[1]

    def position_ok(self, position: int | None) -> bool:
        return self.positions is None or position is None or position in self.positions

    def accepts(self, node: Contributor) -> bool:
        if (
            node.kind not in self.kinds
            or not self.layer_ok(node.layer)
            or not self.position_ok(node.position)
        ):
            return False
        return node.kind != "feature" or self.features is None or node.index in self.features


def _allowed(attribution: Attribution, flt: PathFilter) -> Attribution:
    """A copy of `attribution` whose forbidden entries are 0 (top_contributors never lists zeros).

    Only for ranking: its `total()` is no longer the root's value."""
    t = attribution.root.position
    here = flt.position_ok(t)  # features, skips, errors and MLPs are read at the root's token
    features: dict[int, Tensor] = {}
    for layer, values in attribution.features.items():
        if not (here and flt.layer_ok(layer)):
            values = torch.zeros_like(values)
        elif flt.features is not None:
            mask = torch.zeros_like(values, dtype=torch.bool)
            ids = [i for i in flt.features if 0 <= i < values.numel()]
            mask[ids] = True
            values = torch.where(mask, values, torch.zeros_like(values))
        features[layer] = values
    heads = attribution.heads.clone()
    for layer in range(heads.shape[0]):
        if not flt.layer_ok(layer):
            heads[layer] = 0.0
    if flt.positions is not None:
        sources = torch.zeros(heads.shape[-1], dtype=torch.bool, device=heads.device)
        sources[[s for s in flt.positions if 0 <= s < heads.shape[-1]]] = True
        heads[..., ~sources] = 0.0

    def scalars(values: dict[int, float]) -> dict[int, float]:
        return {layer: v for layer, v in values.items() if here and flt.layer_ok(layer)}

    return dataclasses.replace(
        attribution,
        features=features,
        heads=heads,
        skips=scalars(attribution.skips),
        tc_errors=scalars(attribution.tc_errors),
        mlps=scalars(attribution.mlps),
        embedding=attribution.embedding if here else 0.0,
    )


# -- beam search ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    """Nodes from the root's direct contributor (nodes[0]) backwards to the deepest (nodes[-1]);
    `value` is the deepest node's contribution, in the root's units."""

    nodes: tuple[Contributor, ...]
    value: float

    @property
    def labels(self) -> list[str]:
        return [node.label for node in self.nodes]

    def __len__(self) -> int:
        return len(self.nodes)

    def __str__(self) -> str:
        return f"{' <- '.join(self.labels)}: {self.value:+.4g}"


def filter_paths(paths: Iterable[Path], flt: PathFilter) -> list[Path]:
    """The paths all of whose nodes `flt` accepts."""
    return [path for path in paths if all(flt.accepts(node) for node in path.nodes)]


@torch.no_grad()
def beam_search(
    ctx: AttributionContext,
    root: Root,
    n_iterations: int = 3,
    n_branches: int = 15,
    path_filter: PathFilter | None = None,
    per_node: int | None = None,
) -> list[Path]:
    """Backward paths from `root` (module docstring, steps 1-3), largest |value| first.

    `per_node` (default `n_branches`): how many contributors of each expanded node compete for
    the beam."""
    if n_iterations < 1 or n_branches < 1:
        raise ValueError(f"need n_iterations >= 1 and n_branches >= 1; got {n_iterations}, {n_branches}")
    flt = path_filter or PathFilter()
    k = per_node or n_branches

    def ranked(attribution: Attribution) -> list[Contributor]:
        return top_contributors(_allowed(attribution, flt), k=k, kinds=flt.kinds)

    root_attribution = attribute(ctx, root)
    # the beam: (path, the attribution its last node is a contributor of)
    beam = [(Path((c,), c.value), root_attribution) for c in ranked(root_attribution)][:n_branches]
    found = [path for path, _ in beam]
    for _ in range(n_iterations - 1):
        candidates: list[tuple[Path, Attribution]] = []
        for path, parent in beam:
            last = path.nodes[-1]
            if not last.expandable:
                continue
            child = attribute(ctx, child_root(ctx, parent, last))
            candidates += [(Path((*path.nodes, c), c.value), child) for c in ranked(child)]
        candidates.sort(key=lambda item: abs(item[0].value), reverse=True)
        beam = candidates[:n_branches]
        if not beam:
            break
        found += [path for path, _ in beam]
    found.sort(key=lambda path: abs(path.value), reverse=True)
    return filter_paths(found, flt)


# -- the graph --------------------------------------------------------------------------------------


@dataclass
class Node:
    """A graph node. kind: "root", a contributor kind, or an error kind (`ERROR_KINDS`).

    `layer`, `sublayer`: the residual point it reads (None for leaves and errors); `index`: feature
    id or head; `position`: the token its input is read at; `value` + `offset` = `total` (module
    docstring); `activation`: a feature's z; `expanded`: whether its in-edges were computed."""

    node_id: str
    kind: str
    layer: int | None = None
    index: int | None = None
    position: int | None = None
    sublayer: str | None = None
    value: float = 0.0
    offset: float = 0.0
    activation: float | None = None
    expanded: bool = False
    parent: str | None = None  # the node an error node belongs to

    @property
    def total(self) -> float:
        return self.value + self.offset

    @property
    def is_error(self) -> bool:
        return self.kind in ERROR_KINDS


@dataclass(frozen=True)
class Edge:
    source: str  # the child (writer)
    target: str  # the parent (reader)
    weight: float  # the child's direct contribution to the parent, in the root's units


@dataclass
class Graph:
    root: Root
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    @property
    def root_id(self) -> str:
        return self.root.label

    def in_edges(self, node_id: str) -> list[Edge]:
        return [edge for edge in self.edges if edge.target == node_id]

    def out_edges(self, node_id: str) -> list[Edge]:
        return [edge for edge in self.edges if edge.source == node_id]

    def is_error_edge(self, edge: Edge) -> bool:
        return self.nodes[edge.source].is_error


def _point(kind: str, layer: int, sublayer: str | None = None) -> tuple[int, int]:
    """Order of residual points: a child's point is always strictly before its parent's."""
    if kind == "root":
        return (layer, 1 if sublayer == "resid_mid" else 0)
    return (layer, 0 if kind == "head" else 1)  # heads read resid_pre; features and skips resid_mid


def _entry(attribution: Attribution, node: Contributor) -> float:
    """The contribution of `node` (kind, layer, index, position) in another attribution."""
    a = attribution
    match node.kind:
        case "feature":
            return float(a.features[node.layer][node.index]) if node.layer in a.features else 0.0
        case "head":
            return float(a.heads[node.layer, node.index, node.position]) if node.layer < len(a.heads) else 0.0
        case "skip":
            return a.skips.get(node.layer, 0.0)
        case "embedding":
            return a.embedding
        case "tc_error":
            return a.tc_errors.get(node.layer, 0.0)
        case "mlp":
            return a.mlps.get(node.layer, 0.0)
    raise ValueError(f"{node.label} cannot be a graph node")


@torch.no_grad()
def build_graph(
    ctx: AttributionContext, root: Root, paths: Iterable[Path], split_fraction: float = 0.05
) -> Graph:
    """Merge `paths` into a DAG with exact edges and error nodes (module docstring, Graph)."""
    graph = Graph(root)
    root_id = root.label
    children: dict[str, dict[str, Contributor]] = {root_id: {}}
    templates: dict[str, Contributor] = {}
    for path in paths:
        parent = root_id
        for node in path.nodes:
            if node.label == root_id:
                raise ValueError(f"a path node has the root's label {root_id!r}")
            children.setdefault(parent, {})[node.label] = node
            templates.setdefault(node.label, node)
            parent = node.label

    graph.nodes[root_id] = Node(root_id, "root", root.layer, None, root.position, root.sublayer)
    merged: dict[str, Root] = {root_id: root}  # summed child roots, in the root's units
    leaf_totals: dict[str, float] = {}

    def order(node_id: str) -> tuple[int, int, str]:
        # the label breaks ties, so the graph (and its JSON) does not depend on set iteration order
        if node_id == root_id:
            return (*_point("root", root.layer, root.sublayer), node_id)
        return (*_point(templates[node_id].kind, int(templates[node_id].layer)), node_id)

    for node_id in sorted(merged.keys() | {t for t in templates if templates[t].expandable}, key=order)[::-1]:
        node_root = merged[node_id]
        node = graph.nodes.get(node_id) or _path_node(ctx, templates[node_id], node_root)
        graph.nodes[node_id] = node
        node.offset = node_root.offset
        kept = children.get(node_id, {})
        if not kept:  # a graph leaf: its value, no decomposition
            node.value = root_value(ctx, node_root)
            continue
        attribution = attribute(ctx, node_root)
        node.value, node.expanded = attribution.value, True
        kept_total = 0.0
        for child_id, template in kept.items():
            weight = _entry(attribution, template)
            graph.edges.append(Edge(child_id, node_id, weight))
            kept_total += weight
            if template.expandable:
                contributor = dataclasses.replace(template, value=weight)
                child = child_root(ctx, attribution, contributor)
                previous = merged.get(child_id)
                if previous is not None:
                    child = dataclasses.replace(
                        previous, vector=previous.vector + child.vector, offset=previous.offset + child.offset
                    )
                merged[child_id] = child
            else:
                leaf_totals[child_id] = leaf_totals.get(child_id, 0.0) + weight
        _add_error_nodes(graph, node, attribution, kept, kept_total, split_fraction)

    for leaf_id, total in leaf_totals.items():
        template = templates[leaf_id]
        graph.nodes[leaf_id] = Node(
            leaf_id, template.kind, template.layer, template.index, template.position, value=total
        )
    return graph


def _path_node(ctx: AttributionContext, template: Contributor, node_root: Root) -> Node:
    activation = None
    if template.kind == "feature":
        activation = float(ctx.feature_acts[template.layer][node_root.position, template.index])
    return Node(
        template.label,
        template.kind,
        template.layer,
        template.index,
        template.position,
        node_root.sublayer,
        activation=activation,
    )


def _add_error_nodes(
    graph: Graph,
    node: Node,
    attribution: Attribution,
    kept: dict[str, Contributor],
    kept_total: float,
    split_fraction: float,
) -> None:
    """rest / emb / err / bias nodes so that the node's in-edges sum to value + offset."""
    kinds = {template.kind: template for template in kept.values()}
    embedding = 0.0 if "embedding" in kinds else attribution.embedding
    errors = sum(v for layer, v in attribution.tc_errors.items() if f"err_tc{layer}" not in _prefixes(kept))
    errors += sum(v for layer, v in attribution.mlps.items() if f"mlp{layer}" not in _prefixes(kept))
    bias = attribution.bias + node.offset
    # everything not kept; the offset is not part of the attribution total, so add it here
    rest = attribution.total() - kept_total + node.offset
    threshold = split_fraction * abs(attribution.value)
    for kind, name, term in (
        ("emb_rest", "emb", embedding),
        ("err_rest", "err", errors),
        ("bias_rest", "bias", bias),
    ):
        if term != 0.0 and abs(term) > threshold:
            _error_edge(graph, node, kind, f"{name}({node.node_id})", term)
            rest -= term
    _error_edge(graph, node, "rest", f"rest({node.node_id})", rest)


def _prefixes(kept: dict[str, Contributor]) -> set[str]:
    return {label.split("@")[0] for label in kept}


def _error_edge(graph: Graph, node: Node, kind: str, node_id: str, weight: float) -> None:
    graph.nodes[node_id] = Node(node_id, kind, position=node.position, value=weight, parent=node.node_id)
    graph.edges.append(Edge(node_id, node.node_id, weight))


def fraction_explained(graph: Graph) -> float:
    """Σ kept (non-error) in-edges of the root / the root's value v·LN(x)."""
    root = graph.nodes[graph.root_id]
    kept = sum(edge.weight for edge in graph.in_edges(graph.root_id) if not graph.is_error_edge(edge))
    return kept / root.value if root.value != 0.0 else float("nan")


def edge_weights(graph: Graph) -> Float[Tensor, " n_edges"]:
    """The edge weights in `graph.edges` order (float64)."""
    return torch.tensor([edge.weight for edge in graph.edges], dtype=torch.float64)


__all__ = [
    "ERROR_KINDS",
    "LEAF_KINDS",
    "PATH_LEAF_KINDS",
    "Edge",
    "Graph",
    "Node",
    "Path",
    "PathFilter",
    "beam_search",
    "build_graph",
    "edge_weights",
    "filter_paths",
    "fraction_explained",
]


def source_layer_graph(ctx: AttributionContext, root: Root, source_layer: int) -> tuple[Graph, int]:
    """The graph of every active feature of transcoder `source_layer` at the root's token, kept
    directly and through every head of the root's attention layer at that token, and how many
    features it holds. For a resid_mid root of layer `source_layer + 1` these are all the routes
    from those features to the root, so with attention patterns and LayerNorm scales frozen each
    feature's total effect in the graph is exactly the root's change when it is ablated."""
    attribution = attribute(ctx, root)
    t = root.position
    active = (ctx.feature_acts[source_layer][t] > 0).nonzero()[:, 0].tolist()
    features = [
        Contributor("feature", float(attribution.features[source_layer][i]), source_layer, i, t)
        for i in active
    ]
    heads = [
        Contributor("head", float(attribution.heads[root.layer, h, t]), root.layer, h, t)
        for h in range(ctx.model.cfg.n_heads)
    ]
    paths = [Path((f,), f.value) for f in features]
    paths += [Path((h, f), 0.0) for h in heads if h.value != 0.0 for f in features]
    return build_graph(ctx, root, paths), len(features)
