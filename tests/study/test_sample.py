"""Sampling: the SAE arm at the matched L0, live features only, replacements, a fixed seed."""

import json
from types import SimpleNamespace

import pytest
import torch

from transcoder_lab import io
from transcoder_lab.config import load_profile
from transcoder_lab.paths import dictionary_dir
from transcoder_lab.study.sample import Arm, StudyError, sample_arm, study_arms


def write_metrics(cfg, kind, l1, l0):
    io.write_json(dictionary_dir(cfg, 1, kind, l1) / "heldout_metrics.json", {"l0": l0, "fvu": 0.1})


def test_the_sae_arm_is_the_l1_with_the_closest_heldout_l0(tmp_path):
    cfg = load_profile("tiny", tmp_path)  # layer 1, l1 in [1e-3, 1e-2], transcoder at 1e-3
    write_metrics(cfg, "transcoder", 1e-3, 10.0)
    write_metrics(cfg, "sae_mlp_in", 1e-3, 30.0)
    write_metrics(cfg, "sae_mlp_in", 1e-2, 12.5)
    arms = study_arms(cfg)
    assert (arms["transcoder"].l1_coefficient, arms["transcoder"].l0) == (1e-3, 10.0)
    assert (arms["sae"].kind, arms["sae"].l1_coefficient, arms["sae"].l0) == ("sae_mlp_in", 1e-2, 12.5)
    assert arms["sae"].l0_candidates == {"0.001": 30.0, "0.01": 12.5}


def test_missing_cells_and_metrics_are_named(tmp_path):
    with pytest.raises(StudyError, match="no 'L0_sae_mlp_in'"):
        study_arms(load_profile("tiny", tmp_path, ["profile.study.layer=0"]))
    with pytest.raises(StudyError, match="transcoder_l1 .* not one of"):
        study_arms(load_profile("tiny", tmp_path, ["profile.study.transcoder_l1=0.5"]))
    with pytest.raises(StudyError, match="heldout_metrics.json is missing"):
        study_arms(load_profile("tiny", tmp_path))


def fake_arm(tmp_path, frequency):
    io.write_safetensors(tmp_path / "sparsity.safetensors", {"sparsity": frequency})
    return Arm("transcoder", 1, "transcoder", 1e-3, str(tmp_path), 10.0, None)


def test_sampling_keeps_live_features_with_enough_activating_tokens(tmp_path):
    cfg = load_profile(
        "tiny", tmp_path, ["profile.study.n_per_arm=6", "profile.study.min_activating_tokens=2"]
    )
    frequency = torch.full((16,), -2.0)
    frequency[[3, 7]] = -10.0  # dead
    frequency[11] = -4.5  # alive but below min_log10_frequency (-4)
    counts = torch.full((16,), 5)
    counts[[0, 5, 9]] = 1  # too few activating tokens: replaced
    dictionary = SimpleNamespace(spec=SimpleNamespace(d_sae=16))
    first = sample_arm(fake_arm(tmp_path, frequency), dictionary, counts, cfg, 0, 100)
    assert len(first.features) == 6 and len(set(first.features)) == 6
    assert not set(first.features) & {0, 3, 5, 7, 9, 11}
    assert set(first.replaced) <= {0, 5, 9}
    assert first.arm.n_live == 13 and all(first.n_activating[f] == 5 for f in first.features)
    again = sample_arm(fake_arm(tmp_path, frequency), dictionary, counts, cfg, 0, 100)
    assert again.features == first.features
    other = sample_arm(fake_arm(tmp_path, frequency), dictionary, counts, cfg, 1, 100)
    assert other.features != first.features  # the SAE arm draws with another seed

    counts[:] = 1
    with pytest.raises(
        StudyError, match="has 0 live features active on at least 2 of the 100 scanned tokens"
    ):
        sample_arm(fake_arm(tmp_path, frequency), dictionary, counts, cfg, 0, 100)
    json.dumps(first.arm.to_json())


def test_one_shared_pass_gives_the_dashboards_activations(tiny_pipeline):
    """Both arms encode one cached MLP-input pass; it must equal dashboards.feature_activations."""
    from transcoder_lab.dictionaries import load_dictionary
    from transcoder_lab.sources.models import load_model
    from transcoder_lab.study.dashboards import feature_activations
    from transcoder_lab.study.sample import encode, hook_inputs, scan_contexts

    cfg, _ = tiny_pipeline
    model = load_model(cfg.profile, cfg.paths.models)
    scan = scan_contexts(cfg, model)
    assert scan.labels is not None and not scan.counted[:, 0].any()
    for kind in ("transcoder", "sae_mlp_in"):
        dictionary = load_dictionary(dictionary_dir(cfg, 1, kind, 1e-3))
        x = hook_inputs(model, dictionary.spec.hook_in, scan.contexts, 16)
        features = [0, 5, 17]
        expected = feature_activations(model, dictionary, scan.contexts, features, 16)
        torch.testing.assert_close(encode(dictionary, x, features, 16), expected, rtol=1e-5, atol=1e-6)
