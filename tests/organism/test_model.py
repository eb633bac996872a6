"""The organism's training model equals TransformerLens's GPT-2 on the same weights."""

import dataclasses
import subprocess
import sys

import pytest
import torch
from transformer_lens import HookedTransformer

from transcoder_lab.config import REPO_ROOT, compose, load_config
from transcoder_lab.organism.model import OrganismModel, build_organism_model
from transcoder_lab.sources.models import hooked_config

D_VOCAB = 97


@pytest.fixture(scope="module")
def model_cfg():
    return load_config(compose(["profile=tiny"])).profile.model


def scrambled_pair(model_cfg, seed: int = 3) -> tuple[OrganismModel, HookedTransformer]:
    """Both models in float64 with the same random weights, every parameter (biases and LayerNorm
    included) drawn large enough that attention is far from uniform: a mixed-up head, a transposed
    matrix or a dropped bias shows up as an O(1) difference."""
    ours = build_organism_model(model_cfg, D_VOCAB, seed=0).double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in ours.parameters():
            param.copy_(torch.randn(param.shape, generator=generator, dtype=torch.float64) * 0.5)
    lens_cfg = hooked_config(model_cfg, D_VOCAB, seed=0)
    lens_cfg.dtype = torch.float64  # TransformerLens casts the attention pattern to cfg.dtype
    lens = HookedTransformer(lens_cfg).double()
    lens.load_state_dict(ours.state_dict(), strict=False)
    return ours, lens


def test_initialisation_is_transformer_lens_gpt2_init(model_cfg):
    ours = build_organism_model(model_cfg, D_VOCAB, seed=5)
    torch.manual_seed(5)
    lens = HookedTransformer(hooked_config(model_cfg, D_VOCAB, seed=5))
    assert [name for name, _ in ours.named_parameters()] == [name for name, _ in lens.named_parameters()]
    lens_params = dict(lens.named_parameters())
    assert all(torch.equal(param, lens_params[name]) for name, param in ours.named_parameters())


def test_state_dict_loads_into_transformer_lens_and_covers_every_parameter(model_cfg):
    ours, lens = scrambled_pair(model_cfg)
    assert set(ours.state_dict()) == {name for name, _ in lens.named_parameters()}
    lens_params = dict(lens.named_parameters())
    assert all(torch.equal(param, lens_params[name]) for name, param in ours.named_parameters())


def test_logits_loss_and_gradients_equal_transformer_lens_in_float64(model_cfg):
    """Same mathematics, different kernels: in float64 the two agree to rounding (~1e-15 relative
    per operation, a few hundred operations deep), so 1e-10 leaves room and catches any real error."""
    ours, lens = scrambled_pair(model_cfg)
    tokens = torch.randint(0, D_VOCAB, (3, model_cfg.n_ctx), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ours(tokens), lens(tokens), rtol=1e-10, atol=1e-10)

    our_loss, lens_loss = ours.next_token_loss(tokens), lens(tokens, return_type="loss")
    torch.testing.assert_close(our_loss, lens_loss, rtol=1e-12, atol=0)
    our_loss.backward()
    lens_loss.backward()
    lens_params = dict(lens.named_parameters())
    for name, param in ours.named_parameters():
        torch.testing.assert_close(param.grad, lens_params[name].grad, rtol=1e-10, atol=1e-12, msg=name)


def test_shorter_prompts_use_the_first_positions(model_cfg):
    ours, lens = scrambled_pair(model_cfg)
    tokens = torch.tensor([[1, 5, 7, 2, 9]])
    torch.testing.assert_close(ours(tokens), lens(tokens), rtol=1e-10, atol=1e-10)


def test_other_activation_functions_are_refused(model_cfg):
    with pytest.raises(ValueError, match="gelu_new"):
        OrganismModel(dataclasses.replace(model_cfg, act_fn="relu"), D_VOCAB)


def test_the_step_benchmark_runs_on_the_tiny_profile():
    """benchmarks/bench_organism.py end to end at the smallest sizes (its timings are not checked)."""
    script = REPO_ROOT / "benchmarks" / "bench_organism.py"
    args = ["--profile", "tiny", "--steps", "1", "--rounds", "1", "--warmup", "1"]
    run = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr
    assert "ours: " in run.stdout and "speed-up ours / TransformerLens" in run.stdout
