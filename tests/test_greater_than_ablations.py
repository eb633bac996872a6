"""The greater-than measurements by ablation (case_studies.greater_than_ablations): the fast paths
(cached activations, only the later blocks) against their hook-based definitions, on the tiny organism."""

import pytest
import torch

import transcoder_lab.case_studies as case_studies
from transcoder_lab.behaviour import greater_than_scores, last_token_logits
from transcoder_lab.case_studies.greater_than import prompts_for
from transcoder_lab.case_studies.greater_than_ablations import (
    KINDS,
    component_ranking,
    fast_curves,
    mlp_ablations,
    reference_curve,
    reference_mlp_ablations,
)
from transcoder_lab.dictionaries import Dictionary, DictionarySpec
from transcoder_lab.sources.hooks import mlp_out_hook
from transcoder_lab.sources.models import load_model
from transcoder_lab.sources.tokens import two_digit_token_ids


def _skip_transcoder(model, layer: int) -> Dictionary:
    """A random skip-transcoder with non-zero output bias and skip matrix (every term of the MLP
    output the fast path has to carry), some features active on most tokens."""
    d = model.cfg.d_model
    spec = DictionarySpec(kind="transcoder", layer=layer, d_in=d, d_sae=96, d_out=d, skip=True)
    generator = torch.Generator().manual_seed(3)
    dictionary = Dictionary.initialise(spec, generator)
    with torch.no_grad():
        dictionary.b_enc.copy_(0.5 * torch.randn(96, generator=generator))
        dictionary.b_dec_out.copy_(0.3 * torch.randn(d, generator=generator))
        dictionary.W_skip.copy_(0.05 * torch.randn(d, d, generator=generator))
    return dictionary


@pytest.mark.parametrize("protocol", ["zero", "mean"])
@pytest.mark.parametrize("which", ["layer 0 trained", "layer 1 trained (last layer)", "layer 0 skip"])
def test_fast_greater_than_curves_equal_the_hook_based_definition(tiny_pipeline, protocol, which):
    """`fast_curves` (cached activations, later blocks only, several n per pass, answer logits at the
    last token) against `reference_curve` (the whole model with hooks, once per n).

    Tolerance: both are float32 evaluations of the same function that differ only in summation
    order (the MLP output summed component by component instead of in one matrix product over every
    component; 100 answer logits instead of the full vocabulary; later blocks on a stacked batch).
    Each reordered sum of K terms moves by about sqrt(K) * 2^-24 of its terms' magnitude; with K at
    most a few hundred here and logits of order 10 that is ~1e-5 at worst per logit, and the
    probability difference moves by at most twice the largest logit change (the softmax Jacobian
    diag(p) - p p^T has induced infinity-to-one norm <= 2). Measured on the tiny profile: <= 3e-8."""
    cfg = tiny_pipeline[0]
    model = load_model(cfg.profile, cfg.paths.models)
    transcoders = case_studies.circuit_transcoders(cfg)
    transcoder = {
        "layer 0 trained": lambda: transcoders[0],
        "layer 1 trained (last layer)": lambda: transcoders[1],
        "layer 0 skip": lambda: _skip_transcoder(model, 0),
    }[which]()
    texts, yy = prompts_for(cfg)
    ids = two_digit_token_ids(model.tokenizer)
    ranking = component_ranking(model, texts, transcoder)
    n_max = 6
    fast = fast_curves(model, texts, yy, ids, ranking, protocol, n_max, n_per_pass=4)  # passes of 4 and 3
    for kind in KINDS:
        reference = reference_curve(model, texts, yy, ids, ranking, protocol, kind, n_max)
        assert fast[kind] == pytest.approx(reference, abs=2e-5), kind
        assert len(set(reference)) > 1, f"{kind}: the curve is flat, so the check would be vacuous"


def test_fast_mlp_ablations_equal_the_hook_based_definition(tiny_pipeline):
    """Step 2's per-layer ablations (cached residual streams, later blocks only) against the whole
    model run with hooks; tolerance as argued for the curves above."""
    cfg = tiny_pipeline[0]
    model = load_model(cfg.profile, cfg.paths.models)
    texts, yy = prompts_for(cfg)
    ids = two_digit_token_ids(model.tokenizer)
    layers = list(range(model.cfg.n_layers))
    fast = mlp_ablations(model, texts, yy, ids, layers)
    reference = reference_mlp_ablations(model, texts, yy, ids, layers)
    assert set(fast) == set(reference) == {"zero", "mean"}
    for protocol in reference:
        assert list(fast[protocol]) == layers
        for layer in layers:
            assert fast[protocol][layer] == pytest.approx(reference[protocol][layer], abs=2e-5), (
                protocol,
                layer,
            )


def test_fast_greater_than_curves_stay_complete_past_the_last_component(tiny_pipeline):
    """n beyond a curve's component count keeps every component: the value is the full one."""
    cfg = tiny_pipeline[0]
    model = load_model(cfg.profile, cfg.paths.models)
    transcoder = case_studies.circuit_transcoders(cfg)[1]  # the last layer: no later block to run
    texts, yy = prompts_for(cfg)
    ids = two_digit_token_ids(model.tokenizer)
    d_mlp = model.cfg.d_mlp
    assert transcoder.spec.d_sae > d_mlp  # so the neuron curve runs past its last component
    curves = fast_curves(
        model, texts, yy, ids, component_ranking(model, texts, transcoder), "zero", d_mlp + 3
    )
    assert curves["neurons"][d_mlp:] == [curves["neurons"][d_mlp]] * 4


def test_greater_than_n0_is_the_output_bias_not_the_mlp_removed(tiny_pipeline):
    """Under the paper's zeroing protocol n = 0 of the curves leaves the output bias: the feature
    curve starts at the MLP output replaced by the transcoder's b_dec_out at every position, the
    neuron curve at the output replaced by the MLP's b_out (not zero, so this is not the MLP
    removed, whose output is zeroed)."""
    cfg = tiny_pipeline[0]
    model = load_model(cfg.profile, cfg.paths.models)
    transcoder = case_studies.circuit_transcoders(cfg)[0]
    texts, yy = prompts_for(cfg)
    ids = two_digit_token_ids(model.tokenizer)

    def pd_with_mlp_output(value: torch.Tensor) -> float:
        hook = (mlp_out_hook(0), lambda activation, hook: value.expand_as(activation).clone())
        with model.hooks(fwd_hooks=[hook]):
            return greater_than_scores(last_token_logits(model, texts), yy, ids)["probability_difference"]

    curves = fast_curves(model, texts, yy, ids, component_ranking(model, texts, transcoder), "zero", 0)
    bias_out = model.blocks[0].mlp.b_out.detach()
    assert bias_out.abs().max() > 0  # otherwise "bias only" and "removed" would coincide
    # float32 summation-order differences, as argued in the test above
    assert curves["features"][0] == pytest.approx(pd_with_mlp_output(transcoder.b_dec_out.detach()), abs=2e-5)
    assert curves["neurons"][0] == pytest.approx(pd_with_mlp_output(bias_out), abs=2e-5)
