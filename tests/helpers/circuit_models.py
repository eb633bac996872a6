"""Random models, transcoders and attribution contexts shared by the circuit tests: random processed
models with LayerNorm weights and biases everywhere, random transcoders with non-zero biases, and the
small contexts the attribution, path, graph and intervention tests use."""

import torch
from transformer_lens import HookedTransformer

from transcoder_lab.case_studies.common import LabelledTokens
from transcoder_lab.circuits import AttributionContext
from transcoder_lab.data import BOS_LABEL
from transcoder_lab.dictionaries import Dictionary, DictionarySpec
from transcoder_lab.dictionaries.crosslayer import CrossLayerSpec, CrossLayerTranscoder
from transcoder_lab.sources.models import build_processed_model
from transcoder_lab.standins.gpt2 import gpt2_shaped_config


def random_processed_model(config, seed: int = 0) -> HookedTransformer:
    """Random raw weights with non-trivial LayerNorm weights, biases everywhere (b_V included, so
    fold_value_biases has work to do) and sharper attention, then the standard processing."""
    g = torch.Generator().manual_seed(seed)
    raw = HookedTransformer(config).state_dict()
    for name, tensor in raw.items():
        if not tensor.is_floating_point() or name.endswith(("IGNORE", "mask")):
            continue
        noise = torch.randn(tensor.shape, generator=g)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "w":  # LayerNorm weights
            raw[name] = 1 + 0.3 * noise
        elif leaf.startswith("b"):  # LayerNorm biases, b_Q, b_K, b_V, b_O, b_in, b_out, b_U
            raw[name] = 0.1 * noise
        elif leaf in ("W_Q", "W_K"):
            raw[name] = tensor * 8
    return build_processed_model(config, raw)


def random_transcoder(
    layer: int, d_model: int, d_sae: int, seed: int, architecture: str = "relu", k=None, skip=False
) -> Dictionary:
    spec = DictionarySpec("transcoder", layer, d_model, d_sae, d_model, architecture, k, skip)
    g = torch.Generator().manual_seed(seed)
    tc = Dictionary.initialise(spec, generator=g)
    with torch.no_grad():
        tc.b_enc.copy_(0.3 * torch.randn(d_sae, generator=g))
        tc.b_dec.copy_(0.3 * torch.randn(d_model, generator=g))
        tc.b_dec_out.copy_(0.3 * torch.randn(d_model, generator=g))
        if skip:
            tc.W_skip.copy_(0.05 * torch.randn(d_model, d_model, generator=g))
    return tc


SMALL = dict(n_layers=4, d_model=64, d_head=16, n_heads=4, d_mlp=256, d_vocab=100, n_ctx=32)
N_POS = 10


def small_model(seed: int = 1):
    return random_processed_model(gpt2_shaped_config(seed=seed, **SMALL), seed=seed)


def small_tokens(n_pos: int = N_POS, seed: int = 3) -> torch.Tensor:
    return torch.randint(0, SMALL["d_vocab"], (n_pos,), generator=torch.Generator().manual_seed(seed))


def small_transcoders(d_sae: int = 128, skip_layer: int | None = None):
    """A ReLU transcoder on every layer of `SMALL` (a skip-transcoder at `skip_layer`)."""
    return {
        layer: random_transcoder(layer, SMALL["d_model"], d_sae, seed=10 + layer, skip=layer == skip_layer)
        for layer in range(SMALL["n_layers"])
    }


def small_context(skip_layer: int | None = None):
    model, tokens = small_model(), small_tokens()
    tcs = small_transcoders(skip_layer=skip_layer)
    return model, tcs, tokens, AttributionContext.from_tokens(model, tcs, tokens)


def small_clt(d_sae: int = 32, seed: int = 7) -> CrossLayerTranscoder:
    """A ReLU cross-layer transcoder over every layer of `SMALL`: the random init with encoder
    biases drawn too, so its features fire on some tokens and not others."""
    spec = CrossLayerSpec(
        n_layers=SMALL["n_layers"], d_in=SMALL["d_model"], d_out=SMALL["d_model"], d_sae=d_sae
    )
    g = torch.Generator().manual_seed(seed)
    clt = CrossLayerTranscoder.initialise(spec, generator=g)
    with torch.no_grad():
        clt.b_enc.copy_(0.5 * torch.randn(clt.b_enc.shape, generator=g) - 0.5)
    return clt


def crosslayer_from(
    transcoders: dict[int, Dictionary], cross_scale: float, recipe: str = "l1_decoder_norm"
) -> CrossLayerTranscoder:
    """A CLT over the transcoders' layers (0..n-1) whose encoders, biases and own-layer decoders are
    theirs and whose cross-layer decoders are random rows of norm ~cross_scale (zero for 0), in their
    dtype: with cross_scale 0 it computes exactly what the transcoders compute."""
    first = transcoders[0].spec
    n_layers, d_model, d_sae, dtype = len(transcoders), first.d_in, first.d_sae, transcoders[0].W_enc.dtype
    spec = CrossLayerSpec(n_layers=n_layers, d_in=d_model, d_out=d_model, d_sae=d_sae, recipe=recipe)
    clt = CrossLayerTranscoder(spec, dtype=dtype)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for layer, tc in transcoders.items():
            clt.W_enc[layer] = tc.W_enc
            clt.b_enc[layer], clt.b_dec[layer], clt.b_dec_out[layer] = tc.b_enc, tc.b_dec, tc.b_dec_out
            clt.W_dec[layer][:, 0] = tc.W_dec
            cross = torch.randn(d_sae, n_layers - layer - 1, d_model, generator=g, dtype=dtype)
            clt.W_dec[layer][:, 1:] = cross_scale * cross / d_model**0.5
        if clt.log_threshold is not None:  # JumpReLU thresholds exp(t) around 0.1
            clt.log_threshold.copy_(-2.3 + 0.3 * torch.randn(n_layers, d_sae, generator=g, dtype=dtype))
    return clt


LABEL_NAMES = ("background", "citation/semicolon", "citation/year", "prose/semicolon")


def labelled_tokens(n: int = 8, n_ctx: int = 16, bos: int = 0, seed: int = 5) -> LabelledTokens:
    """Random BOS-led contexts of `SMALL`'s vocabulary with random ground-truth labels of
    `LABEL_NAMES` (mostly background), as `common.labelled_heldout` packs the corpus's."""
    g = torch.Generator().manual_seed(seed)
    contexts = torch.randint(1, SMALL["d_vocab"], (n, n_ctx), generator=g)
    labels = torch.multinomial(torch.tensor([0.6, 0.15, 0.15, 0.1]), n * n_ctx, True, generator=g).view(
        n, n_ctx
    )
    contexts[:, 0], labels[:, 0] = bos, BOS_LABEL
    return LabelledTokens(contexts, labels, LABEL_NAMES)


__all__ = [
    "LABEL_NAMES",
    "N_POS",
    "SMALL",
    "crosslayer_from",
    "labelled_tokens",
    "random_processed_model",
    "random_transcoder",
    "small_clt",
    "small_context",
]
