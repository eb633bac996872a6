"""Full attribution graphs (circuits.full_graph): completeness, agreement of the adjacency with
autograd through the spliced model, circuit-tracer's logit targets, influence, pruning and scores.

The models and transcoders here are float64 (random processed models from test_attribution, with
LayerNorm weights and biases everywhere, transcoders with non-zero biases), so the identities hold
to ~1e-12 and the 1e-4 tolerances asked for leave a wide margin while still catching any missing
path (a missing path is O(1) of a row). Small widths (d_sae 32, 8 tokens) keep the graphs at a few
hundred nodes; torch runs single-threaded here, which is much faster for these tiny products.
"""

import pytest
import torch

from transcoder_lab.circuits import AttributionContext, attribute, logit_diff_root
from transcoder_lab.circuits.full_graph import (
    FullGraph,
    compute_influence,
    full_graph,
    graph_scores,
    graph_summary,
    logit_targets,
    node_influence,
    normalize_matrix,
    prune_graph,
    root_target,
)
from transcoder_lab.dictionaries import Dictionary, DictionarySpec
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook
from transcoder_lab.standins.gpt2 import gpt2_shaped_config

from helpers.circuit_models import SMALL, random_processed_model, random_transcoder

REL = 1e-4
N_POS = 8
D_SAE = 32


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def f64_model(seed: int = 1, **overrides):
    config = gpt2_shaped_config(seed=seed, **{**SMALL, **overrides})
    config.dtype = torch.float64
    return random_processed_model(config, seed=seed)


def tokens(seed: int = 3) -> torch.Tensor:
    return torch.randint(0, SMALL["d_vocab"], (N_POS,), generator=torch.Generator().manual_seed(seed))


def f64_transcoder(layer: int, seed: int, **kwargs) -> Dictionary:
    return random_transcoder(layer, SMALL["d_model"], D_SAE, seed=seed, **kwargs).double()


@pytest.fixture(scope="module")
def all_ctx():
    """A ReLU transcoder on every layer, a skip-transcoder at layer 1."""
    tcs = {layer: f64_transcoder(layer, 10 + layer, skip=layer == 1) for layer in range(SMALL["n_layers"])}
    return AttributionContext.from_tokens(f64_model(), tcs, tokens())


@pytest.fixture(scope="module")
def mixed_ctx():
    """ReLU at 0, TopK skip-transcoder at 1, no transcoder at 2 (its MLP is an error node), ReLU at 3."""
    tcs = {
        0: f64_transcoder(0, 20),
        1: f64_transcoder(1, 21, architecture="topk", k=6, skip=True),
        3: f64_transcoder(3, 23),
    }
    return AttributionContext.from_tokens(f64_model(), tcs, tokens())


@pytest.fixture(scope="module")
def all_graph(all_ctx):
    return full_graph(all_ctx, batch_size=64)  # several batches, so batching is exercised


@pytest.fixture(scope="module")
def mixed_graph(mixed_ctx):
    return full_graph(mixed_ctx, batch_size=64)


def computed_rows(graph: FullGraph) -> list[int]:
    return list(range(graph.n_features)) + list(range(graph.target_slice.start, graph.n_nodes))


# -- (a) completeness --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["all", "mixed"])
def test_rows_plus_biases_sum_to_the_row_values(name, request):
    """Σ_sources A[row] + non-node biases = the row's value v·LN(x), for every feature and target
    row; the rows are far from trivial (the sum of |entries| is not tiny next to the value)."""
    graph = request.getfixturevalue(f"{name}_graph")
    rows = computed_rows(graph)
    total = graph.adjacency[rows].sum(dim=1) + graph.biases[rows]
    values = graph.values[rows]
    assert torch.allclose(total, values, rtol=REL, atol=1e-10)
    scale = graph.adjacency[rows].abs().sum(dim=1)
    assert ((total - values).abs() <= REL * values.abs().clamp_min(1e-3 * scale)).all()
    # error and embedding nodes have no inputs in the replacement model
    assert not graph.adjacency[graph.n_features : graph.target_slice.start].any()


def test_feature_values_are_pre_activations_minus_effective_bias(all_ctx, all_graph):
    for k, (layer, position, feature) in enumerate(all_graph.active_features.tolist()):
        tc = all_ctx.transcoders[layer]
        pre = tc.pre_activations(all_ctx.mlp_in[layer, position])[feature].detach()
        bias = tc.effective_encoder_bias()[feature].detach()
        assert float(all_graph.values[k] + bias) == pytest.approx(float(pre))
        assert float(all_graph.activations[k]) == pytest.approx(
            float(all_ctx.feature_acts[layer][position, feature])
        )


def test_edges_respect_causality(mixed_graph):
    """A feature at (layer l, position p) only receives from features of layers < l at positions
    <= p, from errors of layers < l at positions <= p and from embeddings at positions <= p."""
    g = mixed_graph
    layer, position = g.active_features[:, 0], g.active_features[:, 1]
    A = g.adjacency[: g.n_features]
    later_feature = (layer[None, :] >= layer[:, None]) | (position[None, :] > position[:, None])
    assert not A[:, : g.n_features][later_feature].any()
    err_layer = torch.arange(g.n_layers).repeat_interleave(g.n_pos)
    err_position = torch.arange(g.n_pos).repeat(g.n_layers)
    later_error = (err_layer[None, :] >= layer[:, None]) | (err_position[None, :] > position[:, None])
    assert not A[:, g.error_slice][later_error].any()
    later_token = torch.arange(g.n_pos)[None, :] > position[:, None]
    assert not A[:, g.embedding_slice][later_token].any()
    assert not g.adjacency[:, g.target_slice].any()  # targets are never sources


# -- (b) the adjacency against autograd through the spliced model -------------------------------------


def autograd_rows(
    ctx: AttributionContext, graph: FullGraph, feature_rows: list[int]
) -> dict[int, torch.Tensor]:
    """Rows of A by autograd through the model's own forward pass (TransformerLens's attention,
    LNPre and MLP hooks), with the transcoders spliced in as the replacement model:

    - attention patterns and every LN scale are detached (frozen), so the run is linear in the
      residual stream;
    - at each MLP, the output is replaced by z W_dec + b_dec_out (+ x W_skip) + error, where z (the
      transcoder activations) and error are fresh leaf tensors, so no gradient passes through the
      nonlinearity, and the residual at resid_pre 0 (embedding + position) is a leaf too;
    - a row is then (leaf value) x (gradient of the target's value w.r.t. that leaf).

    Why this is independent of full_graph: it never reads the AttributionContext's cached patterns,
    LN scales or LN outputs, nor its frozen vectors or hand-written backward walk (per-head W_V W_O
    products, centring, division by scales, bias bookkeeping); autograd differentiates the model's
    actual forward code, and only the weights and token ids are shared.
    """
    model, n = ctx.model, ctx.n_layers
    leaves: dict[str, torch.Tensor] = {}
    inputs: dict[int, torch.Tensor] = {}

    def detach(activation, hook):
        return activation.detach()

    def leaf_embedding(activation, hook):
        leaves["emb"] = activation.detach().clone().requires_grad_()
        return leaves["emb"]

    def capture(activation, hook, layer):
        inputs[layer] = activation
        return activation

    def replace(activation, hook, layer):
        tc = ctx.transcoders.get(layer)
        x = inputs[layer]
        if tc is None:  # the whole MLP output is the error node
            leaves[f"err{layer}"] = activation.detach().clone().requires_grad_()
            return leaves[f"err{layer}"]
        z = tc.encode(x).detach().clone().requires_grad_()
        y_hat = z @ tc.W_dec + tc.b_dec_out + (x @ tc.W_skip if tc.W_skip is not None else 0.0)
        error = (activation - y_hat).detach().clone().requires_grad_()
        leaves[f"z{layer}"], leaves[f"err{layer}"] = z, error
        return y_hat + error

    hooks = [("blocks.0.hook_resid_pre", leaf_embedding), ("ln_final.hook_scale", detach)]
    for layer in range(n):
        hooks += [
            (f"blocks.{layer}.attn.hook_pattern", detach),
            (f"blocks.{layer}.ln1.hook_scale", detach),
            (f"blocks.{layer}.ln2.hook_scale", detach),
            (mlp_in_hook(layer), lambda a, hook, layer=layer: capture(a, hook, layer)),
            (mlp_out_hook(layer), lambda a, hook, layer=layer: replace(a, hook, layer)),
        ]
    with model.hooks(fwd_hooks=hooks):
        logits = model(ctx.tokens[None])[0]

    targets: dict[int, torch.Tensor] = {}
    for k in feature_rows:
        layer, position, feature = graph.active_features[k].tolist()
        tc = ctx.transcoders[layer]
        pre = tc.pre_activations(inputs[layer][0, position])[feature]
        targets[k] = pre - tc.effective_encoder_bias()[feature].detach()  # the row's value
    for j, target in enumerate(graph.targets):
        position = target.root.position
        targets[graph.target_slice.start + j] = (
            logits[position, target.token] - logits[position].mean() - target.root.offset
        )

    rows = {}
    names = list(leaves)
    for k, value in targets.items():
        assert float(value.detach()) == pytest.approx(float(graph.values[k]), rel=1e-9)
        grads = torch.autograd.grad(value, [leaves[m] for m in names], retain_graph=True, allow_unused=True)
        grads = dict(zip(names, grads, strict=True))
        rows[k] = assemble_row(graph, leaves, grads)
    return rows


@torch.no_grad()
def assemble_row(graph: FullGraph, leaves: dict, grads: dict) -> torch.Tensor:
    """leaf x gradient, summed over d_model, laid out in the graph's column order."""
    row = torch.zeros(graph.adjacency.shape[1], dtype=torch.float64)
    for c, (layer, position, feature) in enumerate(graph.active_features.tolist()):
        grad = grads[f"z{layer}"]
        if grad is not None:
            row[c] = leaves[f"z{layer}"][0, position, feature] * grad[0, position, feature]
    for layer in range(graph.n_layers):
        grad = grads[f"err{layer}"]
        if grad is not None:
            contribution = (leaves[f"err{layer}"] * grad)[0].sum(dim=-1)
            row[graph.error_index(layer, 0) : graph.error_index(layer, 0) + graph.n_pos] = (
                contribution.detach()
            )
    row[graph.embedding_slice] = (leaves["emb"] * grads["emb"])[0].sum(dim=-1).detach()
    return row


@pytest.mark.parametrize("name", ["all", "mixed"])
def test_adjacency_matches_autograd_through_the_frozen_spliced_model(name, request):
    ctx, graph = request.getfixturevalue(f"{name}_ctx"), request.getfixturevalue(f"{name}_graph")
    layers = graph.active_features[:, 0]
    # features of the top layer (attention 3 and 2 in between) at the last and a middle token,
    # and of layer 1 (only attention 0-1 and MLP 0 below)
    top = (layers == 3).nonzero()[:, 0]
    picks = top[-3:].tolist() + top[: len(top) // 2][-2:].tolist() + (layers == 1).nonzero()[-2:, 0].tolist()
    expected = autograd_rows(ctx, graph, picks)
    assert len(expected) == len(picks) + graph.n_targets
    cross_position = 0
    for k, row in expected.items():
        actual = graph.adjacency[k]
        torch.testing.assert_close(actual, row, rtol=REL, atol=REL * 1e-6 * float(row.abs().max()))
        if k < graph.n_features:  # edges from features at other tokens: the paths through attention
            position = int(graph.active_features[k, 1])
            others = graph.active_features[:, 1] != position
            cross_position += int((actual[: graph.n_features][others] != 0).sum())
    assert cross_position > 0


def test_logit_rows_agree_with_the_labs_direct_attribution_where_no_attention_intervenes(all_ctx, all_graph):
    """Between layer-3 features at the last token and the final residual nothing mixes tokens,
    so those entries are exactly `attribute`'s (the lab's engine) for the same logit root."""
    g, t = all_graph, all_ctx.n_pos - 1
    top = ((g.active_features[:, 0] == 3) & (g.active_features[:, 1] == t)).nonzero()[:, 0]
    assert len(top) > 0
    for j, target in enumerate(g.targets):
        direct = attribute(all_ctx, target.root).features[3][g.active_features[top, 2]]
        torch.testing.assert_close(g.adjacency[g.target_slice.start + j, top], direct, rtol=1e-9, atol=1e-12)


def test_any_lab_root_can_be_a_target(all_ctx):
    root = logit_diff_root(all_ctx, 4, 9)
    graph = full_graph(all_ctx, targets=[root_target(root, 1.0)])
    row = graph.target_slice.start
    total = graph.adjacency[row].sum() + graph.biases[row]
    assert float(total) == pytest.approx(attribute(all_ctx, root).value, rel=1e-9)
    assert float(graph.target_weights[row]) == 1.0


# -- logit targets ------------------------------------------------------------------------------------


def test_salient_logit_targets_follow_circuit_tracers_rule(all_ctx):
    probs = torch.softmax(all_ctx.logits[-1].double(), dim=-1)
    for desired, cap in ((0.5, 10), (0.95, 10), (0.99, 3)):
        targets = logit_targets(all_ctx, max_n_logits=cap, desired_logit_prob=desired)
        chosen = torch.tensor([t.weight for t in targets], dtype=torch.float64)
        assert [t.token for t in targets] == probs.topk(len(targets)).indices.tolist()
        torch.testing.assert_close(chosen, probs[[t.token for t in targets]])
        # the smallest prefix reaching the desired mass, or the cap
        assert len(targets) == cap or (chosen.sum() >= desired and chosen[:-1].sum() < desired)
    for target in targets:  # value + offset = logit - mean logit
        root = target.root
        value = float(root.vector @ all_ctx.ln_output(root.layer, root.sublayer, root.position))
        logits = all_ctx.logits[root.position]
        assert value + root.offset == pytest.approx(float(logits[target.token] - logits.mean()), rel=1e-9)


# -- (c) influence, pruning and scores ----------------------------------------------------------------


def test_influence_is_the_weighted_neumann_series(all_graph):
    """w N + w N^2 + ... against the closed form w ((I - N)^-1 - I), with a dense inverse."""
    N = normalize_matrix(all_graph.adjacency)
    assert torch.allclose(N.sum(dim=1)[computed_rows(all_graph)], torch.ones(1, dtype=torch.float64))
    w = all_graph.target_weights
    eye = torch.eye(N.shape[0], dtype=torch.float64)
    dense = w @ (torch.linalg.inv(eye - N) - eye)
    torch.testing.assert_close(node_influence(all_graph), dense, rtol=1e-9, atol=1e-12)
    with pytest.raises(RuntimeError, match="acyclic"):
        compute_influence(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([1.0, 0.0]), max_iter=5)


def test_pruning_keeps_targets_and_influential_nodes(all_graph):
    g = all_graph
    influence = node_influence(g)
    result = prune_graph(g, node_threshold=0.8, edge_threshold=0.98)
    mask = result.node_mask
    assert mask[g.target_slice].all() and mask[g.embedding_slice].all()
    features = mask[: g.n_features]
    assert 0 < int(features.sum()) < g.n_features
    # the influence cut, found here by a plain scan: the smallest influence such that the nodes at
    # or above it carry 80% of the total; nodes below it are gone (embeddings and targets excepted)
    ordered = influence.sort(descending=True).values.tolist()
    total, running, cut = sum(ordered), 0.0, ordered[-1]
    for score in ordered:
        running += score
        if running / total >= 0.8:
            cut = score
            break
    always = g.embedding_slice.start
    assert not mask[:always][influence[:always] < cut].any()
    assert mask[:always][influence[:always] >= cut].any()
    assert (
        float(influence[influence > cut].sum()) / total
        < 0.8
        <= float(influence[influence >= cut].sum()) / total
    )
    # features at the last layer off the last token cannot reach the last-token logits
    unreachable = (g.active_features[:, 0] == g.n_layers - 1) & (g.active_features[:, 1] != g.n_pos - 1)
    assert unreachable.any() and not mask[: g.n_features][unreachable].any()
    assert (influence[: g.n_features][unreachable] == 0).all()
    # edges only between kept nodes; kept features have kept in- and out-edges
    edges = result.edge_mask
    assert not edges[~mask].any() and not edges[:, ~mask].any()
    assert edges[: g.n_features][features].any(dim=1).all()
    assert edges[:, : g.n_features][:, features].any(dim=0).all()
    assert 0 < int(edges.sum()) < int((g.adjacency != 0).sum())
    # a stricter threshold keeps a subset; cumulative scores are shares in (0, 1]
    strict = prune_graph(g, node_threshold=0.5).node_mask
    assert not (strict & ~mask).any() and int(strict.sum()) < int(mask.sum())
    assert float(result.cumulative_scores.max()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="node_threshold"):
        prune_graph(g, node_threshold=1.5)


@pytest.fixture(scope="module")
def exact_ctx():
    """A ReLU model whose transcoders *are* its MLPs (W_enc = W_in, b_enc = b_in, W_dec = W_out,
    b_dec_out = b_out, no pre-bias): every error node is zero up to float64 rounding."""
    model = f64_model(seed=5, d_mlp=24, act_fn="relu")
    tcs = {}
    for layer in range(SMALL["n_layers"]):
        mlp = model.blocks[layer].mlp
        spec = DictionarySpec(
            "transcoder", layer, SMALL["d_model"], 24, SMALL["d_model"], "relu", None, False
        )
        tc = Dictionary(spec, dtype=torch.float64)
        with torch.no_grad():
            tc.W_enc.copy_(mlp.W_in)
            tc.b_enc.copy_(mlp.b_in)
            tc.W_dec.copy_(mlp.W_out)
            tc.b_dec_out.copy_(mlp.b_out)
        tcs[layer] = tc
    return AttributionContext.from_tokens(model, tcs, tokens(seed=4))


def scores_by_dense_inverse(graph: FullGraph) -> tuple[float, float]:
    N = normalize_matrix(graph.adjacency)
    w = graph.target_weights
    eye = torch.eye(N.shape[0], dtype=torch.float64)
    influence = w @ (torch.linalg.inv(eye - N) - eye)
    tokens_, errors = influence[graph.embedding_slice].sum(), influence[graph.error_slice].sum()
    out = influence + w
    completeness = ((1 - N[:, graph.error_slice].sum(dim=1)) * out).sum() / out.sum()
    return float(tokens_ / (tokens_ + errors)), float(completeness)


def test_scores_of_random_transcoders_are_fractions_below_one(all_graph):
    replacement, completeness = graph_scores(all_graph)
    assert 0.0 < replacement < 0.95 and 0.0 < completeness < 0.99
    assert (replacement, completeness) == pytest.approx(scores_by_dense_inverse(all_graph), rel=1e-9)
    # with the error columns zeroed out, nothing flows through errors: both scores are exactly 1
    zeroed = FullGraph(**{**all_graph.__dict__, "adjacency": all_graph.adjacency.clone()})
    zeroed.adjacency[:, zeroed.error_slice] = 0
    assert graph_scores(zeroed) == (1.0, 1.0)


def test_scores_are_one_when_transcoders_reconstruct_exactly(exact_ctx):
    assert max(float(e.abs().max()) for e in exact_ctx.tc_errors.values()) < 1e-10
    graph = full_graph(exact_ctx)
    rows = computed_rows(graph)
    torch.testing.assert_close(graph.adjacency[rows].sum(dim=1) + graph.biases[rows], graph.values[rows])
    replacement, completeness = graph_scores(graph)
    assert replacement == pytest.approx(1.0, abs=1e-8) and completeness == pytest.approx(1.0, abs=1e-8)
    assert 0 < prune_graph(graph).node_mask[: graph.n_features].sum() < graph.n_features


def test_summary_states_the_pruned_size_and_the_scores(all_graph):
    summary = graph_summary(all_graph, node_threshold=0.5, edge_threshold=0.9)
    kept = prune_graph(all_graph, node_threshold=0.5, edge_threshold=0.9)
    assert (summary["replacement_score"], summary["completeness_score"]) == graph_scores(all_graph)
    assert summary["n_nodes_kept"] == int(kept.node_mask.sum()) < summary["n_nodes"] == all_graph.n_nodes
    assert summary["n_edges_kept"] == int(kept.edge_mask.sum())
    assert summary["n_active_features"] == all_graph.active_features.shape[0]
    assert summary["targets"] == [t.label for t in all_graph.targets]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")
def test_the_graph_on_a_gpu_equals_the_graph_on_the_cpu():
    """The same float64 model, transcoders and prompt on CUDA: the same nodes, and edges equal up to
    the summation order of float64 reductions (relative 1e-9 of the largest edge)."""
    tcs = {layer: f64_transcoder(layer, 10 + layer, skip=layer == 1) for layer in range(SMALL["n_layers"])}
    cpu = full_graph(AttributionContext.from_tokens(f64_model(), tcs, tokens()), batch_size=64)
    on_gpu = {layer: tc.to("cuda") for layer, tc in tcs.items()}
    gpu = full_graph(
        AttributionContext.from_tokens(f64_model().to("cuda"), on_gpu, tokens().cuda()), batch_size=64
    )
    assert gpu.adjacency.device.type == "cuda"
    assert torch.equal(gpu.active_features.cpu(), cpu.active_features)
    scale = float(cpu.adjacency.abs().max())
    torch.testing.assert_close(gpu.adjacency.cpu(), cpu.adjacency, rtol=0, atol=1e-9 * scale)
    assert torch.equal(prune_graph(gpu).node_mask.cpu(), prune_graph(cpu).node_mask)
    assert graph_scores(gpu) == pytest.approx(graph_scores(cpu), rel=1e-9)
