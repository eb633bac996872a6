"""The gpt2_small profile's code paths, offline: a random model of GPT-2 small's exact shape
stands in for the hub weights, a few generated documents for OpenWebText."""

import pytest
import torch

from transcoder_lab.config import compose, load_config
from transcoder_lab.dictionaries import Dictionary, DictionarySpec, load_dictionary, save_dictionary
from transcoder_lab.models import GPT2_SMALL_SHAPE, build_processed_model, gpt2_shaped_config
from transcoder_lab.organism.tokenizer import train_tokenizer
from transcoder_lab.paths import dictionary_dir, published_dir
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
    assert [r.steps for r in results] == [3] * len(cfg.profile.dictionaries.cells)
    transcoder = load_dictionary(tmp_path / "gpt2_small" / "L8_transcoder" / "l1_0.00014")
    assert transcoder.spec.hook_in == "blocks.8.ln2.hook_normalized"
    assert transcoder.spec.hook_out == "blocks.8.hook_mlp_out"
    assert transcoder.W_enc.shape == (GPT2_SMALL_SHAPE["d_model"], GPT2_SMALL_SHAPE["d_model"])
    assert torch.isfinite(transcoder.W_dec).all()


def test_import_stage_has_one_instance_per_published_layer():
    cfg = load_config(compose(["profile=gpt2_small"]))
    assert cfg.profile.published_transcoder_layers == list(range(12))
    assert load_config(compose(["profile=organism"])).profile.published_transcoder_layers == []


def test_paper_evaluation_streams_heldout_text_and_splices_published_transcoders(
    random_gpt2, tmp_path, monkeypatch
):
    """Splice-all from `published/` dictionaries, on held-out contexts streamed after a skip."""
    model, texts = random_gpt2
    stage = load_stage("evaluate")
    skipped = []
    monkeypatch.setattr(stage, "load_model", lambda profile, models_dir: model)
    monkeypatch.setattr(stage, "hub_texts", lambda dataset, skip: skipped.append(skip) or iter(texts * 4))
    overrides = [
        "profile=gpt2_small",
        *[f"paths.{key}={tmp_path / key}" for key in ("dictionaries", "results", "figures")],
        "profile.dictionaries.cells=[L1_transcoder,L1_sae_mlp_out]",
        "profile.dictionaries.l1_coefficients=[1.4e-4]",
        "profile.dictionaries.expansion_factor=1",
        "profile.dictionaries.harvest.context_size=16",
        "profile.evaluation.n_contexts=6",
        "profile.evaluation.batch_size=3",
        "profile.evaluation.splice_all_layers=[0,1]",
    ]
    cfg = load_config(compose(overrides))
    d = GPT2_SMALL_SHAPE["d_model"]
    for layer in (0, 1):
        spec = DictionarySpec(kind="transcoder", layer=layer, d_in=d, d_sae=64, d_out=d, model_name="gpt2")
        save_dictionary(
            Dictionary.initialise(spec, torch.Generator().manual_seed(layer)), published_dir(cfg, layer)
        )
    for kind in ("transcoder", "sae_mlp_out"):
        spec = DictionarySpec(kind=kind, layer=1, d_in=d, d_sae=d, d_out=d, model_name="gpt2")
        save_dictionary(
            Dictionary.initialise(spec, torch.Generator().manual_seed(3)),
            dictionary_dir(cfg, 1, kind, 1.4e-4),
        )
    result = stage.run(cfg)
    assert skipped == [cfg.profile.evaluation.heldout_skip_documents]
    assert result["splice_all"]["layers"] == [0, 1] and result["splice_all"]["source"] == "published"
    assert list(result["pareto"]["kind"]) == ["transcoder", "sae_mlp_out"]
    report = (tmp_path / "results" / "gpt2_small" / "expected_vs_measured.md").read_text()
    assert "`splice_all.ce_clean` | 3.5928 ± 0.05" in report  # the paper's numbers beside ours
