"""The gpt2_small profile's code paths, offline: a random model of GPT-2 small's exact shape
stands in for the hub weights, a few generated documents for OpenWebText."""

import pytest
import torch

from transcoder_lab.config import compose, load_config
from transcoder_lab.dictionaries import load_dictionary
from transcoder_lab.models import GPT2_SMALL_SHAPE, build_processed_model, gpt2_shaped_config
from transcoder_lab.organism.tokenizer import train_tokenizer
from transcoder_lab.stage import load_stage


@pytest.fixture(scope="module")
def random_gpt2():
    texts = [f"The war lasted from the year 17{yy:02d} to the year 17{yy + 1:02d}." for yy in range(90)]
    tokenizer = train_tokenizer(texts, vocab_size=400)  # stands in for GPT-2's (not on this machine)
    model = build_processed_model(gpt2_shaped_config(seed=0))
    model.set_tokenizer(tokenizer)
    return model, texts


def test_paper_dictionary_grid_streams_and_trains_on_gpt2_shapes(random_gpt2, tmp_path, monkeypatch):
    model, texts = random_gpt2
    stage = load_stage("dictionaries")
    monkeypatch.setattr(stage, "load_model", lambda profile, models_dir: model)
    monkeypatch.setattr(stage, "hub_texts", lambda dataset: iter(texts * 4))
    cfg = load_config(
        compose(
            [
                "profile=gpt2_small",
                f"paths.dictionaries={tmp_path}",
                "profile.dictionaries.expansion_factor=1",  # GPT-2 widths, a narrow dictionary
                "profile.dictionaries.l1_coefficients=[1.4e-4]",
                "profile.dictionaries.harvest.context_size=16",
                "profile.dictionaries.harvest.batch_contexts=4",
                "profile.dictionaries.harvest.buffer_tokens=256",
                "profile.dictionaries.training.batch_size=64",
                "profile.dictionaries.training.n_steps=3",
                "profile.dictionaries.training.warmup_steps=1",
                "profile.dictionaries.training.checkpoint_every=3",
                "profile.dictionaries.training.frequency_window_steps=2",
            ]
        )
    )
    assert cfg.profile.dictionaries.harvest.dataset == "Skylion007/openwebtext"
    monkeypatch.chdir(tmp_path)
    results = stage.run(cfg)
    assert [r.steps for r in results] == [3, 3]
    transcoder = load_dictionary(tmp_path / "gpt2_small" / "L8_transcoder" / "l1_0.00014")
    assert transcoder.spec.hook_in == "blocks.8.ln2.hook_normalized"
    assert transcoder.spec.hook_out == "blocks.8.hook_mlp_out"
    assert transcoder.W_enc.shape == (GPT2_SMALL_SHAPE["d_model"], GPT2_SMALL_SHAPE["d_model"])
    assert torch.isfinite(transcoder.W_dec).all()


def test_import_stage_has_one_instance_per_published_layer():
    cfg = load_config(compose(["profile=gpt2_small"]))
    assert cfg.profile.published_transcoder_layers == list(range(12))
    assert load_config(compose(["profile=organism"])).profile.published_transcoder_layers == []
