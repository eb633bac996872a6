"""Full attribution graphs (every active feature, every error, every token) and their pruning, as
circuit-tracer 0.5.0 defines them (docs/design.md §5.6), beside the lab's beam search (paths.py).

Setting and linearisation: those of attribution.py (read its module docstring; per-layer transcoders
or a cross-layer transcoder, as replacement.py presents them). Attention patterns
and every LayerNorm scale are frozen at the clean run's values; transcoder feature activations,
transcoder errors and MLPs without a transcoder are *sources* (no gradient passes through an MLP's
nonlinearity); a skip-transcoder's skip term LN2(x) W_skip is linear, so the gradient passes
through it, as in circuit-tracer (`skip + (acts - skip).detach()`). With these freezes the model is
linear in the residual stream, and the *direct effect* of source s on target t is
    A[t, s] = (source's output vector) · (gradient of t's value w.r.t. that output),
the gradient taken in the linearised model (through frozen attention OV circuits, the residual
stream and skip terms only).

Nodes, in circuit-tracer's order (rows are targets, columns sources: A[target, source]):
    [active features (layer, position, feature), sorted | error (layer, position), layer-major |
     embedding (position) | targets]
- a feature node is every (layer, position, feature) with a non-zero activation z (layer: the
  source layer whose MLP input it reads; a CLT feature is one node, whatever MLPs it writes to);
- the error node of (layer, position) is `mlp_out - reconstruction` of MLP `layer` there
  (`ctx.tc_errors`; with a CLT the reconstruction sums the decoders of every layer <= `layer`); at a
  layer without a transcoder it is the whole MLP output (an MLP with no features is all error);
- the embedding node of a position is W_E[token] + W_pos[position] (circuit-tracer's embedding
  node is W_E[token] alone and its positional embedding is a non-node bias; the lab's roots count
  both as the embedding, so we do too);
- targets: by default circuit-tracer's salient logits at the last position (the most probable
  tokens until their cumulative probability reaches `desired_logit_prob`, at most
  `max_n_logits`), each read as the demeaned unembedding W_U[:, tok] - mean_vocab(W_U) (logit
  minus the mean logit) and weighted by its probability; or any of the lab's roots (a logit
  difference, a vector at a residual point) with weights of one's choosing (`root_target`).

Algorithm (`full_graph`):
1. Rows to compute: one per feature node (the root `feature_root(ctx, layer, feature, position)`:
   value = pre-activation - effective encoder bias) and one per target. Error and embedding rows
   are zero (they have no inputs in the replacement model).
2. Freeze each row's LayerNorm (`frozen_vector`): u = (v - mean v) / scale at its residual point.
3. Pull back a batch of rows at once (`pullback_rows`): a gradient G [batch, pos, d_model] starts at
   zero above the highest row and walks down the residual points resid_pre n, resid_mid n-1,
   resid_pre n-1, ..., resid_pre 0. At each point the rows read there are injected (G[b, t_b] +=
   u_b); between points:
   - MLP l (from resid_pre l+1 down to resid_mid l): record the sources MLP l writes at every
     position p: feature i of every feature layer k writing into MLP l (k = l for a per-layer
     transcoder, every k <= l for a CLT): z_i[p] (W_dec[k -> l][i]·G[b, p]), *added* to the
     feature's entry, so a CLT feature's edge sums its decoders into the MLPs below the row (G is
     still zero for the row at the MLPs at or above its layer); error: error_l[p]·G[b, p]; the
     output bias b_dec_out_l·Σ_p G[b, p] goes to the row's non-node bias. Then the skip term, if any:
     G += LN2-backward(G W_skip^T), LN-backward(w) = (w - mean w) / scale (frozen scale).
   - attention l (from resid_mid l down to resid_pre l): G[s] += LN1-backward(Σ_h Σ_t A[l,h,t,s]
     W_V^h W_O^h G[t]); the attention bias (b_O + Σ_h b_V^h W_O^h)·Σ_t G[t] goes to the bias (the
     patterns sum to 1 over sources).
   At the bottom, the embedding column of position p is embed[p]·G[b, p].
4. Completeness: each computed row's entries plus its bias equal its value v·LN(x) (the quantity
   `frozen_vector` returns), because step 3 expands the residual at the row's point into all its
   writers exactly (tested to 1e-4 relative).

Pruning and scores (circuit-tracer's graph.py definitions, our own code):
- normalised matrix N = |A| with each row divided by its sum (rows summing to 0 stay 0);
- influence of every node on the targets: w N + w N^2 + ... = w ((I - N)^-1 - I), w the target
  weights (zero outside the target rows); the series is finite since the graph is a DAG;
- `prune_graph`: keep the nodes with the largest influence until `node_threshold` of the total
  (the cut is the score at which the cumulative share first reaches the threshold; ties kept),
  and always the embeddings and targets; zero the rest out of A; edge scores = N' * (influence' +
  w)[:, None] on the pruned, re-normalised N'; keep edges down to `edge_threshold` of the total
  score the same way; then repeatedly drop feature and error nodes without kept out-edges and
  feature nodes without kept in-edges (and their edges) until nothing changes;
- `graph_scores`: replacement score = influence of the embeddings / influence of embeddings and
  errors; completeness score = Σ_nodes (1 - Σ_errors N[node, error]) (influence + w)[node] /
  Σ (influence + w).

Checked once by hand against circuit-tracer 0.5.0 (its own venv; it cannot join ours), on the
2-layer organism with random ReLU transcoders exported by circuit_tracer.export, 16 tokens, its 3
top logits: feature-to-feature and feature-to-logit edges and edges from errors (positions > 0)
agree to 3.4e-7 of the largest entry; on circuit-tracer's own adjacency, `prune_graph` gives the
same node and edge masks and `graph_scores` the same scores (identical in float32). Differences
by design: circuit-tracer zeroes features at position 0 (BOS; here they are nodes, so its BOS
error node holds them) and its embedding node lacks W_pos.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from transcoder_lab.circuits.attribution import (
    AttributionContext,
    Root,
    feature_root,
    frozen_vector,
)
from transcoder_lab.circuits.replacement import decoders_into

_F64 = torch.float64


# -- targets -----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GraphTarget:
    """A target row: a root (read at any residual point) and its weight in the influence."""

    root: Root
    weight: float
    token: int | None = None  # the vocabulary index, for logit targets

    @property
    def label(self) -> str:
        return self.root.label


def root_target(root: Root, weight: float = 1.0) -> GraphTarget:
    """Any of the lab's roots (`logit_diff_root`, `vector_root`, ...) as a graph target."""
    return GraphTarget(root, float(weight))


@torch.no_grad()
def logit_targets(
    ctx: AttributionContext,
    tokens: Sequence[int] | None = None,
    max_n_logits: int = 10,
    desired_logit_prob: float = 0.95,
    position: int = -1,
) -> list[GraphTarget]:
    """circuit-tracer's logit targets at `position`: `tokens`, or the most probable tokens until
    their cumulative probability reaches `desired_logit_prob` (at most `max_n_logits`). Each is
    the demeaned unembedding column (logit minus mean logit; offset: b_U[tok] - mean b_U) at the
    final residual, weighted by its probability."""
    model = ctx.model
    t = ctx.position(position)
    probs = torch.softmax(ctx.logits[t].to(_F64), dim=-1)
    if tokens is None:
        top_p, top_idx = probs.topk(min(max_n_logits, probs.numel()))
        cutoff = int(torch.searchsorted(top_p.cumsum(0), top_p.new_tensor(desired_logit_prob))) + 1
        tokens = top_idx[:cutoff].tolist()
    W_U = model.W_U.detach().to(_F64)
    b_U = model.b_U.detach().to(_F64)
    W_mean, b_mean = W_U.mean(dim=1), b_U.mean()
    targets = []
    for tok in tokens:
        vector = (W_U[:, tok] - W_mean).to(ctx.embed.device)
        root = Root(ctx.n_layers, "resid_pre", t, vector, f"logit[{tok}]@{t}", float(b_U[tok] - b_mean))
        targets.append(GraphTarget(root, float(probs[tok]), int(tok)))
    return targets


# -- the graph ---------------------------------------------------------------------------------------


@dataclass(eq=False)
class FullGraph:
    """A dense attribution graph: nodes [features | errors | embeddings | targets] (module docstring).

    `values[k]` is row k's value v·LN(x) and `biases[k]` the part of it from non-node biases
    (attention and transcoder output biases), so A[k].sum() + biases[k] = values[k] for feature
    and target rows (0 for error and embedding rows, which have no inputs).
    """

    n_layers: int
    n_pos: int
    active_features: Int[Tensor, "n_features 3"]  # (layer, position, feature)
    activations: Float[Tensor, " n_features"]
    targets: list[GraphTarget]
    adjacency: Float[Tensor, "n_nodes n_nodes"]  # [target, source], float64
    values: Float[Tensor, " n_nodes"]
    biases: Float[Tensor, " n_nodes"]

    @property
    def n_features(self) -> int:
        return int(self.active_features.shape[0])

    @property
    def n_errors(self) -> int:
        return self.n_layers * self.n_pos

    @property
    def n_targets(self) -> int:
        return len(self.targets)

    @property
    def n_nodes(self) -> int:
        return self.n_features + self.n_errors + self.n_pos + self.n_targets

    @property
    def error_slice(self) -> slice:
        return slice(self.n_features, self.n_features + self.n_errors)

    @property
    def embedding_slice(self) -> slice:
        start = self.n_features + self.n_errors
        return slice(start, start + self.n_pos)

    @property
    def target_slice(self) -> slice:
        return slice(self.n_nodes - self.n_targets, self.n_nodes)

    @property
    def target_weights(self) -> Float[Tensor, " n_nodes"]:
        """w: the targets' weights in their rows, zero elsewhere."""
        w = torch.zeros(self.n_nodes, dtype=self.adjacency.dtype, device=self.adjacency.device)
        w[self.target_slice] = torch.tensor([t.weight for t in self.targets], dtype=w.dtype)
        return w

    def error_index(self, layer: int, position: int) -> int:
        return self.n_features + layer * self.n_pos + position

    def embedding_index(self, position: int) -> int:
        return self.n_features + self.n_errors + position

    def feature_index(self, layer: int, position: int, feature: int) -> int:
        hit = (self.active_features == torch.tensor([layer, position, feature])).all(dim=1).nonzero()
        if hit.numel() == 0:
            raise KeyError(f"tc{layer}[{feature}]@{position} is not an active feature")
        return int(hit[0, 0])

    def node_labels(self) -> list[str]:
        features = [f"tc{lay}[{f}]@{p}" for lay, p, f in self.active_features.tolist()]
        errors = [f"err{lay}@{p}" for lay in range(self.n_layers) for p in range(self.n_pos)]
        embeddings = [f"emb@{p}" for p in range(self.n_pos)]
        return features + errors + embeddings + [t.label for t in self.targets]


def active_feature_table(
    ctx: AttributionContext,
) -> tuple[Int[Tensor, "n_features 3"], Float[Tensor, " n_features"]]:
    """Every (layer, position, feature) with a non-zero activation, sorted, and the activations."""
    rows, values = [], []
    for layer, z in ctx.feature_acts.items():
        position, feature = (z != 0).nonzero(as_tuple=True)
        rows.append(torch.stack([torch.full_like(position, layer), position, feature], dim=1).cpu())
        values.append(z[position, feature].detach().to(_F64).cpu())
    if not rows:
        return torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, dtype=_F64)
    table, acts = torch.cat(rows), torch.cat(values)
    # sort by (layer, position, feature): the order circuit-tracer's sparse activation matrix gives
    key = (table[:, 0] * ctx.n_pos + table[:, 1]) * (table[:, 2].max() + 1) + table[:, 2]
    order = key.argsort()
    return table[order], acts[order]


def _point_index(root: Root) -> int:
    """Residual points in forward order: resid_pre L -> 2L, resid_mid L -> 2L + 1."""
    return 2 * root.layer + (root.sublayer == "resid_mid")


def _attention_pullback_weights(
    ctx: AttributionContext, layer: int, device: torch.device
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Layer `layer`'s OV weights in float64, shaped for `pullback_rows`: W_O as [d_model, head x
    d_head] (G @ it = W_O^h G per head), W_V as [head x d_head, d_model] with each column's mean over
    d_model removed (so Z @ it is already LN-backward centred), b_V, b_O and W_O [head, d_head, d_model]."""
    attn = ctx.model.blocks[layer].attn
    W_V, W_O = attn.W_V.detach().to(device, _F64), attn.W_O.detach().to(device, _F64)
    b_V, b_O = attn.b_V.detach().to(device, _F64), attn.b_O.detach().to(device, _F64)
    n_heads, d_head, d_model = W_O.shape
    W_O2 = W_O.reshape(n_heads * d_head, d_model).T
    W_V2 = (W_V - W_V.mean(dim=1, keepdim=True)).permute(0, 2, 1).reshape(n_heads * d_head, d_model)
    return W_O2, W_V2, b_V, b_O, W_O


@torch.no_grad()
def pullback_rows(
    ctx: AttributionContext,
    roots: Sequence[Root],
    active_features: Int[Tensor, "n_features 3"],
    activations: Float[Tensor, " n_features"],
) -> tuple[Float[Tensor, "batch n_sources"], Float[Tensor, " batch"], Float[Tensor, " batch"]]:
    """(A rows over the source columns [features | errors | embeddings], non-node bias, value) for
    a batch of roots, in one walk down the residual stream (module docstring, steps 2-3)."""
    model, n, n_pos = ctx.model, ctx.n_layers, ctx.n_pos
    device = ctx.embed.device
    n_feat = int(active_features.shape[0])
    n_cols = n_feat + n * n_pos + n_pos
    B = len(roots)
    rows = torch.zeros(B, n_cols, dtype=_F64, device=device)
    bias = torch.zeros(B, dtype=_F64, device=device)
    values = torch.zeros(B, dtype=_F64, device=device)
    G = torch.zeros(B, n_pos, model.cfg.d_model, dtype=_F64, device=device)

    # the frozen vectors, grouped by the residual point they are injected at
    injections: dict[int, list[tuple[int, int, Tensor]]] = {}
    for b, root in enumerate(roots):
        t = ctx.position(root.position)
        if t != root.position:
            root = Root(root.layer, root.sublayer, t, root.vector, root.label, root.offset)
        ctx._check_point(root.layer, root.sublayer)
        u, _, value = frozen_vector(ctx, root, "centered")
        values[b] = value
        injections.setdefault(_point_index(root), []).append((b, t, u))

    def inject(point: int) -> None:
        for b, t, u in injections.get(point, []):
            G[b, t] += u

    layer_of, pos_of = active_features[:, 0].to(device), active_features[:, 1].to(device)
    feat_of = active_features[:, 2].to(device)
    acts = activations.to(device, _F64)
    top = max(injections) if injections else -1

    inject(2 * n)
    for layer in reversed(range(n)):
        if 2 * layer > top:  # nothing injected at or above resid_pre layer: G is still zero
            continue
        # MLP layer: its sources read the gradient at resid_pre layer+1 (= G now)
        tc = ctx.transcoders.get(layer)
        error = ctx.tc_errors[layer] if tc is not None else ctx.mlp_out[layer]
        start = n_feat + layer * n_pos
        rows[:, start : start + n_pos] = torch.einsum("bpd,pd->bp", G, error.to(device, _F64))
        # every feature layer writing into MLP `layer`: its own transcoder, or with a CLT the
        # slices of layers 0..layer, whose features thus collect one term per decoder
        for source, W_dec in decoders_into(ctx.transcoders, layer):
            in_layer = (layer_of == source).nonzero()[:, 0]
            for p in pos_of[in_layer].unique().tolist():
                cols = in_layer[pos_of[in_layer] == p]
                # the decoder rows of this position's active features only (no full W_dec copy)
                decoders = W_dec[feat_of[cols].to(W_dec.device)].to(device, _F64)
                rows[:, cols] += acts[cols] * (G[:, p] @ decoders.T)
        if tc is not None:
            bias += G.sum(dim=1) @ tc.b_dec_out.detach().to(device, _F64)
            if tc.W_skip is not None:
                through = G @ tc.W_skip.detach().to(device, _F64).T  # d(skip out)/d(LN2 output)
                through = through - through.mean(dim=-1, keepdim=True)
                G = G + through / ctx.ln_mid_scale[layer][None, :, None]
        inject(2 * layer + 1)
        # attention layer: values read LN1(x) at every source, patterns frozen
        W_O2, W_V2, b_V, b_O, W_O = _attention_pullback_weights(ctx, layer, device)
        G_sum = G.sum(dim=1)  # [batch, d_model]
        bias += G_sum @ b_O + torch.einsum("he,hed,bd->b", b_V, W_O, G_sum)
        n_heads, d_head = W_O.shape[:2]
        flat = G.view(B * n_pos, -1)  # G is contiguous: updated in place below
        Y = (flat @ W_O2).view(B, n_pos, n_heads, d_head)  # W_O^h G[t], per destination and head
        # patterns / LN1 scale of the source (the LN-backward's division, moved onto the patterns)
        mix = ctx.patterns[layer].to(device, _F64) / ctx.ln_pre_scale[layer].to(device, _F64)
        Z = torch.einsum("hts,bthe->bshe", mix, Y).reshape(B * n_pos, n_heads * d_head)
        flat.addmm_(Z, W_V2)  # W_V2 is centred over d_model: the LN-backward's mean subtraction
        inject(2 * layer)
    rows[:, n_feat + n * n_pos :] = torch.einsum("bpd,pd->bp", G, ctx.embed.to(device, _F64))
    return rows, bias, values


@torch.no_grad()
def full_graph(
    ctx: AttributionContext,
    targets: Sequence[GraphTarget] | None = None,
    batch_size: int = 256,
    max_n_logits: int = 10,
    desired_logit_prob: float = 0.95,
) -> FullGraph:
    """The full graph of `ctx`'s prompt (module docstring, steps 1-3); `targets` default to
    circuit-tracer's salient logits at the last position (`logit_targets`)."""
    if targets is None:
        targets = logit_targets(ctx, max_n_logits=max_n_logits, desired_logit_prob=desired_logit_prob)
    targets = list(targets)
    table, acts = active_feature_table(ctx)
    n_feat, n_pos = int(table.shape[0]), ctx.n_pos
    n_nodes = n_feat + (ctx.n_layers + 1) * n_pos + len(targets)
    device = ctx.embed.device
    adjacency = torch.zeros(n_nodes, n_nodes, dtype=_F64, device=device)
    values = torch.zeros(n_nodes, dtype=_F64, device=device)
    biases = torch.zeros(n_nodes, dtype=_F64, device=device)
    n_sources = n_nodes - len(targets)

    row_ids = list(range(n_feat)) + list(range(n_sources, n_nodes))
    roots = [feature_root(ctx, lay, f, p) for lay, p, f in table.tolist()] + [t.root for t in targets]
    for start in range(0, len(roots), batch_size):
        ids = torch.tensor(row_ids[start : start + batch_size], device=device)
        rows, bias, value = pullback_rows(ctx, roots[start : start + batch_size], table, acts)
        adjacency[ids, :n_sources] = rows
        biases[ids], values[ids] = bias, value
    return FullGraph(ctx.n_layers, n_pos, table, acts, targets, adjacency, values, biases)


# -- influence, pruning, scores ---------------------------------------------------------------------


def normalize_matrix(matrix: Float[Tensor, "n n"]) -> Float[Tensor, "n n"]:
    """|A| with each row scaled to sum to 1 (rows of zeros stay zero)."""
    absolute = matrix.abs()
    return absolute / absolute.sum(dim=1, keepdim=True).clamp(min=1e-10)


def compute_influence(
    normalized: Float[Tensor, "n n"], weights: Float[Tensor, " n"], max_iter: int = 1000
) -> Float[Tensor, " n"]:
    """w N + w N^2 + ...: the series ends because N is nilpotent (the graph is a DAG); summing it
    term by term keeps exact zeros exact, so the loop stops at the graph's depth."""
    term = weights @ normalized
    influence = term.clone()
    for _ in range(max_iter):
        if not term.any():
            return influence
        term = term @ normalized
        influence += term
    raise RuntimeError(f"influence did not converge in {max_iter} iterations: is the graph acyclic?")


def node_influence(graph: FullGraph) -> Float[Tensor, " n_nodes"]:
    """Every node's influence on the weighted targets (targets themselves: their own in-flow only)."""
    return compute_influence(normalize_matrix(graph.adjacency), graph.target_weights)


def edge_influence(pruned: Float[Tensor, "n n"], weights: Float[Tensor, " n"]) -> Float[Tensor, "n n"]:
    """Edge scores N'[t, s] (influence'[t] + w[t]) on a (node-pruned) adjacency."""
    normalized = normalize_matrix(pruned)
    influence = compute_influence(normalized, weights) + weights
    return normalized * influence[:, None]


def find_threshold(scores: Float[Tensor, " k"], threshold: float) -> Tensor:
    """The score at which the descending cumulative share of `scores` first reaches `threshold`."""
    ordered = scores.sort(descending=True).values
    share = ordered.cumsum(0) / ordered.sum()
    index = int(torch.searchsorted(share, torch.tensor(threshold, dtype=share.dtype, device=share.device)))
    return ordered[min(index, ordered.numel() - 1)]  # threshold 1.0 can land past the end


@dataclass(frozen=True)
class PruneResult:
    node_mask: Bool[Tensor, " n_nodes"]
    edge_mask: Bool[Tensor, "n_nodes n_nodes"]
    cumulative_scores: Float[Tensor, " n_nodes"]  # each node's cumulative influence share


def prune_graph(graph: FullGraph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> PruneResult:
    """circuit-tracer's pruning by influence (module docstring)."""
    for name, value in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1]; got {value}")
    weights = graph.target_weights
    influence = node_influence(graph)
    node_mask = influence >= find_threshold(influence, node_threshold)
    always = graph.n_nodes - graph.n_targets - graph.n_pos  # embeddings and targets from here on
    node_mask[always:] = True

    pruned = graph.adjacency.clone()
    pruned[~node_mask] = 0
    pruned[:, ~node_mask] = 0
    scores = edge_influence(pruned, weights)
    edge_mask = scores >= find_threshold(scores.flatten(), edge_threshold)

    n_feat = graph.n_features

    def strand(node_mask: Tensor) -> None:
        node_mask[:always] &= edge_mask[:, :always].any(dim=0)  # features and errors need an out-edge
        node_mask[:n_feat] &= edge_mask[:n_feat].any(dim=1)  # features need an in-edge

    before = node_mask.clone()
    strand(node_mask)
    while not torch.equal(node_mask, before):  # dropping a node can strand others: until stable
        before = node_mask.clone()
        edge_mask[~node_mask] = False
        edge_mask[:, ~node_mask] = False
        strand(node_mask)

    ordered, order = influence.sort(descending=True)
    cumulative = torch.zeros_like(influence)
    cumulative[order] = ordered.cumsum(0) / ordered.sum()
    return PruneResult(node_mask, edge_mask, cumulative)


def graph_scores(graph: FullGraph) -> tuple[float, float]:
    """(replacement score, completeness score), circuit-tracer's `compute_graph_scores`."""
    weights = graph.target_weights
    normalized = normalize_matrix(graph.adjacency)
    influence = compute_influence(normalized, weights)
    errors, embeddings = graph.error_slice, graph.embedding_slice
    token_influence = influence[embeddings].sum()
    error_influence = influence[errors].sum()
    replacement = token_influence / (token_influence + error_influence)
    non_error = 1 - normalized[:, errors].sum(dim=1)
    output_influence = influence + weights
    completeness = (non_error * output_influence).sum() / output_influence.sum()
    return float(replacement), float(completeness)


def graph_summary(graph: FullGraph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> dict:
    """What a report states about a full graph: its size, what `prune_graph` keeps at the given
    thresholds (circuit-tracer's defaults), and `graph_scores` (of the whole, unpruned graph)."""
    replacement, completeness = graph_scores(graph)
    kept = prune_graph(graph, node_threshold, edge_threshold)
    return {
        "n_tokens": graph.n_pos,
        "n_active_features": graph.n_features,
        "n_nodes": graph.n_nodes,
        "n_nodes_kept": int(kept.node_mask.sum()),
        "n_edges_kept": int(kept.edge_mask.sum()),
        "node_threshold": node_threshold,
        "edge_threshold": edge_threshold,
        "targets": [target.label for target in graph.targets],
        "replacement_score": replacement,
        "completeness_score": completeness,
    }
