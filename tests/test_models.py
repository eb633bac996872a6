"""Model loading: hook names, the offline GPT-2 error, GPT-2-shaped random models, processing."""

import pytest
import torch

from transcoder_lab.config import compose, load_config
from transcoder_lab.models import (
    GPT2_SMALL_SHAPE,
    ModelUnavailableError,
    build_processed_model,
    gpt2_shaped_config,
    load_model,
    mlp_in_hook,
    mlp_out_hook,
)


def test_hook_names():
    assert mlp_in_hook(8) == "blocks.8.ln2.hook_normalized"
    assert mlp_out_hook(8) == "blocks.8.hook_mlp_out"


def test_offline_gpt2_fails_at_once_with_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache" / "hub"))
    profile = load_config(compose(["profile=gpt2_small"])).profile
    with pytest.raises(ModelUnavailableError) as error:
        load_model(profile)
    message = str(error.value)
    assert "'gpt2'" in message and "not in the cache" in message
    assert "organism" in message and "dvc" in message


def test_gpt2_shaped_random_model_through_the_processing_path():
    config = gpt2_shaped_config(seed=0, n_layers=2)  # two layers of GPT-2's exact widths, for speed
    model = build_processed_model(config)
    assert model.cfg.normalization_type == "LNPre"  # fold_ln happened
    shape = GPT2_SMALL_SHAPE
    assert model.W_E.shape == (shape["d_vocab"], shape["d_model"])
    assert model.W_in.shape == (2, shape["d_model"], shape["d_mlp"])
    assert model.W_Q.shape == (2, shape["n_heads"], shape["d_model"], shape["d_head"])
    _, cache = model.run_with_cache(
        torch.tensor([[0, 1, 2, 3]]), names_filter=[mlp_in_hook(1), mlp_out_hook(1)]
    )
    assert cache[mlp_in_hook(1)].shape == (1, 4, shape["d_model"])
    assert cache[mlp_out_hook(1)].shape == (1, 4, shape["d_model"])


def test_gpt2_shaped_config_matches_gpt2_small_profile():
    config = gpt2_shaped_config()
    model = load_config(compose(["profile=gpt2_small"])).profile.model
    assert (config.n_layers, config.d_model, config.d_mlp, config.n_heads, config.d_head, config.d_vocab) == (
        model.n_layers, model.d_model, model.d_mlp, model.n_heads, model.d_head, 50257,
    )  # fmt: skip


def _processing_difference(d_mlp: int) -> float:
    """Largest log-prob change from processing a random 2-layer model (d_model 64)."""
    from transformer_lens import HookedTransformer

    shape = dict(n_layers=2, d_model=64, d_head=16, n_heads=4, d_mlp=d_mlp, d_vocab=500)
    config = gpt2_shaped_config(seed=1, **shape)
    raw = HookedTransformer(config)
    # Non-trivial LayerNorm weights and biases, so folding them has something to do.
    with torch.no_grad():
        for name, param in raw.named_parameters():
            if ".ln" in name or name.startswith("ln_final") or name.endswith("b_V"):
                param.add_(0.3 * torch.randn_like(param))
    tokens = torch.randint(0, 500, (3, 12))
    processed = build_processed_model(config, raw.state_dict())
    return (raw(tokens).log_softmax(-1) - processed(tokens).log_softmax(-1)).abs().max().item()


def test_processing_leaves_log_probs_unchanged():
    """fold_ln, centring and value-bias folding are exact up to float32 rounding."""
    assert _processing_difference(d_mlp=256) < 1e-4


def test_processing_is_wrong_for_square_mlp_weights():
    """Why the config rejects d_mlp == d_model: TransformerLens's processing changes such a model by
    far more than rounding. If this starts failing, TransformerLens fixed it and the check can go."""
    assert _processing_difference(d_mlp=64) > 1e-2
