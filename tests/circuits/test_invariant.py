"""Input-invariant tools agree with the input-dependent attribution engine they summarise."""

import pytest
import torch

from transcoder_lab.circuits import (
    attribute,
    child_root,
    de_embedding,
    de_embedding_through_head,
    feature_pullback,
    feature_root,
    logit_effects,
    ov_norm_table,
    top_contributors,
)

from helpers.circuit_models import small_context


@pytest.fixture(scope="module")
def context():
    return small_context()


def active_feature(ctx, layer):
    """(feature, token) of the largest activation of a layer's transcoder."""
    acts = ctx.feature_acts[layer]
    t, j = divmod(int(acts.argmax()), acts.shape[1])
    return j, t


def test_pullback_times_activation_is_the_attribution(context):
    model, tcs, tokens, ctx = context
    j, t = active_feature(ctx, 2)
    attribution = attribute(ctx, feature_root(ctx, 2, j, t))
    for layer in (0, 1):
        expected = ctx.feature_acts[layer][t].double() * feature_pullback(tcs[layer], tcs[2], j).double()
        expected = expected * attribution.ln_constant
        torch.testing.assert_close(attribution.features[layer], expected, rtol=1e-4, atol=1e-6)


def test_pullback_refuses_a_later_source(context):
    _, tcs, _, _ = context
    with pytest.raises(ValueError, match="cannot feed"):
        feature_pullback(tcs[2], tcs[1], 0)


def test_ov_norm_table_matches_the_head_children(context):
    """A head child's vector is A[l,h,t,s] * c * W_V W_O e: its norm over A*c is the table entry."""
    model, tcs, tokens, ctx = context
    j, t = active_feature(ctx, 2)
    attribution = attribute(ctx, feature_root(ctx, 2, j, t))
    table = ov_norm_table(model, tcs[2], j)
    assert table.shape == (3, model.cfg.n_heads)  # attention layers 0, 1 and 2 run before MLP 2
    heads = [c for c in top_contributors(attribution, k=None) if c.kind == "head"][:6]
    assert heads
    for head in heads:
        child = child_root(ctx, attribution, head)
        pattern = ctx.patterns[head.layer, head.index, t, head.position]
        norm = child.vector.norm() / (pattern * abs(attribution.ln_constant))
        assert norm.item() == pytest.approx(table[head.layer, head.index].item(), rel=1e-4)


def test_de_embeddings_and_logit_effects_against_explicit_products(context):
    model, tcs, _, _ = context
    j = 5
    e = tcs[1].W_enc[:, j].detach().float()
    W_E = model.W_E.detach().float()
    centred = W_E - W_E.mean(-1, keepdim=True)
    for token in (0, 7, 31):
        direct = centred[token] @ e
        through = centred[token] @ model.W_V[0, 2].detach().float() @ model.W_O[0, 2].detach().float() @ e
        assert de_embedding(model, tcs[1], j)[token].item() == pytest.approx(
            direct.item(), rel=1e-4, abs=1e-6
        )
        assert de_embedding_through_head(model, tcs[1], j, 0, 2)[token].item() == pytest.approx(
            through.item(), rel=1e-4, abs=1e-6
        )
    torch.testing.assert_close(
        logit_effects(model, tcs[1], j), tcs[1].W_dec[j].detach().float() @ model.W_U.detach().float()
    )
