"""Model loading: hook names, the offline GPT-2 error, GPT-2-shaped random models, processing,
and weights files that load under any TransformerLens in our pins (parameters only, buffers dropped)."""

import copy
import json
import os
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from transcoder_lab.config import compose, load_config
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook
from transcoder_lab.sources.models import (
    build_processed_model,
    load_raw_weights_,
    parameter_state_dict,
    saved_parameters,
)
from transcoder_lab.standins.gpt2 import GPT2_SMALL_SHAPE, gpt2_shaped_config


def test_hook_names():
    assert mlp_in_hook(8) == "blocks.8.ln2.hook_normalized"
    assert mlp_out_hook(8) == "blocks.8.hook_mlp_out"


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


# -- weights files across TransformerLens versions --------------------------------------------

SMALL = dict(n_layers=2, d_model=64, d_head=16, n_heads=4, d_mlp=256, d_vocab=500, n_ctx=32)


def _raw_model():
    """A raw (unprocessed) small model with non-trivial LayerNorm weights, and its config."""
    from transformer_lens import HookedTransformer

    config = gpt2_shaped_config(seed=3, **SMALL)
    raw = HookedTransformer(config)
    with torch.no_grad():
        for name, param in raw.named_parameters():
            if ".ln" in name or name.startswith("ln_final"):
                param.add_(0.3 * torch.randn_like(param))
    return raw, config


def _with_old_mask(state: dict[str, torch.Tensor], n_ctx: int) -> dict[str, torch.Tensor]:
    """`state` with each attention mask as TransformerLens 3.2 stores it: the full causal [n_ctx, n_ctx]
    mask (3.9 stores an empty [0, 0] placeholder and builds the mask per forward pass)."""
    causal = torch.tril(torch.ones(n_ctx, n_ctx, dtype=torch.bool))
    return {name: causal.clone() if name.endswith(".attn.mask") else t for name, t in state.items()}


def test_parameter_state_dict_holds_parameters_and_no_buffers():
    raw, _ = _raw_model()
    state = parameter_state_dict(raw)
    assert set(state) == {name for name, _ in raw.named_parameters()}
    assert not {name for name, _ in raw.named_buffers()} & set(state)
    assert {"blocks.0.attn.mask", "blocks.0.attn.IGNORE"} <= set(raw.state_dict())  # what was dropped


def test_files_with_buffers_of_either_version_load_like_parameters_only():
    """Parameters only (new saves), a full 3.9 state dict ([0, 0] masks: organisms saved before the
    parameters-only rule) and a 3.2 one ([n_ctx, n_ctx] masks) give bit-identical processed models."""
    raw, config = _raw_model()
    variants = {
        "parameters": parameter_state_dict(raw),
        "3.9 state dict": raw.state_dict(),
        "3.2 state dict": _with_old_mask(raw.state_dict(), SMALL["n_ctx"]),
    }
    models = {name: build_processed_model(config, state) for name, state in variants.items()}
    reference = models.pop("parameters").state_dict()
    for model in models.values():
        state = model.state_dict()
        assert state.keys() == reference.keys()
        for key, tensor in reference.items():
            assert torch.equal(state[key], tensor), key  # buffers too: each model keeps its own


def test_loading_keeps_the_models_own_buffers():
    """A model whose mask buffer has another version's shape (3.2's [n_ctx, n_ctx]) loads a 3.9 file
    ([0, 0] masks) and keeps its own mask. (TransformerLens 3.9 itself replaces a mismatched buffer,
    3.2.1 raises "size mismatch for blocks.0.attn.mask": the opt-in test below runs 3.2.1.)"""
    from transformer_lens import HookedTransformer

    raw, config = _raw_model()
    model = HookedTransformer(copy.deepcopy(config))  # processing rewrites the model's config
    causal = torch.tril(torch.ones(SMALL["n_ctx"], SMALL["n_ctx"], dtype=torch.bool))
    for block in model.blocks:
        block.attn.register_buffer("mask", causal.clone())
    load_raw_weights_(model, raw.state_dict())
    assert all(torch.equal(block.attn.mask, causal) for block in model.blocks)
    expected = build_processed_model(config, parameter_state_dict(raw))
    parameters = dict(model.named_parameters())
    for name, param in expected.named_parameters():
        assert torch.equal(parameters[name], param), name


def test_building_twice_from_one_config_loads_the_layer_norms_both_times():
    """Processing turns the model's config to LNPre; the caller's config must stay LN, or a second
    build would find the file's LayerNorm weights unexpected."""
    raw, config = _raw_model()
    first, second = (build_processed_model(config, raw.state_dict()) for _ in range(2))
    assert config.normalization_type == "LN" and second.cfg.normalization_type == "LNPre"
    for name, param in first.named_parameters():
        assert torch.equal(dict(second.named_parameters())[name], param), name


def test_saved_parameters_are_checked_strictly():
    raw, _ = _raw_model()
    state = raw.state_dict()
    assert set(saved_parameters(state, raw)) == {name for name, _ in raw.named_parameters()}
    # rotary tables are buffers of other models: dropped although this model has none
    assert "blocks.0.attn.rotary_sin" not in saved_parameters(
        {**state, "blocks.0.attn.rotary_sin": torch.ones(1)}, raw
    )
    missing = {name: t for name, t in state.items() if name != "blocks.1.mlp.W_in"}
    with pytest.raises(ValueError, match=r"missing \['blocks.1.mlp.W_in'\]"):
        saved_parameters(missing, raw, "model.safetensors")
    with pytest.raises(ValueError, match=r"unexpected \['blocks.0.mlp.W_gate'\]"):
        saved_parameters({**state, "blocks.0.mlp.W_gate": torch.ones(1)}, raw)
    with pytest.raises(ValueError, match=r"wrong shape \['embed.W_E \(3, 64\)"):
        saved_parameters({**state, "embed.W_E": torch.ones(3, 64)}, raw)


# A TransformerLens other than this environment's (e.g. the lowest in our pins, 3.2.1) can be checked
# by pointing this variable at a Python that has it, with torch, safetensors, omegaconf, tokenizers and
# transformers (our package comes from src/ on PYTHONPATH). Building such an environment takes ~3 min
# and PyPI, so the test is opt-in; tests above cover the same logic within this environment.
OTHER_TL_PYTHON = os.environ.get("TRANSCODER_LAB_OTHER_TL_PYTHON")

CONFIG_FIELDS = (
    "n_layers", "d_model", "d_head", "n_heads", "d_mlp", "n_ctx", "d_vocab", "act_fn",
    "normalization_type", "positional_embedding_type",
)  # fmt: skip
LOAD_UNDER_OTHER_TL = """
import json, sys, warnings
warnings.filterwarnings("ignore", category=DeprecationWarning)
from importlib.metadata import version
from safetensors.torch import load_file, save_file
from transformer_lens import HookedTransformerConfig
from transcoder_lab.sources.models import build_processed_model

folder = sys.argv[1]
fields = json.load(open(f"{folder}/config.json"))
tokens = load_file(f"{folder}/tokens.safetensors")["tokens"]
logits = {}
for name in ("parameters", "state_dict"):
    weights = load_file(f"{folder}/{name}.safetensors")
    model = build_processed_model(HookedTransformerConfig(**fields), weights)
    logits[name] = model(tokens).detach()
save_file(logits, f"{folder}/logits.safetensors")
print(version("transformer-lens"))
"""


@pytest.mark.skipif(
    OTHER_TL_PYTHON is None, reason="set TRANSCODER_LAB_OTHER_TL_PYTHON to a Python with another TL"
)
def test_files_saved_here_load_under_another_transformer_lens(tmp_path):
    """Files saved here (parameters only, and a full state dict as organisms saved before) load under
    the other TransformerLens and give this environment's log-probs."""
    assert OTHER_TL_PYTHON is not None
    raw, config = _raw_model()
    save_file(parameter_state_dict(raw), tmp_path / "parameters.safetensors")
    save_file(
        {name: t.contiguous() for name, t in raw.state_dict().items()}, tmp_path / "state_dict.safetensors"
    )
    fields = {key: getattr(config, key) for key in CONFIG_FIELDS}
    (tmp_path / "config.json").write_text(json.dumps(fields))
    tokens = torch.randint(
        0, SMALL["d_vocab"], (3, SMALL["n_ctx"]), generator=torch.Generator().manual_seed(0)
    )
    save_file({"tokens": tokens}, tmp_path / "tokens.safetensors")
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": str(src)}
    run = subprocess.run(
        [OTHER_TL_PYTHON, "-c", LOAD_UNDER_OTHER_TL, str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    print(f"loaded under transformer-lens {run.stdout.strip()} (here {version('transformer-lens')})")
    ours = build_processed_model(config, parameter_state_dict(raw))(tokens).log_softmax(-1)
    for name, logits in load_file(tmp_path / "logits.safetensors").items():
        difference = (logits.log_softmax(-1) - ours).abs().max().item()
        print(f"{name}: max |log-prob difference| {difference:.2e}")
        assert difference < 1e-5, name
