"""Attribution through a cross-layer transcoder (circuits.replacement): the direct-attribution engine,
the full graph, its pruning and scores, and beam search with a CLT in place of every MLP.

Everything is float64 (random processed models with LayerNorm weights and biases everywhere, as in
test_full_graph.py), so identities hold to ~1e-12 and a missing decoder is an O(1) error. The CLTs
take their encoders and own-layer decoders from per-layer transcoders, so that with zero cross-layer
decoders a CLT *is* those transcoders; `cross_scale` then sets the cross-layer decoders (random rows
of about the own-layer rows' norm). Small widths (d_sae 32, 8 tokens) keep each graph at ~500 nodes.
"""

import pytest
import torch

from transcoder_lab.circuits import (
    AttributionContext,
    PathFilter,
    attribute,
    beam_search,
    build_graph,
    child_root,
    feature_root,
    fraction_explained,
    full_graph,
    graph_scores,
    logit_diff_root,
    prune_graph,
    root_value,
    top_contributors,
)
from transcoder_lab.circuits.faithfulness import circuit_faithfulness
from transcoder_lab.circuits.full_graph import FullGraph
from transcoder_lab.circuits.interventions import clean_state
from transcoder_lab.circuits.replacement import CrossLayerSlice
from transcoder_lab.dictionaries.crosslayer import CrossLayerSpec, CrossLayerTranscoder
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook
from transcoder_lab.standins.gpt2 import gpt2_shaped_config

from helpers.circuit_models import SMALL, crosslayer_from, random_processed_model, random_transcoder

N_LAYERS, D_MODEL = SMALL["n_layers"], SMALL["d_model"]
D_SAE, N_POS = 32, 8
TIGHT = dict(rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # much faster for these tiny products, and fair to a shared machine
    yield
    torch.set_num_threads(threads)


def f64_model():
    config = gpt2_shaped_config(seed=1, **SMALL)
    config.dtype = torch.float64
    return random_processed_model(config, seed=1)


def prompt() -> torch.Tensor:
    return torch.randint(0, SMALL["d_vocab"], (N_POS,), generator=torch.Generator().manual_seed(3))


def per_layer_transcoders():
    return {
        layer: random_transcoder(layer, D_MODEL, D_SAE, seed=10 + layer).double() for layer in range(N_LAYERS)
    }


@pytest.fixture(scope="module")
def model():
    return f64_model()


@pytest.fixture(scope="module")
def clt():
    return crosslayer_from(per_layer_transcoders(), cross_scale=1.0)


@pytest.fixture(scope="module")
def clt_ctx(model, clt):
    return AttributionContext.from_tokens(model, clt, prompt())


@pytest.fixture(scope="module")
def clt_graph(clt_ctx):
    return full_graph(clt_ctx, batch_size=128)


def computed_rows(graph: FullGraph) -> list[int]:
    return list(range(graph.n_features)) + list(range(graph.target_slice.start, graph.n_nodes))


# -- (a) zero cross-layer decoders: the per-layer transcoders' graph --------------------------------


def test_a_clt_without_cross_layer_decoders_gives_the_per_layer_graph(model):
    tcs = per_layer_transcoders()
    per_layer = AttributionContext.from_tokens(model, tcs, prompt())
    crosslayer = AttributionContext.from_tokens(model, crosslayer_from(tcs, cross_scale=0.0), prompt())
    for layer in range(N_LAYERS):
        torch.testing.assert_close(crosslayer.feature_acts[layer], per_layer.feature_acts[layer], **TIGHT)
        torch.testing.assert_close(crosslayer.tc_errors[layer], per_layer.tc_errors[layer], **TIGHT)

    expected, actual = full_graph(per_layer, batch_size=128), full_graph(crosslayer, batch_size=128)
    assert torch.equal(actual.active_features, expected.active_features)
    assert [t.token for t in actual.targets] == [t.token for t in expected.targets]
    for name in ("activations", "values", "biases"):
        torch.testing.assert_close(getattr(actual, name), getattr(expected, name), **TIGHT)
    scale = float(expected.adjacency.abs().max())
    torch.testing.assert_close(actual.adjacency, expected.adjacency, rtol=1e-9, atol=1e-12 * scale)
    assert graph_scores(actual) == pytest.approx(graph_scores(expected), rel=1e-9)
    kept, kept_expected = prune_graph(actual), prune_graph(expected)
    assert torch.equal(kept.node_mask, kept_expected.node_mask)
    assert torch.equal(kept.edge_mask, kept_expected.edge_mask)

    root = logit_diff_root(per_layer, 4, 9)
    a, b = attribute(crosslayer, root), attribute(per_layer, root)
    for layer in range(N_LAYERS):
        torch.testing.assert_close(a.features[layer], b.features[layer], **TIGHT)
    assert (a.value, a.total(), a.bias) == pytest.approx((b.value, b.total(), b.bias), rel=1e-9)
    paths, paths_expected = beam_search(crosslayer, root, 3, 5), beam_search(per_layer, root, 3, 5)
    assert [p.labels for p in paths] == [p.labels for p in paths_expected]
    assert [p.value for p in paths] == pytest.approx([p.value for p in paths_expected], rel=1e-9)


# -- (b) completeness with cross-layer decoders -------------------------------------------------------


def test_errors_are_the_mlp_outputs_minus_the_clts_own_reconstruction(model, clt, clt_ctx):
    """The context's activations and error nodes against the CLT's own forward pass (encode and
    decode of all layers at once), which writes through every cross-layer decoder."""
    _, cache = model.run_with_cache(clt_ctx.tokens[None])
    x = torch.stack([cache[mlp_in_hook(layer)][0] for layer in range(N_LAYERS)])
    with torch.no_grad():
        y_hat, z = clt(x)
        # the cross-layer decoders are not a small correction: what layers 0-2 write into MLP 3
        cross_layer = y_hat[3] - (z[3] @ clt.W_dec[3][:, 0] + clt.b_dec_out[3])
    for layer in range(N_LAYERS):
        torch.testing.assert_close(clt_ctx.feature_acts[layer], z[layer], **TIGHT)
        error = cache[mlp_out_hook(layer)][0] - y_hat[layer]
        torch.testing.assert_close(clt_ctx.tc_errors[layer], error, **TIGHT)
    assert float(cross_layer.abs().max()) > 0.1 * float(y_hat[3].abs().max())


def test_completeness_holds_with_cross_layer_decoders(clt_graph):
    """Σ_sources A[row] + non-node biases = the row's value for every feature and logit row (the
    identity test_full_graph checks for per-layer transcoders), to 1e-4 relative."""
    rows = computed_rows(clt_graph)
    total = clt_graph.adjacency[rows].sum(dim=1) + clt_graph.biases[rows]
    values = clt_graph.values[rows]
    scale = clt_graph.adjacency[rows].abs().sum(dim=1)
    assert ((total - values).abs() <= 1e-4 * values.abs().clamp_min(1e-3 * scale)).all()
    assert not clt_graph.adjacency[clt_graph.n_features : clt_graph.target_slice.start].any()


@pytest.mark.parametrize("recipe", ["l1_decoder_norm", "tanh_jumprelu"])
def test_attribute_is_complete_with_cross_layer_decoders(model, recipe):
    clt = crosslayer_from(per_layer_transcoders(), cross_scale=1.0, recipe=recipe)
    ctx = AttributionContext.from_tokens(model, clt, prompt())
    assert all(isinstance(tc, CrossLayerSlice) for tc in ctx.transcoders.values())
    top = int((ctx.feature_acts[3][-1] != 0).nonzero()[0, 0])
    for root in (logit_diff_root(ctx, 4, 9), feature_root(ctx, 3, top, -1)):
        a = attribute(ctx, root)
        assert a.total() == pytest.approx(a.value, rel=1e-9, abs=1e-12)
        assert max(float(f.abs().max()) for f in a.features.values()) > 1e-3 * abs(a.value)


def test_pruning_and_scores_run_on_a_clt_graph(clt_graph):
    replacement, completeness = graph_scores(clt_graph)
    assert 0.0 < replacement < 1.0 and 0.0 < completeness < 1.0
    kept = prune_graph(clt_graph)
    assert 0 < int(kept.node_mask[: clt_graph.n_features].sum()) < clt_graph.n_features
    assert kept.node_mask[clt_graph.target_slice].all()


# -- (c) direct effects against autograd in the spliced, frozen replacement model --------------------


def autograd_effects(
    ctx: AttributionContext, clt: CrossLayerTranscoder, targets, through_attention: bool = True
) -> tuple[dict, dict, dict]:
    """(leaves, targets' values, each target's gradients w.r.t. the leaves) in the replacement model:
    the model's own forward pass with attention patterns and every LN scale detached, each MLP output
    replaced by the CLT's own `decode` of leaf activations z (all layers, so every cross-layer decoder
    writes) plus a leaf error, and the embedding a leaf. Without `through_attention`, attention
    outputs are detached too, leaving the residual stream as the only route (`attribute`'s setting).
    Shares nothing with the engine but the weights: not its cache, frozen vectors or decoder sums.

    `targets`: callables (mlp inputs [n_layers, pos, d_model], logits [pos, d_vocab]) -> scalar."""
    model = ctx.model
    _, cache = model.run_with_cache(ctx.tokens[None])
    x = torch.stack([cache[mlp_in_hook(layer)][0] for layer in range(N_LAYERS)])
    mlp_out = torch.stack([cache[mlp_out_hook(layer)][0] for layer in range(N_LAYERS)])
    leaves = {"z": clt.encode(x).detach().requires_grad_()}
    y_hat = clt.decode(leaves["z"])
    leaves["err"] = (mlp_out - y_hat).detach().requires_grad_()
    inputs = {}

    def leaf_embedding(activation, hook):
        leaves["emb"] = activation.detach().clone().requires_grad_()
        return leaves["emb"]

    def capture(activation, hook, layer):
        inputs[layer] = activation[0]
        return activation

    def replace(activation, hook, layer):
        return (y_hat[layer] + leaves["err"][layer])[None]

    def detach(activation, hook):
        return activation.detach()

    hooks = [("blocks.0.hook_resid_pre", leaf_embedding), ("ln_final.hook_scale", detach)]
    for layer in range(N_LAYERS):
        hooks += [
            (f"blocks.{layer}.attn.hook_pattern", detach),
            (f"blocks.{layer}.ln1.hook_scale", detach),
            (f"blocks.{layer}.ln2.hook_scale", detach),
            (mlp_in_hook(layer), lambda a, hook, layer=layer: capture(a, hook, layer)),
            (mlp_out_hook(layer), lambda a, hook, layer=layer: replace(a, hook, layer)),
        ]
        if not through_attention:
            hooks.append((f"blocks.{layer}.hook_attn_out", detach))
    with model.hooks(fwd_hooks=hooks):
        logits = model(ctx.tokens[None])[0]
    stacked = torch.stack([inputs[layer] for layer in range(N_LAYERS)])
    values, grads = {}, {}
    names = list(leaves)
    for key, target in targets.items():
        value = target(stacked, logits)
        g = torch.autograd.grad(value, [leaves[n] for n in names], retain_graph=True, allow_unused=True)
        grads[key] = {
            n: (torch.zeros_like(leaves[n]) if d is None else d) for n, d in zip(names, g, strict=True)
        }
        values[key] = float(value.detach())
    return leaves, values, grads


def test_adjacency_rows_equal_autograd_through_the_frozen_clt_replacement(clt, clt_ctx, clt_graph):
    g = clt_graph
    layers, positions = g.active_features[:, 0], g.active_features[:, 1]
    picks = ((layers == 3) & (positions == N_POS - 1)).nonzero()[-2:, 0].tolist()
    picks += ((layers == 2) & (positions == N_POS // 2)).nonzero()[-2:, 0].tolist()

    def feature_value(layer, position, feature):
        bias = clt.effective_encoder_bias()[layer, feature].detach()
        return lambda x, logits: clt.pre_activations(x)[layer, position, feature] - bias

    def logit_value(target):
        t, tok = target.root.position, target.token
        return lambda x, logits: logits[t, tok] - logits[t].mean() - target.root.offset

    targets = {k: feature_value(*g.active_features[k].tolist()) for k in picks}
    targets |= {g.target_slice.start + j: logit_value(target) for j, target in enumerate(g.targets)}
    leaves, values, grads = autograd_effects(clt_ctx, clt, targets)

    z = leaves["z"].detach()
    feature_layer, feature_position, feature = g.active_features.T
    cross_layer_edges = 0
    for k, grad in grads.items():
        assert values[k] == pytest.approx(float(g.values[k]), rel=1e-9)
        row = torch.zeros(g.adjacency.shape[1], dtype=torch.float64)
        row[: g.n_features] = (z * grad["z"])[feature_layer, feature_position, feature]
        row[g.error_slice] = (leaves["err"] * grad["err"]).detach().sum(-1).flatten()
        row[g.embedding_slice] = (leaves["emb"] * grad["emb"])[0].detach().sum(-1)
        scale = float(row.abs().max())
        torch.testing.assert_close(g.adjacency[k], row, rtol=1e-8, atol=1e-10 * scale)
        # edges from features two or more layers down: those that can cross MLPs on their way
        row_layer = int(layers[k]) if k < g.n_features else N_LAYERS
        cross_layer_edges += int((g.adjacency[k, : g.n_features][layers <= row_layer - 2] != 0).sum())
    assert cross_layer_edges > 0


def test_attribute_equals_autograd_along_the_residual_stream(clt, clt_ctx):
    """`attribute`'s feature terms are the derivatives along the residual stream alone: autograd
    with the attention outputs frozen too. For a root at layer 3 a layer-0 feature's term sums its
    decoders into MLPs 0, 1 and 2 (not 3: it writes after the root's point)."""
    t = N_POS - 1
    top = int((clt_ctx.feature_acts[3][t] != 0).nonzero()[0, 0])
    roots = {"logit": logit_diff_root(clt_ctx, 4, 9), "feature": feature_root(clt_ctx, 3, top, t)}
    b_U = clt_ctx.model.b_U
    bias = clt.effective_encoder_bias()[3, top].detach()
    targets = {
        "logit": lambda x, logits: logits[t, 4] - logits[t, 9] - (b_U[4] - b_U[9]),
        "feature": lambda x, logits: clt.pre_activations(x)[3, t, top] - bias,
    }
    leaves, values, grads = autograd_effects(clt_ctx, clt, targets, through_attention=False)
    for name, root in roots.items():
        a = attribute(clt_ctx, root)
        assert values[name] == pytest.approx(a.value, rel=1e-9)
        expected = (leaves["z"] * grads[name]["z"]).detach()[:, t]
        for layer, features in a.features.items():
            torch.testing.assert_close(features, expected[layer], rtol=1e-8, atol=1e-12)
        assert float(expected[0].abs().max()) > 0


# -- (d) beam search ----------------------------------------------------------------------------------


def test_beam_search_on_a_clt_returns_an_exact_circuit(clt_ctx):
    root = logit_diff_root(clt_ctx, 4, 9)
    a = attribute(clt_ctx, root)
    # a child's value + offset is its contribution: child_root sums the same decoders as attribute
    for contributor in top_contributors(a, k=4, kinds=["feature"]):
        child = child_root(clt_ctx, a, contributor)
        assert root_value(clt_ctx, child) + child.offset == pytest.approx(contributor.value, rel=1e-9)

    assert len(beam_search(clt_ctx, root, n_iterations=3, n_branches=5)) >= 5
    # features only: paths feature <- feature <- feature, each step through a CLT's decoders
    paths = beam_search(clt_ctx, root, 3, 5, PathFilter(kinds=frozenset({"feature"})))
    assert max(len(p) for p in paths) == 3
    graph = build_graph(clt_ctx, root, paths)
    for node_id, node in graph.nodes.items():
        if node.expanded:  # in-edges sum to value + offset
            total = sum(edge.weight for edge in graph.in_edges(node_id))
            assert total == pytest.approx(node.total, rel=1e-6, abs=1e-9)
    assert 0.0 < abs(fraction_explained(graph)) < float("inf")


def test_a_clt_must_fit_the_model(model):
    spec = CrossLayerSpec(n_layers=N_LAYERS - 1, d_in=D_MODEL, d_out=D_MODEL, d_sae=D_SAE)
    with pytest.raises(ValueError, match="3 layers"):
        AttributionContext.from_tokens(model, CrossLayerTranscoder(spec, torch.float64), prompt())


# -- (d) faithfulness by intervention with a CLT spliced in ---------------------------------------


def _ablated_by_hand(model, clt, tokens, root, node, frozen):
    """The root after dropping CLT feature (layer, position, feature) written without the splice: the
    unedited spliced run is the clean run (keep_error), so the edit is the plain model with the
    feature's decoded writes z_f W_dec[l -> l'][f] taken off every MLP output l' >= l at its token."""
    layer, position, feature = node
    z = clt.encode_layer(model.run_with_cache(tokens[None])[1][mlp_in_hook(layer)][0, position], layer)

    def take_off(activation, hook, j):
        activation = activation.clone()
        activation[0, position] -= z[feature] * clt.W_dec[layer][feature, j]
        return activation

    hooks = [(name, lambda a, hook, v=value: v) for name, value in frozen.items()]
    hooks += [
        (mlp_out_hook(layer + j), lambda a, hook, j=j: take_off(a, hook, j)) for j in range(N_LAYERS - layer)
    ]
    read = {}

    def reader(activation, hook):
        read["x"] = activation[0, root.position]

    hooks.append((mlp_in_hook(root.layer), reader))
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        model(tokens[None])
    return float(read["x"].double() @ root.vector.double())


def test_clt_ablations_are_the_decoded_writes_taken_off_every_later_mlp(model, clt, clt_ctx):
    """Zero-ablating one active CLT feature in the spliced model (circuits.faithfulness, step 2,
    frozen: attention patterns and LayerNorm scales at the clean run's) equals taking its decoded
    writes off every later MLP output of the plain model by hand (`_ablated_by_hand`), to float64
    rounding. Layer-2 features reach the root at layer 3 only through MLP 2 and the frozen attention,
    so there the change is also minus the total effect exactly; earlier features' changes differ from
    it by the real later MLPs' reaction, which attribution holds fixed as errors. With the cross-layer
    decoders zeroed the same ablations move the root differently: the edits use them."""
    tokens = clt_ctx.tokens
    t = len(tokens) - 1
    root = feature_root(clt_ctx, 3, int(clt_ctx.feature_acts[3][t].argmax()), t)
    means = {layer: torch.zeros(D_SAE, dtype=torch.float64) for layer in range(N_LAYERS)}
    result = circuit_faithfulness(model, clt, tokens, root, [], means, n_random=2, batch_size=256)
    nodes = result["nodes"]
    scale = max(abs(node["attribution"]) for node in nodes)
    frozen = clean_state(model, [clt], tokens, freeze_attention=True, freeze_ln=True)
    clean = result["frozen"]["clean"]
    for layer in range(3):
        for node in [n for n in nodes if n["layer"] == layer][:4]:
            key = (node["layer"], node["position"], node["feature"])
            by_hand = _ablated_by_hand(model, clt, tokens, root, key, frozen) - clean
            assert node["actual_change_frozen"] == pytest.approx(by_hand, abs=1e-9 * scale), key
    last = [n for n in nodes if n["layer"] == 2]
    assert last and all(
        n["actual_change_frozen"] == pytest.approx(-n["attribution"], abs=1e-9 * scale) for n in last
    )
    without_cross = crosslayer_from(per_layer_transcoders(), cross_scale=0.0)
    plain = circuit_faithfulness(model, without_cross, tokens, root, [], means, n_random=2, batch_size=256)
    plain_change = {
        (n["layer"], n["position"], n["feature"]): n["actual_change_frozen"] for n in plain["nodes"]
    }
    differences = [
        abs(plain_change[key] - n["actual_change_frozen"])
        for n in nodes
        if n["layer"] < 2 and (key := (n["layer"], n["position"], n["feature"])) in plain_change
    ]
    assert differences and max(differences) > 1e-3 * scale
