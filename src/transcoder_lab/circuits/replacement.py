"""What the attribution engine splices in place of the MLPs: per-layer transcoders or one cross-layer
transcoder (CLT), both seen as *feature layers* (docs/design.md §5.3).

The engine (attribution.py, full_graph.py, beam_search.py) holds a map `layer -> feature layer`. The
feature layer of layer l has an encoder reading the MLP input of layer l (`W_enc`, `encode`,
`effective_encoder_bias`) and a stack of decoders, `decoder_stack(tc)` [d_sae, n_out, d_out], whose
index j writes into the MLP output of layer l + j. It also holds what belongs to MLP l itself: the
output bias `b_dec_out` and the skip matrix `W_skip` (or None). Two kinds of dictionary fit:

- per-layer transcoders (`Dictionary`, at any subset of the layers): one decoder, into the
  transcoder's own layer (n_out = 1: the stack is W_dec[:, None]); an MLP without a transcoder stays
  whole (an exact leaf in attribute, an error node in the full graph);
- a CLT (`CrossLayerTranscoder`), which replaces every MLP at once: layer l is a `CrossLayerSlice`,
  views of the CLT's weights with its n_layers - l decoders (W_dec[l], the CLT's own layout), the
  output bias b_dec_out[l] of MLP l and no skip term.

Either way MLP l' is replaced by, and its error node is (`reconstruction_errors`),

    y_hat_l' = Σ_{l <= l'} z_l W_dec[l -> l'] + b_dec_out_l' (+ LN2(x_l') W_skip_l'),
    error_l' = mlp_out_l' - y_hat_l',

so feature (l, i) writes z_i W_dec[l -> l'][i] into the residual stream after every MLP l' >= l, and
its direct effect on a reader at layer L sums over its decoders into the MLPs l' < L (`decoders_into`
lists, per MLP, the decoders writing there). For per-layer transcoders these sums have one term, so
their attributions are exactly what they were before CLTs existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from transcoder_lab.dictionaries import Dictionary
from transcoder_lab.dictionaries.crosslayer import CrossLayerTranscoder

_F64 = torch.float64


class CrossLayerSlice:
    """Layer `layer` of a CLT, with the attributes of a per-layer transcoder that the engine reads
    (module docstring). Its weights are views of the CLT's, never copies; it has `decoders` (all of
    layer l's, [d_sae, n_layers - l, d_out]) instead of a per-layer W_dec, so code that would read
    only one decoder fails instead of silently dropping the cross-layer ones."""

    W_skip = None  # a CLT has no skip term

    def __init__(self, clt: CrossLayerTranscoder, layer: int) -> None:
        self.clt, self.layer = clt, layer

    @property
    def W_enc(self) -> Float[Tensor, "d_in d_sae"]:
        return self.clt.W_enc[self.layer]

    @property
    def decoders(self) -> Float[Tensor, "d_sae n_out d_out"]:
        return self.clt.W_dec[self.layer]

    @property
    def b_dec_out(self) -> Float[Tensor, " d_out"]:
        return self.clt.b_dec_out[self.layer]

    def pre_activations(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        # as Dictionary.pre_activations, so equal weights give equal activations, bit for bit
        flat = (x - self.clt.b_dec[self.layer]).reshape(-1, x.shape[-1])
        return torch.addmm(self.clt.b_enc[self.layer], flat, self.W_enc).reshape(*x.shape[:-1], -1)

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """`CrossLayerTranscoder.encode` at this layer only: ReLU, or JumpReLU at its thresholds."""
        pre = self.pre_activations(x)
        if self.clt.log_threshold is None:
            return torch.relu(pre)
        return pre * (pre > self.clt.log_threshold[self.layer].detach().exp())

    def effective_encoder_bias(self) -> Float[Tensor, " d_sae"]:
        return self.clt.effective_encoder_bias()[self.layer]

    @property
    def dtype(self) -> torch.dtype:
        return self.clt.dtype

    @property
    def device(self) -> torch.device:
        return self.clt.W_enc.device


FeatureLayer = Dictionary | CrossLayerSlice
Replacement = Mapping[int, Dictionary] | Sequence[Dictionary] | CrossLayerTranscoder


def spliceable(transcoders: Replacement) -> list[Dictionary | CrossLayerTranscoder]:
    """What `evaluation.spliced` splices for a replacement: the per-layer transcoders, or the CLT."""
    if isinstance(transcoders, CrossLayerTranscoder):
        return [transcoders]
    return list(transcoders.values()) if isinstance(transcoders, Mapping) else list(transcoders)


def decoder_stack(tc: FeatureLayer) -> Float[Tensor, "d_sae n_out d_out"]:
    """A feature layer's decoders, index j writing into MLP (its layer + j); detached."""
    decoders = tc.decoders if isinstance(tc, CrossLayerSlice) else tc.W_dec[:, None]
    return decoders.detach()


def decoders_into(
    transcoders: Mapping[int, FeatureLayer], layer: int
) -> list[tuple[int, Float[Tensor, "d_sae d_out"]]]:
    """(source layer, its decoder into MLP `layer`) for every feature layer that writes there: the
    transcoder of `layer` itself, or with a CLT the slices of layers 0..layer."""
    pairs = []
    for source, tc in transcoders.items():
        decoders = decoder_stack(tc)
        if source <= layer < source + decoders.shape[1]:
            pairs.append((source, decoders[:, layer - source]))
    return pairs


@torch.no_grad()
def reconstruction_errors(
    transcoders: Mapping[int, FeatureLayer],
    feature_acts: Mapping[int, Float[Tensor, "pos d_sae"]],
    mlp_in: Mapping[int, Float[Tensor, "pos d_in"]],
    mlp_out: Float[Tensor, "n_layers pos d_out"],
) -> dict[int, Float[Tensor, "pos d_out"]]:
    """error_l' = mlp_out_l' - y_hat_l' for every replaced MLP (module docstring), in float64 from the
    activations the engine uses, so that the decomposition of an MLP output into features, bias,
    skip and error is exact. `mlp_in` is each feature layer's input in its own dtype."""
    written: dict[int, Tensor] = {}  # Σ_{l <= l'} z_l W_dec[l -> l'], per MLP l'
    for layer, tc in transcoders.items():
        decoders = decoder_stack(tc)
        n_out, d_out = decoders.shape[1:]
        out = feature_acts[layer].to(_F64) @ decoders.flatten(1).to(_F64)
        for j, part in enumerate(out.view(-1, n_out, d_out).unbind(dim=1)):
            written[layer + j] = written[layer + j] + part if layer + j in written else part
    errors = {}
    for layer, tc in transcoders.items():
        y_hat = written[layer] + tc.b_dec_out.detach().to(_F64)
        if tc.W_skip is not None:
            y_hat = y_hat + mlp_in[layer].to(_F64) @ tc.W_skip.detach().to(_F64)
        errors[layer] = mlp_out[layer] - y_hat.to(mlp_out.device)
    return errors


def feature_layers(model: HookedTransformer, transcoders: Replacement) -> dict[int, FeatureLayer]:
    """The engine's map layer -> feature layer, after checking the dictionaries fit `model`:
    per-layer transcoders (a map layer -> transcoder, or a sequence of them) or one CLT."""
    d_model, n_layers = model.cfg.d_model, model.cfg.n_layers
    if isinstance(transcoders, CrossLayerTranscoder):
        spec = transcoders.spec
        if (spec.n_layers, spec.d_in, spec.d_out) != (n_layers, d_model, d_model):
            raise ValueError(
                f"the cross-layer transcoder has {spec.n_layers} layers mapping {spec.d_in} -> "
                f"{spec.d_out}; the model has {n_layers} layers of width {d_model}"
            )
        return {layer: CrossLayerSlice(transcoders, layer) for layer in range(n_layers)}
    pairs = (
        transcoders.items() if isinstance(transcoders, Mapping) else [(d.spec.layer, d) for d in transcoders]
    )
    result: dict[int, FeatureLayer] = {}
    for layer, tc in pairs:
        spec = tc.spec
        if not spec.is_transcoder:
            raise ValueError(f"attribution needs transcoders; got a {spec.kind.value} at layer {layer}")
        if spec.layer != layer or not 0 <= layer < n_layers:
            raise ValueError(f"transcoder for layer {spec.layer} given at layer {layer} of {n_layers}")
        if layer in result:
            raise ValueError(f"two transcoders for layer {layer}")
        if spec.d_in != d_model or spec.d_out != d_model:
            raise ValueError(f"transcoder {layer} maps {spec.d_in} -> {spec.d_out}; the model has {d_model}")
        result[layer] = tc
    return dict(sorted(result.items()))
