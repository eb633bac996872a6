"""Organism training on the tiny profile: determinism, resume, processing, saved files."""

import dataclasses
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

from transcoder_lab.config import compose, load_config
from transcoder_lab.organism.build import build_corpus
from transcoder_lab.organism.train import learning_rate, train_organism
from transcoder_lab.sources.models import MODEL_CONFIG, MODEL_WEIGHTS, load_organism


@pytest.fixture(scope="module")
def tiny():
    return load_config(compose(["profile=tiny"])).profile


@pytest.fixture(scope="module")
def corpus_dir(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    build_corpus(tiny.corpus, out)
    return out


def test_first_step_loss_is_deterministic_for_a_seed(tiny, corpus_dir, tmp_path):
    one_step = dataclasses.replace(tiny.training, max_steps=1)
    a = train_organism(tiny.model, one_step, corpus_dir, tmp_path / "a", tmp_path / "ca")
    b = train_organism(tiny.model, one_step, corpus_dir, tmp_path / "b", tmp_path / "cb")
    assert a.first_step_loss == b.first_step_loss
    other_seed = dataclasses.replace(one_step, seed=1)
    c = train_organism(tiny.model, other_seed, corpus_dir, tmp_path / "c", tmp_path / "cc")
    assert c.first_step_loss != a.first_step_loss


def test_resumed_run_ends_with_the_same_weights(tiny, corpus_dir, tmp_path):
    cfg = tiny.training  # 10 steps, checkpoint every 5
    train_organism(tiny.model, cfg, corpus_dir, tmp_path / "straight", tmp_path / "c1")
    interrupted = train_organism(
        tiny.model, cfg, corpus_dir, tmp_path / "resumed", tmp_path / "c2", stop_after_step=5
    )
    assert interrupted.steps == 5 and not (tmp_path / "resumed" / MODEL_WEIGHTS).exists()
    resumed = train_organism(tiny.model, cfg, corpus_dir, tmp_path / "resumed", tmp_path / "c2")
    assert resumed.resumed_from_step == 5 and resumed.steps == cfg.max_steps
    straight = load_file(tmp_path / "straight" / MODEL_WEIGHTS)
    again = load_file(tmp_path / "resumed" / MODEL_WEIGHTS)
    for name in straight:
        torch.testing.assert_close(again[name], straight[name], rtol=0, atol=1e-6)


def test_checkpoint_of_another_config_is_not_resumed(tiny, corpus_dir, tmp_path):
    train_organism(tiny.model, tiny.training, corpus_dir, tmp_path / "m", tmp_path / "c", stop_after_step=5)
    changed = dataclasses.replace(tiny.training, lr=tiny.training.lr / 2)
    result = train_organism(tiny.model, changed, corpus_dir, tmp_path / "m", tmp_path / "c")
    assert result.resumed_from_step == 0


def test_checkpoint_of_other_training_code_is_not_resumed(tiny, corpus_dir, tmp_path, monkeypatch):
    """The fingerprint holds the training module's source hash: edited code starts afresh."""
    from transcoder_lab import io

    train_organism(tiny.model, tiny.training, corpus_dir, tmp_path / "m", tmp_path / "c", stop_after_step=5)
    monkeypatch.setattr(io, "sha256_file", lambda path: "edited source")
    result = train_organism(tiny.model, tiny.training, corpus_dir, tmp_path / "m", tmp_path / "c")
    assert result.resumed_from_step == 0


def test_saved_organism_loads_processed_and_takes_strings(tiny, corpus_dir, tmp_path):
    result = train_organism(tiny.model, tiny.training, corpus_dir, tmp_path / "m", tmp_path / "c")
    assert result.processing_max_logprob_diff < 1e-4
    model = load_organism(tmp_path / "m")
    assert model.cfg.normalization_type == "LNPre"
    tokens = model.to_str_tokens("The siege lasted from the year 1732 to the year 17")
    assert tokens[0] == "<|endoftext|>" and tokens[-1] == " 17"
    year_start = tokens.index(" 17")
    assert tokens[year_start + 1] == "32"


def test_saved_weights_are_parameters_and_older_files_with_buffers_load_the_same(tiny, corpus_dir, tmp_path):
    """New saves hold parameters only; a file saved before that rule (the full state dict, with
    TransformerLens's mask and IGNORE buffers, as the committed organism is) loads to the same model."""
    train_organism(tiny.model, tiny.training, corpus_dir, tmp_path / "m", tmp_path / "c")
    saved = load_file(tmp_path / "m" / MODEL_WEIGHTS)
    fresh = HookedTransformer(
        HookedTransformerConfig(**json.loads((tmp_path / "m" / MODEL_CONFIG).read_text()))
    )
    assert set(saved) == {name for name, _ in fresh.named_parameters()}
    shutil.copytree(tmp_path / "m", tmp_path / "old")
    buffers = {name: buffer.contiguous() for name, buffer in fresh.named_buffers()}
    assert any(name.endswith(".attn.mask") for name in buffers)
    save_file({**saved, **buffers}, tmp_path / "old" / MODEL_WEIGHTS)
    new, old = load_organism(tmp_path / "m").state_dict(), load_organism(tmp_path / "old").state_dict()
    assert new.keys() == old.keys() and all(torch.equal(new[key], old[key]) for key in new)


def test_learning_rate_schedule_warms_up_then_decays(tiny):
    cfg = dataclasses.replace(tiny.training, lr=1.0, warmup_steps=10, max_steps=110, min_lr_fraction=0.1)
    assert learning_rate(0, cfg) == pytest.approx(0.1)
    assert learning_rate(9, cfg) == pytest.approx(1.0)
    assert learning_rate(60, cfg) == pytest.approx(0.55)
    assert learning_rate(110, cfg) == pytest.approx(0.1)


def test_two_runs_give_bit_identical_weights_and_restore_the_global_setting(tiny, corpus_dir, tmp_path):
    """Training uses deterministic kernels (two runs differed at 1e-8 without them) and leaves
    torch's global determinism settings as it found them."""
    before = torch.are_deterministic_algorithms_enabled()
    fill_before = torch.utils.deterministic.fill_uninitialized_memory
    cfg = dataclasses.replace(tiny.training, max_steps=30, checkpoint_every=1000)
    for run in ("a", "b"):
        train_organism(tiny.model, cfg, corpus_dir, tmp_path / run, tmp_path / f"c{run}")
    a, b = (load_file(tmp_path / run / MODEL_WEIGHTS) for run in ("a", "b"))
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert torch.are_deterministic_algorithms_enabled() == before
    assert torch.utils.deterministic.fill_uninitialized_memory == fill_before
