"""Random models, transcoders and attribution contexts shared by the circuit tests.

The constructions themselves live in test_attribution.py (random processed models with LayerNorm
weights and biases everywhere, random transcoders with non-zero biases); this module imports them
rather than copying them, and adds the small contexts the path, graph and intervention tests use.
pytest puts this directory on sys.path (rootdir-relative "prepend" import mode, no __init__.py).
"""

import torch
from test_attribution import SMALL, random_processed_model, random_transcoder

from transcoder_lab.circuits import AttributionContext
from transcoder_lab.sources.models import gpt2_shaped_config

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


__all__ = ["N_POS", "SMALL", "random_processed_model", "random_transcoder", "small_context"]
