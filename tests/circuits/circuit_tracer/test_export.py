"""Export to circuit-tracer 0.5.0's transcoder-set layout, checked against an independent
reimplementation of what its loader and ReLU transcoder do (names, shapes, orientation, formulas),
and, opt-in, against circuit-tracer itself in another Python environment."""

import os
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from transcoder_lab import io
from transcoder_lab.circuits.circuit_tracer.export import (
    CONFIG_FILENAME,
    ExportError,
    circuit_tracer_paths,
    export_dictionaries,
    export_transcoder_set,
    main,
    read_export_config,
)
from transcoder_lab.dictionaries import Dictionary, DictionarySpec, save_dictionary

D_MODEL, D_SAE, N_LAYERS = 12, 40, 3


def transcoder(layer: int, skip: bool = False, d_sae: int = D_SAE, **spec) -> Dictionary:
    """A random tiny transcoder with every bias non-zero (the pre-bias too, so folding matters)."""
    fields = dict(kind="transcoder", layer=layer, d_in=D_MODEL, d_sae=d_sae, d_out=D_MODEL, skip=skip)
    fields.update({"model_name": "organism", **spec})
    generator = torch.Generator().manual_seed(layer)
    dictionary = Dictionary.initialise(DictionarySpec(**fields), generator=generator)
    with torch.no_grad():
        for name, param in dictionary.named_parameters():
            if name.startswith("b_"):
                param.copy_(0.3 * torch.randn(param.shape, generator=generator))
        if dictionary.W_skip is not None:
            dictionary.W_skip.copy_(0.1 * torch.randn(D_MODEL, D_MODEL, generator=generator))
    return dictionary


def load_like_circuit_tracer(path: Path) -> dict[str, torch.Tensor]:
    """What circuit-tracer's `load_relu_transcoder` reads, restated: tensors by name from one
    safetensors file; ReLU unless a JumpReLU threshold is present; d_sae from b_enc, d_model from b_dec;
    W_enc and W_dec both [d_sae, d_model]; W_skip [d_model, d_model]."""
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    assert "activation_function.threshold" not in tensors and "log_thresholds" not in tensors
    d_sae, d_model = tensors["b_enc"].shape[0], tensors["b_dec"].shape[0]
    shapes = {"W_enc": (d_sae, d_model), "W_dec": (d_sae, d_model), "b_enc": (d_sae,), "b_dec": (d_model,)}
    if "W_skip" in tensors:
        shapes["W_skip"] = (d_model, d_model)
    assert {name: tuple(t.shape) for name, t in tensors.items()} == shapes
    return tensors


def circuit_tracer_encode(tensors: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return torch.relu(F.linear(x, tensors["W_enc"], tensors["b_enc"]))


def circuit_tracer_decode(tensors: dict[str, torch.Tensor], f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    y = f @ tensors["W_dec"] + tensors["b_dec"]
    return y + x @ tensors["W_skip"].T if "W_skip" in tensors else y


@pytest.mark.parametrize("skip", [False, True], ids=["transcoder", "skip_transcoder"])
def test_exported_tensors_compute_our_features_and_outputs(tmp_path, skip):
    dictionaries = {layer: transcoder(layer, skip) for layer in range(N_LAYERS)}
    export_dictionaries(dictionaries, tmp_path)
    x = torch.randn(64, D_MODEL, generator=torch.Generator().manual_seed(9))
    for layer, ours in dictionaries.items():
        tensors = load_like_circuit_tracer(tmp_path / f"layer_{layer}.safetensors")
        assert all(t.dtype == torch.float32 for t in tensors.values())
        with torch.no_grad():
            z, y = ours.encode(x), ours(x)[0]
        features = circuit_tracer_encode(tensors, x)
        assert 0 < (features > 0).float().mean() < 1  # some features fire, some do not
        torch.testing.assert_close(features, z, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(circuit_tracer_decode(tensors, features, x), y, rtol=1e-5, atol=1e-5)


def test_export_from_saved_directories_writes_circuit_tracers_config(tmp_path):
    dirs = {}
    for layer in range(N_LAYERS):
        dirs[layer] = save_dictionary(transcoder(layer), tmp_path / "dictionaries" / f"L{layer}")
    config_path = export_transcoder_set(dirs, tmp_path / "export", scan="lab/organism-tc")
    config = yaml.safe_load(config_path.read_text())
    assert config_path.name == CONFIG_FILENAME and config == read_export_config(tmp_path / "export")
    assert config["model_kind"] == "transcoder_set" and config["model_name"] == "organism"
    # circuit-tracer hooks f"blocks.{layer}.{hook}": our hooks without the block prefix
    assert (config["feature_input_hook"], config["feature_output_hook"]) == (
        "ln2.hook_normalized",
        "hook_mlp_out",
    )
    assert (
        config["scan"] == "lab/organism-tc" and "transcoders" not in config
    )  # hub layout: layer_*.safetensors
    assert config["transcoder_lab"]["sources"] == {layer: str(path) for layer, path in dirs.items()}
    paths = circuit_tracer_paths(tmp_path / "export")
    assert sorted(paths) == list(range(N_LAYERS))
    ours = transcoder(1)
    with safe_open(paths[1], framework="pt", device="cpu") as handle:  # circuit-tracer's lazy decoder read
        rows = handle.get_slice("W_dec")[torch.tensor([3, 7]).numpy()]
        assert torch.equal(rows, ours.W_dec.detach()[[3, 7]])
        assert torch.equal(handle.get_tensor("W_enc"), ours.W_enc.detach().T)


def test_export_in_bfloat16_halves_the_files(tmp_path):
    dictionaries = {layer: transcoder(layer) for layer in range(2)}
    export_dictionaries(dictionaries, tmp_path / "bf16", dtype=torch.bfloat16)
    tensors = load_file(tmp_path / "bf16" / "layer_0.safetensors")
    assert {t.dtype for t in tensors.values()} == {torch.bfloat16}
    assert read_export_config(tmp_path / "bf16")["transcoder_lab"]["dtype"] == "bfloat16"


@pytest.mark.parametrize(
    "dictionaries, message",
    [
        ({0: transcoder(0), 1: transcoder(1, architecture="topk", k=4)}, "ReLU and JumpReLU only"),
        (
            {0: transcoder(0), 1: transcoder(1, kind="sae_mlp_out")},
            "sae_mlp_out dictionary is not a transcoder",
        ),
        ({1: transcoder(1), 2: transcoder(2)}, r"layers 0..n-1 each once; got layers \[1, 2\]"),
        ({0: transcoder(0), 1: transcoder(1, d_sae=20)}, r"disagree on d_sae: \[20, 40\]"),
        ({0: transcoder(0), 1: transcoder(2)}, "given for layer 1 is of layer 2"),
        ({0: transcoder(0), 1: transcoder(1, model_name="gpt2")}, "disagree on model_name"),
        ({}, "no dictionaries"),
    ],
    ids=["topk", "sae", "missing_layer_0", "d_sae", "wrong_layer", "two_models", "empty"],
)
def test_sets_circuit_tracer_cannot_load_are_refused_before_writing(tmp_path, dictionaries, message):
    with pytest.raises(ExportError, match=message):
        export_dictionaries(dictionaries, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_reexport_removes_stale_layers_and_an_interrupted_one_is_incomplete(tmp_path, monkeypatch):
    export_dictionaries({layer: transcoder(layer) for layer in range(3)}, tmp_path)
    export_dictionaries({layer: transcoder(layer) for layer in range(2)}, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("layer_*")) == ["layer_0.safetensors", "layer_1.safetensors"]
    assert read_export_config(tmp_path)["transcoder_lab"]["n_layers"] == 2

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(io, "write_safetensors", fail)
    with pytest.raises(OSError, match="disk full"):
        export_dictionaries({layer: transcoder(layer) for layer in range(2)}, tmp_path)
    with pytest.raises(FileNotFoundError, match="not a complete export"):
        read_export_config(tmp_path)


def test_command_line_reads_layers_from_the_dictionaries(tmp_path, capsys):
    dirs = [save_dictionary(transcoder(layer), tmp_path / f"L{layer}") for layer in range(N_LAYERS)]
    assert main([str(tmp_path / "out"), *map(str, reversed(dirs)), "--model-name", "organism-v2"]) == 0
    assert read_export_config(tmp_path / "out")["model_name"] == "organism-v2"
    assert sorted(circuit_tracer_paths(tmp_path / "out")) == list(range(N_LAYERS))
    assert main([str(tmp_path / "again"), str(dirs[0]), str(dirs[0])]) == 1
    assert "both of layer 0" in capsys.readouterr().err


# Opt-in: circuit-tracer itself, in a Python environment of its own (it pins transformers<=4.57.3 and
# huggingface-hub<1, beside our 5.x and 2.x). E.g. `python3.11 -m venv /tmp/ct && /tmp/ct/bin/pip install
# torch==2.13.0 circuit-tracer==0.5.0` (~3 min), then TRANSCODER_LAB_CIRCUIT_TRACER_PYTHON=/tmp/ct/bin/python.
CIRCUIT_TRACER_PYTHON = os.environ.get("TRANSCODER_LAB_CIRCUIT_TRACER_PYTHON")

RUN_CIRCUIT_TRACER = """
import sys, torch
from importlib.metadata import version
from safetensors.torch import load_file, save_file
from circuit_tracer.transcoder import load_transcoder_set
folder, n_layers = sys.argv[1], int(sys.argv[2])
x = load_file(f"{folder}/x.safetensors")["x"]
outputs = {}
for lazy in (True, False):
    paths = {layer: f"{folder}/export/layer_{layer}.safetensors" for layer in range(n_layers)}
    hooks = ("ln2.hook_normalized", "hook_mlp_out")
    tset = load_transcoder_set(paths, "lab/test", *hooks, device=torch.device("cpu"), dtype=torch.float32,
                               lazy_encoder=lazy, lazy_decoder=lazy)
    inputs = x.unsqueeze(0).expand(n_layers, *x.shape)  # [layer, pos, d_model]
    features = tset.encode(inputs)
    outputs[f"features_lazy{lazy}"] = features.detach()
    outputs[f"outputs_lazy{lazy}"] = tset.decode(features, inputs).detach()
save_file(outputs, f"{folder}/circuit_tracer.safetensors")
print(version("circuit-tracer"), tset.n_layers, tset.d_transcoder, tset.skip_connection)
"""


@pytest.mark.skipif(CIRCUIT_TRACER_PYTHON is None, reason="set TRANSCODER_LAB_CIRCUIT_TRACER_PYTHON")
@pytest.mark.parametrize("skip", [False, True], ids=["transcoder", "skip_transcoder"])
def test_circuit_tracer_loads_the_export_and_computes_our_outputs(tmp_path, skip):
    assert CIRCUIT_TRACER_PYTHON is not None
    dictionaries = {layer: transcoder(layer, skip) for layer in range(N_LAYERS)}
    export_dictionaries(dictionaries, tmp_path / "export")
    x = torch.randn(16, D_MODEL, generator=torch.Generator().manual_seed(9))
    save_file({"x": x}, tmp_path / "x.safetensors")
    run = subprocess.run(
        [CIRCUIT_TRACER_PYTHON, "-c", RUN_CIRCUIT_TRACER, str(tmp_path), str(N_LAYERS)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    print(f"circuit-tracer {run.stdout.strip()}")
    theirs = load_file(tmp_path / "circuit_tracer.safetensors")
    with torch.no_grad():
        z = torch.stack([dictionaries[layer].encode(x) for layer in range(N_LAYERS)])
        y = torch.stack([dictionaries[layer](x)[0] for layer in range(N_LAYERS)])
    for lazy in (True, False):
        for name, ours in (("features", z), ("outputs", y)):
            difference = (theirs[f"{name}_lazy{lazy}"] - ours).abs().max().item()
            print(f"lazy={lazy} {name}: max |difference| {difference:.2e}")
            torch.testing.assert_close(theirs[f"{name}_lazy{lazy}"], ours, rtol=1e-5, atol=1e-5)
