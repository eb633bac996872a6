"""Exact direct attribution (docs/design.md §5): completeness, LayerNorm freezing, roots, recursion and
first-order faithfulness, on random processed models with random transcoders.

Float error: the model runs in float32, attribution in float64 from the float32 cache. The residual
x_t is a float32 sum of float32 writer outputs, while the terms are recomputed in float64 from the
cached inputs (patterns, LN outputs, MLP outputs), and feature pullbacks W_dec u are float32
mat-vecs. Each term is therefore off by ~1e-7 of its own size (plus ~1e-7 of |x| from the float32
additions), so the completeness gap is ~1e-7 x (sum of |terms|) / |value| relative to the value:
well below the 1e-4 tested, for roots whose value is not a near-total cancellation of its terms
(the tests check the gap against both).
"""

import pytest
import torch

from transcoder_lab.circuits import (
    EXPANDABLE_KINDS,
    AttributionContext,
    Contributor,
    attribute,
    child_root,
    feature_root,
    frozen_vector,
    logit_diff_root,
    root_value,
    top_contributors,
    vector_root,
)
from transcoder_lab.dictionaries.evaluation import spliced
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook
from transcoder_lab.standins.gpt2 import gpt2_shaped_config

from helpers.circuit_models import SMALL, random_processed_model, random_transcoder

REL = 1e-4


N_POS = 10


@pytest.fixture(scope="module")
def small_model():
    return random_processed_model(gpt2_shaped_config(seed=1, **SMALL), seed=1)


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, SMALL["d_vocab"], (N_POS,), generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def small_ctx(small_model, tokens):
    """A ReLU transcoder on every layer."""
    tcs = [random_transcoder(layer, 64, 128, seed=10 + layer) for layer in range(4)]
    return AttributionContext.from_tokens(small_model, tcs, tokens)


@pytest.fixture(scope="module")
def mixed_ctx(small_model, tokens):
    """ReLU at 0, TopK skip-transcoder at 1, no transcoder at 2 (the real MLP), ReLU at 3."""
    tcs = {
        0: random_transcoder(0, 64, 128, seed=20),
        1: random_transcoder(1, 64, 96, seed=21, architecture="topk", k=8, skip=True),
        3: random_transcoder(3, 64, 128, seed=23),
    }
    return AttributionContext.from_tokens(small_model, tcs, tokens)


@pytest.fixture(scope="module")
def gpt2_ctx():
    """GPT-2 small's exact widths (d_model 768, 12 heads, d_mlp 3072, vocab 50257), 3 layers."""
    model = random_processed_model(gpt2_shaped_config(seed=2, n_layers=3), seed=2)
    tcs = [random_transcoder(layer, 768, 1024, seed=30 + layer) for layer in range(3)]
    tokens = torch.randint(0, 50257, (12,), generator=torch.Generator().manual_seed(4))
    return AttributionContext.from_tokens(model, tcs, tokens)


def random_roots(ctx: AttributionContext, seed: int):
    """Random vectors at every residual point, every transcoder's features (active and not) at a
    few tokens, and logit differences."""
    g = torch.Generator().manual_seed(seed)
    d_model, n = ctx.model.cfg.d_model, ctx.n_layers
    points = [(layer, "resid_pre") for layer in range(n + 1)] + [(layer, "resid_mid") for layer in range(n)]
    for layer, sublayer in points:
        for _ in range(2):
            position = int(torch.randint(0, ctx.n_pos, (1,), generator=g))
            yield vector_root(layer, sublayer, position, torch.randn(d_model, generator=g))
    for layer, tc in ctx.transcoders.items():
        for position in (0, ctx.n_pos // 2, ctx.n_pos - 1):
            for feature in torch.randint(0, tc.spec.d_sae, (3,), generator=g).tolist():
                yield feature_root(ctx, layer, feature, position)
    d_vocab = ctx.model.cfg.d_vocab
    for position in (-1, 1):
        a, b = torch.randint(0, d_vocab, (2,), generator=g).tolist()
        yield logit_diff_root(ctx, a, b, position)


def check_completeness(ctx, ln_freezing="centered", seed=0):
    for root in random_roots(ctx, seed):
        attribution = attribute(ctx, root, ln_freezing)
        assert attribution.value == pytest.approx(root_value(ctx, root), rel=1e-12)
        contributors = top_contributors(attribution, k=None)
        magnitude = sum(abs(c.value) for c in contributors)
        gap = abs(attribution.completeness_gap)
        assert gap <= REL * abs(attribution.value), (root.label, attribution.value, gap, magnitude)
        assert gap <= 1e-6 * magnitude, (root.label, gap, magnitude)
        # the listed contributors are all the non-zero terms
        assert sum(c.value for c in contributors) == pytest.approx(attribution.total(), rel=1e-9, abs=1e-12)


# -- completeness -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ln_freezing", ["centered", "ratio"])
def test_completeness_small_model(small_ctx, ln_freezing):
    check_completeness(small_ctx, ln_freezing)


def test_completeness_mixed_transcoders(mixed_ctx):
    check_completeness(mixed_ctx, seed=1)
    attribution = attribute(mixed_ctx, logit_diff_root(mixed_ctx, 1, 2))
    assert set(attribution.features) == {0, 1, 3} and set(attribution.mlps) == {2}
    assert set(attribution.skips) == {1}
    assert int((mixed_ctx.feature_acts[1] > 0).sum(-1).max()) <= 8  # TopK


def test_completeness_gpt2_small_widths(gpt2_ctx):
    check_completeness(gpt2_ctx, seed=2)


def test_processed_model_folds_value_biases(small_ctx):
    for block in small_ctx.model.blocks:
        assert float(block.attn.b_V.detach().abs().max()) == 0.0
        assert float(block.attn.b_O.detach().abs().max()) > 0.0


# -- LayerNorm freezing and root values ---------------------------------------------------------------


def test_ln_constant_makes_frozen_vector_read_the_ln_output(small_ctx):
    g = torch.Generator().manual_seed(5)
    for layer, sublayer in [(0, "resid_pre"), (2, "resid_mid"), (4, "resid_pre")]:
        for position in range(0, N_POS, 3):
            v = torch.randn(64, generator=g, dtype=torch.float64) + 0.5  # a non-zero mean
            root = vector_root(layer, sublayer, position, v)
            x = small_ctx.residual(layer, sublayer, position)
            v_ln = float(v @ small_ctx.ln_output(layer, sublayer, position))
            u, c, value = frozen_vector(small_ctx, root, "ratio")  # c = v·LN(x) / v·x, docs/design.md §5.2
            assert c == pytest.approx(v_ln / float(v @ x), rel=1e-12)
            assert float(u @ x) == pytest.approx(v_ln, rel=1e-9) and value == pytest.approx(v_ln, rel=1e-12)
            u, c, value = frozen_vector(small_ctx, root, "centered")
            centered = v - v.mean()
            assert c == pytest.approx(
                float(centered @ small_ctx.ln_output(layer, sublayer, position)) / float(centered @ x),
                rel=1e-5,
            )
            assert torch.allclose(u, c * centered)
            assert float(u @ x) == pytest.approx(v_ln, rel=1e-5)  # c from the cached scale: float32


def test_feature_root_value_is_preactivation_minus_effective_bias(small_model, small_ctx, tokens):
    _, cache = small_model.run_with_cache(tokens[None])
    for layer, tc in small_ctx.transcoders.items():
        with torch.no_grad():
            pre = tc.pre_activations(cache[mlp_in_hook(layer)][0]).double()
            bias = (tc.b_enc - tc.W_enc.T @ tc.b_dec).double()  # b_enc_j - W_enc[:, j]·b_dec
        for position in (0, 4, N_POS - 1):
            for feature in (0, 17, 101):
                root = feature_root(small_ctx, layer, feature, position)
                value = attribute(small_ctx, root).value
                assert value == pytest.approx(
                    float(pre[position, feature] - bias[feature]), rel=1e-5, abs=1e-6
                )
                assert value + root.offset == pytest.approx(float(pre[position, feature]), rel=1e-5, abs=1e-6)


def test_logit_diff_root_value_plus_offset_is_the_logit_difference(small_ctx):
    for a, b, position in [(3, 7, -1), (50, 2, 4)]:
        root = logit_diff_root(small_ctx, a, b, position)
        logits = small_ctx.logits[position].double()
        assert root.offset != 0.0  # b_U is random here
        assert root_value(small_ctx, root) + root.offset == pytest.approx(
            float(logits[a] - logits[b]), rel=1e-5
        )


# -- contributors and recursion -----------------------------------------------------------------------


def test_labels_and_ranking(mixed_ctx):
    root = feature_root(mixed_ctx, 3, 5, 7)
    attribution = attribute(mixed_ctx, root)
    top = top_contributors(attribution, k=20)
    assert [abs(c.value) for c in top] == sorted((abs(c.value) for c in top), reverse=True)
    assert all(c.value > 0 for c in top_contributors(attribution, k=5, sign="positive"))
    assert all(c.value < 0 for c in top_contributors(attribution, k=5, sign="negative"))
    assert all(c.expandable for c in top_contributors(attribution, k=10, kinds=EXPANDABLE_KINDS))
    labels = {c.label for c in top_contributors(attribution, k=None)}
    assert {"emb@7", "err_tc0@7", "err_tc1@7", "mlp2@7", "skip_tc1@7", "bias"} <= labels
    assert any(label.startswith("tc1[") and label.endswith("]@7") for label in labels)
    assert any(label.startswith("attn3.") for label in labels)  # resid_mid 3 reads attention 3
    assert Contributor("feature", 1.0, 8, 355, 37).label == "tc8[355]@37"
    assert Contributor("head", 1.0, 9, 1, 6).label == "attn9.1@6"
    # a feature listed at its own layer reads the head's value at that token
    head = next(c for c in top if c.kind == "head")
    assert head.value == pytest.approx(float(attribution.heads[head.layer, head.index, head.position]))


@pytest.mark.parametrize("fixture", ["small_ctx", "mixed_ctx", "gpt2_ctx"])
def test_children_values_equal_their_contributions(fixture, request):
    """Expanding any feature, head or skip contributor gives a root whose value + offset is exactly
    that contribution; two levels deep, so children of children are checked too."""
    ctx = request.getfixturevalue(fixture)
    roots = [logit_diff_root(ctx, 1, 2), feature_root(ctx, max(ctx.transcoders), 3, ctx.n_pos - 2)]
    for root in roots:
        attribution = attribute(ctx, root)
        for contributor in top_contributors(attribution, k=8, kinds=EXPANDABLE_KINDS):
            child = child_root(ctx, attribution, contributor)
            child_attribution = attribute(ctx, child)
            assert child_attribution.value + child.offset == pytest.approx(contributor.value, rel=1e-5)
            assert abs(child_attribution.completeness_gap) <= REL * abs(child_attribution.value) + 1e-9
            for grandchild in top_contributors(child_attribution, k=3, kinds=EXPANDABLE_KINDS):
                g = child_root(ctx, child_attribution, grandchild)
                assert attribute(ctx, g).value + g.offset == pytest.approx(grandchild.value, rel=1e-5)


def test_leaves_and_inactive_features_have_no_child(small_ctx):
    attribution = attribute(small_ctx, logit_diff_root(small_ctx, 1, 2))
    for leaf in top_contributors(attribution, k=None, kinds={"embedding", "tc_error", "bias"}):
        with pytest.raises(ValueError, match="leaf"):
            child_root(small_ctx, attribution, leaf)
    t = attribution.root.position
    inactive = int((small_ctx.feature_acts[0][t] == 0).nonzero()[0])
    with pytest.raises(ValueError, match="inactive"):
        child_root(small_ctx, attribution, Contributor("feature", 0.0, 0, inactive, t))


# -- first-order faithfulness -------------------------------------------------------------------------


def intervened_value(ctx, root, ablate=None, freeze_outputs_after=None) -> float:
    """The root's value v·LN(x) in a run with attention patterns and every LN scale frozen to the
    clean run's, transcoders spliced with their error kept, optionally feature `ablate = (layer, i)`
    zeroed at the root's token (MLP output := TC output without it + the clean error), and
    optionally every attention and MLP output after `freeze_outputs_after` frozen (direct effect)."""
    model, t, n = ctx.model, root.position, ctx.n_layers
    dtype = ctx.attn_out.new_empty(0).to(model.cfg.dtype).dtype

    def frozen(value):
        return lambda activation, hook: value.to(activation.dtype)[None].expand_as(activation)

    hooks = []
    for layer in range(n):
        hooks.append((f"blocks.{layer}.attn.hook_pattern", frozen(ctx.patterns[layer])))
        hooks.append((f"blocks.{layer}.ln1.hook_scale", frozen(ctx.ln_pre_scale[layer][:, None])))
        hooks.append((f"blocks.{layer}.ln2.hook_scale", frozen(ctx.ln_mid_scale[layer][:, None])))
        if freeze_outputs_after is not None and layer > freeze_outputs_after:
            hooks.append((f"blocks.{layer}.hook_attn_out", frozen(ctx.attn_out[layer])))
            hooks.append((mlp_out_hook(layer), frozen(ctx.mlp_out[layer])))
    hooks.append(("ln_final.hook_scale", frozen(ctx.ln_pre_scale[n][:, None])))
    others = list(ctx.transcoders.values())
    if ablate is not None:
        layer, feature = ablate
        tc = ctx.transcoders[layer]
        others = [d for d in others if d.spec.layer != layer]
        captured = {}

        def capture(activation, hook):
            captured["x"] = activation
            return activation

        def ablated(activation, hook):
            x = captured.pop("x")
            z = tc.encode(x)
            z[0, t, feature] = 0.0
            return tc.decode(z, x) + ctx.tc_errors[layer].to(dtype)[None]

        hooks += [(mlp_in_hook(layer), capture), (mlp_out_hook(layer), ablated)]
    point = (
        "ln_final"
        if root.layer == n
        else f"blocks.{root.layer}.{'ln1' if root.sublayer == 'resid_pre' else 'ln2'}"
    )
    out = {}

    def read(activation, hook):
        out["ln"] = activation[0, t].double()

    hooks.append((f"{point}.hook_normalized", read))
    with torch.no_grad(), spliced(model, others, keep_error=True), model.hooks(fwd_hooks=hooks):
        model(ctx.tokens[None])
    return float(root.vector.double() @ out["ln"])


def active_features(ctx, layer, t, n=3):
    return (ctx.feature_acts[layer][t] > 0).nonzero()[:, 0][:n].tolist()


def test_frozen_run_without_intervention_is_the_clean_run(small_ctx):
    root = logit_diff_root(small_ctx, 4, 9, 6)
    assert intervened_value(small_ctx, root) == pytest.approx(root_value(small_ctx, root), rel=1e-6)


@pytest.mark.parametrize("layer", [0, 2])
def test_ablating_a_feature_just_below_the_root_changes_it_by_its_attribution(small_ctx, layer):
    """Root at resid_pre layer+1: nothing lies between the feature and the root, so with frozen
    patterns and LN scales the change is exactly minus the attribution."""
    g = torch.Generator().manual_seed(6)
    root = vector_root(layer + 1, "resid_pre", 6, torch.randn(64, generator=g))
    attribution = attribute(small_ctx, root)
    clean = intervened_value(small_ctx, root)
    for feature in active_features(small_ctx, layer, 6):
        change = intervened_value(small_ctx, root, ablate=(layer, feature)) - clean
        expected = -float(attribution.features[layer][feature])
        assert change == pytest.approx(expected, rel=1e-4, abs=1e-4 * abs(attribution.value))


def test_direct_effect_of_a_deep_feature_equals_its_attribution(small_ctx):
    """Logit-difference root at the final residual, feature of layer 0: with every later
    attention and MLP output frozen (the direct effect only), the change is minus the attribution."""
    root = logit_diff_root(small_ctx, 11, 22, 5)
    attribution = attribute(small_ctx, root)
    clean = intervened_value(small_ctx, root, freeze_outputs_after=0)
    for feature in active_features(small_ctx, 0, 5):
        change = intervened_value(small_ctx, root, ablate=(0, feature), freeze_outputs_after=0) - clean
        expected = -float(attribution.features[0][feature])
        assert change == pytest.approx(expected, rel=1e-4, abs=1e-4 * abs(attribution.value))


def test_total_linear_effect_equals_direct_plus_paths_through_heads(small_ctx):
    """Feature root at resid_mid 2, feature ablated at layer 1: with frozen patterns and LN scales
    the model is linear from resid_mid 1 to the root, so the change is the direct attribution plus
    the feature's attribution in each child root of attention 2 reading the same token."""
    t = 7
    root = feature_root(small_ctx, 2, 9, t)
    attribution = attribute(small_ctx, root)
    clean = intervened_value(small_ctx, root)
    assert clean == pytest.approx(attribution.value, rel=1e-5)
    for feature in active_features(small_ctx, 1, t):
        through_heads = 0.0
        for head in range(small_ctx.model.cfg.n_heads):
            contributor = Contributor("head", float(attribution.heads[2, head, t]), 2, head, t)
            child = attribute(small_ctx, child_root(small_ctx, attribution, contributor))
            through_heads += float(child.features[1][feature])
        direct = float(attribution.features[1][feature])
        change = intervened_value(small_ctx, root, ablate=(1, feature)) - clean
        assert change == pytest.approx(-(direct + through_heads), rel=1e-4, abs=1e-4 * abs(attribution.value))
        assert abs(through_heads) > 1e-3 * abs(direct)  # the paths through heads are not negligible here


def test_ratio_freezing_is_not_first_order_faithful_for_uncentred_writers(small_ctx):
    """Why the centred reader is the default: the processed model's own writers (embeddings, W_O,
    b_O) are centred, so both freezings credit them identically, but a transcoder's decoder is not
    centred, and the literal ratio freezing (v itself, c = v·LN(x) / v·x) then misses the feature's
    actual first-order effect by mean(v)·Σ_k W_dec[i, k]·z_i/scale, whereas the centred one matches."""
    g = torch.Generator().manual_seed(6)
    root = vector_root(3, "resid_pre", 6, torch.randn(64, generator=g) + 0.3)
    centred, ratio = attribute(small_ctx, root, "centered"), attribute(small_ctx, root, "ratio")
    assert torch.allclose(centred.heads, ratio.heads, rtol=1e-4, atol=1e-7)
    assert centred.embedding == pytest.approx(ratio.embedding, rel=1e-4)
    clean = intervened_value(small_ctx, root)
    feature = active_features(small_ctx, 2, 6, n=1)[0]
    change = intervened_value(small_ctx, root, ablate=(2, feature)) - clean
    assert change == pytest.approx(-float(centred.features[2][feature]), rel=1e-4, abs=1e-6)
    assert abs(change + float(ratio.features[2][feature])) > 1e-3 * abs(change)


def test_completeness_on_the_trained_tiny_organism(tiny_pipeline):
    """The same identity on a trained organism with its trained transcoders (not random weights)."""
    from transcoder_lab.dictionaries import load_dictionary
    from transcoder_lab.organism.mechanisms.greater_than import greater_than_prompts
    from transcoder_lab.paths import dictionary_dir
    from transcoder_lab.sources.models import load_model

    cfg, _ = tiny_pipeline
    model = load_model(cfg.profile, cfg.paths.models)
    grid = cfg.profile.dictionaries
    transcoders = {
        layer: load_dictionary(dictionary_dir(cfg, layer, "transcoder", grid.l1_coefficients[0]))
        for layer in grid.layers
    }
    prompt = greater_than_prompts(cfg.profile.corpus, seed=5)[37].text
    check_completeness(AttributionContext.from_tokens(model, transcoders, model.to_tokens(prompt)[0]), seed=3)


@pytest.mark.parametrize("positional_embedding_type", ["standard", "rotary"])
def test_parallel_blocks_are_refused_at_context_construction(positional_embedding_type):
    """GPT-NeoX / Pythia blocks (attention and MLP in parallel on resid_pre) break the sequential
    decomposition the engine relies on (attention l feeds MLP l through resid_mid l): building a
    context must fail at once, naming the model and the reason, with learned or rotary positions."""
    from transformer_lens import HookedTransformerConfig

    config = HookedTransformerConfig(
        n_layers=2, d_model=32, d_head=8, n_heads=4, d_mlp=128, d_vocab=50, n_ctx=16, act_fn="gelu",
        normalization_type="LN", positional_embedding_type=positional_embedding_type, rotary_dim=4,
        parallel_attn_mlp=True, model_name="tiny-parallel", tokenizer_name=None, seed=0,
    )  # fmt: skip
    model = random_processed_model(config)
    assert model.cfg.parallel_attn_mlp and model.cfg.normalization_type == "LNPre"
    transcoders = [random_transcoder(layer, 32, 64, seed=layer) for layer in range(2)]
    with pytest.raises(ValueError, match=r"'tiny-parallel'.*in parallel.*resid_pre, not resid_mid"):
        AttributionContext.from_tokens(model, transcoders, torch.arange(6))


def test_rotary_positions_are_refused_at_context_construction():
    """Sequential blocks with rotary positions: no W_pos for the embedding term, so refused too."""
    from transformer_lens import HookedTransformerConfig

    config = HookedTransformerConfig(
        n_layers=2, d_model=32, d_head=8, n_heads=4, d_mlp=128, d_vocab=50, n_ctx=16, act_fn="gelu",
        normalization_type="LN", positional_embedding_type="rotary", rotary_dim=4,
        model_name="tiny-rotary", tokenizer_name=None, seed=0,
    )  # fmt: skip
    model = random_processed_model(config)
    transcoders = [random_transcoder(layer, 32, 64, seed=layer) for layer in range(2)]
    with pytest.raises(ValueError, match=r"'tiny-rotary'.*'rotary'.*learned absolute positions"):
        AttributionContext.from_tokens(model, transcoders, torch.arange(6))
