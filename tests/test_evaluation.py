"""Reconstruction metrics on hand-built dictionaries."""

import pytest
import torch

from transcoder_lab.dictionaries import Dictionary, DictionarySpec
from transcoder_lab.evaluation import reconstruction_metrics
from transcoder_lab.models import mlp_in_hook, mlp_out_hook

IN, OUT = mlp_in_hook(0), mlp_out_hook(0)


def identity_transcoder(d: int) -> Dictionary:
    """Features +e_i and -e_i: y_hat = relu(x) - relu(-x) = x exactly, with L0 = nonzero coords."""
    spec = DictionarySpec(kind="transcoder", layer=0, d_in=d, d_sae=2 * d, d_out=d)
    dictionary = Dictionary(spec)
    eye = torch.eye(d)
    with torch.no_grad():
        dictionary.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        dictionary.W_dec.copy_(torch.cat([eye, -eye], dim=0))
    return dictionary


def batches(d: int = 4, n: int = 3):
    g = torch.Generator().manual_seed(0)
    return [{IN: (x := torch.randn(16, d, generator=g)), OUT: x} for _ in range(n)]


def test_perfect_dictionary_has_zero_fvu_and_counts_l0():
    metrics = reconstruction_metrics(identity_transcoder(4), batches())
    assert metrics["fvu"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["l0"] == pytest.approx(4.0)  # each coordinate of a Gaussian is nonzero: one feature each
    assert metrics["dead_fraction"] == 0.0 and metrics["n_rows"] == 48


def test_predicting_the_mean_has_fvu_one_and_every_feature_dead():
    data = batches()
    mean = torch.cat([b[OUT] for b in data]).mean(0)
    dictionary = identity_transcoder(4)
    with torch.no_grad():
        dictionary.b_enc.fill_(-1e6)  # nothing fires
        dictionary.b_dec_out.copy_(mean)
    metrics = reconstruction_metrics(dictionary, data)
    assert metrics["fvu"] == pytest.approx(1.0, rel=1e-9)
    assert metrics["l0"] == 0.0 and metrics["dead_fraction"] == 1.0 and metrics["live_fraction"] == 0.0
