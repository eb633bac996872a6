"""Import of the published transcoders: exact file structure, same math, and refusal of hostile pickles."""

import contextlib
import os
import pickle
import sys
import types
from dataclasses import dataclass, field

import pytest
import torch
from sae_lens import SAE
from torch import nn

from transcoder_lab.dictionaries import (
    load_dictionary,
    load_dictionary_metadata,
    load_log10_frequency,
)
from transcoder_lab.dictionaries.published import (
    import_published_transcoder,
    published_sparsity_filename,
    published_weights_filename,
    restricted_torch_load,
)

LAYER, D_IN, D_SAE = 8, 16, 64


@dataclass
class LanguageModelSAERunnerConfig:
    """Shaped like sae_training's config: plain fields plus a torch dtype and a torch.device."""

    model_name: str = "gpt2-small"
    hook_point: str = f"blocks.{LAYER}.ln2.hook_normalized"
    hook_point_layer: int = LAYER
    out_hook_point: str = f"blocks.{LAYER}.hook_mlp_out"
    out_hook_point_layer: int = LAYER
    is_transcoder: bool = True
    d_in: int = D_IN
    d_out: int = D_IN
    expansion_factor: int = D_SAE // D_IN
    l1_coefficient: float = 1.4e-4
    lr: float = 4e-4
    total_training_tokens: int = 60_000_000
    train_batch_size: int = 4096
    context_size: int = 128
    dtype: torch.dtype = torch.float32
    device: str = "cpu"
    use_ghost_grads: tuple = (False,)  # the original has a stray comma making this a tuple
    wandb_entity: str | None = None
    extra: dict = field(default_factory=lambda: {"note": "kept as data"})

    def __post_init__(self):
        self.d_sae = self.d_in * self.expansion_factor
        self.device = torch.device(self.device)


LanguageModelSAERunnerConfig.__module__ = "sae_training.config"


class PublishedModule(nn.Module):
    """Produces a state_dict exactly as the original SparseAutoencoder.state_dict() would."""

    def __init__(self, generator: torch.Generator):
        super().__init__()

        def randn(*shape):
            return nn.Parameter(torch.randn(*shape, generator=generator))

        self.W_enc, self.b_enc = randn(D_IN, D_SAE), randn(D_SAE)
        self.W_dec, self.b_dec, self.b_dec_out = randn(D_SAE, D_IN), randn(D_IN), randn(D_IN)


@contextlib.contextmanager
def sae_training_importable():
    """Make `sae_training.config` importable only while pickling, so the loader cannot use it."""
    package = types.ModuleType("sae_training")
    config_module = types.ModuleType("sae_training.config")
    config_module.LanguageModelSAERunnerConfig = LanguageModelSAERunnerConfig
    package.config = config_module
    sys.modules["sae_training"], sys.modules["sae_training.config"] = package, config_module
    try:
        yield
    finally:
        del sys.modules["sae_training"], sys.modules["sae_training.config"]


@pytest.fixture
def published_files(tmp_path):
    module = PublishedModule(torch.Generator().manual_seed(0))
    state_dict = module.state_dict()
    weights_path = tmp_path / published_weights_filename(LAYER)
    with sae_training_importable():
        torch.save({"cfg": LanguageModelSAERunnerConfig(), "state_dict": state_dict}, weights_path)
    frequency = torch.linspace(-6, -1, D_SAE)
    frequency[:5] = -10.0  # dead features
    sparsity_path = tmp_path / published_sparsity_filename(LAYER)
    torch.save(frequency, sparsity_path)
    assert "sae_training.config" not in sys.modules
    return weights_path, sparsity_path, {name: t.clone() for name, t in state_dict.items()}, frequency


def test_filenames():
    prefix = "final_sparse_autoencoder_gpt2-small_blocks.8.ln2.hook_normalized_24576"
    assert published_weights_filename(8) == f"{prefix}.pt"
    assert published_sparsity_filename(8) == f"{prefix}_log_feature_sparsity.pt"


def test_import_matches_the_published_math_and_records_the_config(tmp_path, published_files):
    weights_path, sparsity_path, state, frequency = published_files
    out_dir = tmp_path / "imported"
    imported = import_published_transcoder(weights_path, sparsity_path, LAYER, out_dir)
    assert imported.spec.hook_in == "blocks.8.ln2.hook_normalized"
    assert imported.spec.hook_out == "blocks.8.hook_mlp_out"

    x = torch.randn(32, D_IN, generator=torch.Generator().manual_seed(1)) + state["b_dec"]
    z = torch.relu((x - state["b_dec"]) @ state["W_enc"] + state["b_enc"])
    y = z @ state["W_dec"] + state["b_dec_out"]
    assert (z > 0).any() and (z == 0).any()
    loaded = load_dictionary(out_dir)
    sae = SAE.load_from_disk(out_dir)
    with torch.no_grad():
        for dictionary in (imported, loaded):
            y_hat, z_hat = dictionary(x)
            assert torch.allclose(z_hat, z, atol=1e-5) and torch.allclose(y_hat, y, atol=1e-5)
        assert torch.allclose(sae(x), y, atol=1e-5)
    assert torch.count_nonzero(loaded.b_dec) == 0  # pre-bias folded for sae-lens

    assert torch.equal(load_log10_frequency(out_dir), frequency)
    metadata = load_dictionary_metadata(out_dir)
    assert metadata["l1_coefficient"] == 1.4e-4 and metadata["lr"] == 4e-4
    assert metadata["total_training_tokens"] == 60_000_000
    cfg = metadata["published_cfg"]
    assert cfg["d_sae"] == D_SAE and cfg["hook_point"] == "blocks.8.ln2.hook_normalized"
    assert cfg["dtype"] == "torch.float32" and cfg["device"] == "cpu"
    assert cfg["use_ghost_grads"] == [False] and cfg["extra"] == {"note": "kept as data"}
    assert metadata["source"]["repo"] == "pchlenski/gpt2-transcoders"
    assert metadata["source"]["weights_file"] == weights_path.name
    assert "sae_training.config" not in sys.modules  # the real class was never imported


def test_wrong_layer_is_refused(tmp_path, published_files):
    weights_path, sparsity_path, _, _ = published_files
    with pytest.raises(ValueError, match="hook_point"):
        import_published_transcoder(weights_path, sparsity_path, 9, tmp_path / "out")
    assert not (tmp_path / "out").exists()


class SystemCall:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize(
    ("payload", "refused"), [(SystemCall, f"{os.system.__module__}.system"), (Eval, "builtins.eval")]
)
def test_hostile_pickles_are_refused_without_running(tmp_path, published_files, payload, refused):
    _, sparsity_path, state, _ = published_files
    marker = tmp_path / "pwned"
    hostile_path = tmp_path / "hostile.pt"
    torch.save({"cfg": payload(marker), "state_dict": state}, hostile_path)
    with pytest.raises(pickle.UnpicklingError, match=f"'{refused}'"):
        import_published_transcoder(hostile_path, sparsity_path, LAYER, tmp_path / "out")
    with pytest.raises(pickle.UnpicklingError, match=f"'{refused}'"):
        restricted_torch_load(hostile_path)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_other_torch_globals_are_refused(tmp_path):
    # A tensor subclass / Parameter needs torch._utils._rebuild_parameter: not on the allow-list.
    path = tmp_path / "parameter.pt"
    torch.save({"p": nn.Parameter(torch.zeros(2))}, path)
    with pytest.raises(pickle.UnpicklingError, match="'torch._utils._rebuild_parameter'"):
        restricted_torch_load(path)


def test_missing_tensor_and_bad_shape_are_named(tmp_path, published_files):
    _, sparsity_path, state, _ = published_files
    broken = dict(state)
    broken["b_enc"] = torch.zeros(D_SAE + 1)
    path = tmp_path / "broken.pt"
    torch.save({"cfg": None, "state_dict": broken}, path)
    with pytest.raises(ValueError, match="'b_enc'"):
        import_published_transcoder(path, sparsity_path, LAYER, tmp_path / "out")
    del broken["b_dec_out"]
    torch.save({"cfg": None, "state_dict": broken}, path)
    with pytest.raises(ValueError, match="b_dec_out"):
        import_published_transcoder(path, sparsity_path, LAYER, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        import_published_transcoder(tmp_path / "nothing.pt", sparsity_path, LAYER, tmp_path / "out")
