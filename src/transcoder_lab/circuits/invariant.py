"""Input-invariant circuit tools: quantities that depend on the weights only (docs/design.md §5.5).

For a transcoder feature j at layer L (encoder column e = W_enc[:, j]):
1. Pullback between layers: a feature i of an earlier transcoder at layer l writes W_dec^{(l)}[i]
   into the residual stream, so its input-invariant connection to j is W_dec^{(l)}[i] · e'; all i
   at once this is the vector W_dec^{(l)} e'. Here e' = e - mean(e): LN2 centres its input, so only
   the centred part of e reads the residual (decoder rows are not centred, so this matters). The
   attribution of i to j at a token is then z_i times this divided by the LN2 scale there.
2. De-embedding: the token embedding's direct path into j, W_E e (centred, as LNPre centres).
   Through attention head h of layer l < L the token's value vector instead reaches the residual:
   W_E W_V^h W_O^h e. Both are read through frozen LayerNorms, so they rank tokens, not predict
   exact pre-activations.
3. Logit effects: what the feature's decoder row does to the logits directly, W_dec[j] W_U.
4. OV-norm table: for every earlier head, ||W_V^h W_O^h e||, how strongly that head's OV circuit can
   feed the feature (large entries point at the heads worth inspecting).
All functions work on CPU float32 copies and are batched (one matrix product, no loop over features).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from transcoder_lab.dictionaries import Dictionary, DictionaryKind


def _f32(tensor: Tensor) -> Tensor:
    return tensor.detach().float().cpu()


@torch.no_grad()
def feature_pullback(source: Dictionary, target: Dictionary, feature: int) -> Float[Tensor, " d_sae_source"]:
    """W_dec^{(source)} · (e - mean e), e = W_enc^{(target)}[:, feature]: every source feature's
    input-invariant connection to `feature` (module docstring, step 1)."""
    if source.spec.layer >= target.spec.layer:
        raise ValueError(
            f"a source at layer {source.spec.layer} cannot feed a target at layer {target.spec.layer}: "
            "transcoder features of layer l write after the MLP input of layer l"
        )
    encoder = _f32(target.W_enc[:, feature])
    return _f32(source.W_dec) @ (encoder - encoder.mean())


@torch.no_grad()
def logit_effects(
    model: HookedTransformer, dictionary: Dictionary, feature: int
) -> Float[Tensor, " d_vocab"] | None:
    """`W_dec[feature] @ W_U`, or None for an SAE on the MLP input (it does not write the residual)."""
    if dictionary.spec.kind is DictionaryKind.sae_mlp_in:
        return None
    return _f32(dictionary.W_dec[feature]) @ _f32(model.W_U)


@torch.no_grad()
def de_embedding(
    model: HookedTransformer, dictionary: Dictionary, feature: int, ln_scale: float = 1.0
) -> Float[Tensor, " d_vocab"] | None:
    """The token embedding's direct path to the feature's pre-activation through a frozen LN2:
    `(W_E - mean) @ W_enc[:, feature] / ln_scale`. None for an SAE on the MLP output, which does
    not read the residual stream."""
    if dictionary.spec.kind is DictionaryKind.sae_mlp_out:
        return None
    W_E = _f32(model.W_E)
    W_E = W_E - W_E.mean(dim=-1, keepdim=True)  # LNPre centres; a no-op when already centred
    return W_E @ _f32(dictionary.W_enc[:, feature]) / ln_scale


@torch.no_grad()
def de_embedding_through_head(
    model: HookedTransformer, dictionary: Dictionary, feature: int, layer: int, head: int
) -> Float[Tensor, " d_vocab"]:
    """W_E W_V^h W_O^h W_enc[:, feature] for head `head` of attention layer `layer` (<= the feature layer)."""
    if layer > dictionary.spec.layer:
        raise ValueError(
            f"attention layer {layer} comes after the feature's MLP layer {dictionary.spec.layer}"
        )
    W_E = _f32(model.W_E)
    W_E = W_E - W_E.mean(dim=-1, keepdim=True)
    ov_pullback = _f32(model.W_V[layer, head]) @ (
        _f32(model.W_O[layer, head]) @ _f32(dictionary.W_enc[:, feature])
    )
    return W_E @ ov_pullback


@torch.no_grad()
def ov_norm_table(
    model: HookedTransformer, dictionary: Dictionary, feature: int
) -> Float[Tensor, "layer head"]:
    """||W_V^h W_O^h W_enc[:, feature]|| for every head of the attention layers 0..feature layer."""
    n_layers = dictionary.spec.layer + 1  # attention L also runs before the MLP L reads its input
    encoder = _f32(dictionary.W_enc[:, feature])
    W_V, W_O = (
        _f32(model.W_V[:n_layers]),
        _f32(model.W_O[:n_layers]),
    )  # [l, h, d_model, d_head], [l, h, d_head, d_model]
    return (W_V @ (W_O @ encoder)[..., None])[..., 0].norm(dim=-1)
