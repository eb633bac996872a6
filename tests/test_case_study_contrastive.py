"""Contrastive case studies on matched prompt pairs (case_studies.contrastive) on the tiny organism:
the pairs differ only at the planted context, patching every position reproduces the neutral run,
and a context the root does not read is judged BELOW."""

import time

import pytest
import torch

from transcoder_lab.case_studies import contrastive as cc
from transcoder_lab.case_studies.common import circuit_transcoders, settings_for
from transcoder_lab.case_studies.feature import choose_root, heldout_tokens, study_prompts
from transcoder_lab.config import FaithfulnessConfig
from transcoder_lab.sources.models import load_model


@pytest.fixture(scope="module")
def caught(tiny_pipeline):
    """The caught study's root, prompts and planted context on the tiny organism."""
    cfg, _ = tiny_pipeline
    model = load_model(cfg.profile, cfg.paths.models)
    settings = settings_for(cfg, cfg.case_study["caught"], "caught")
    transcoders = circuit_transcoders(cfg)
    heldout = heldout_tokens(cfg, model)
    root = choose_root(settings, model, transcoders, heldout)
    prompts = study_prompts(model, heldout, settings)[0][:10]
    neutral = model.to_single_token(settings.neutral_token)
    return model, settings, transcoders, heldout, root, prompts, neutral


def test_pairs_differ_only_at_the_context_and_patching_everything_gives_the_neutral_run(caught):
    model, settings, transcoders, heldout, root, prompts, neutral = caught
    context_ids = torch.tensor(heldout.label_ids(settings.context_labels))
    n_pairs = 0
    for prompt in prompts:
        matched = cc.matched_pair(prompt, context_ids, neutral)
        if matched is None:
            continue
        n_pairs += 1
        other, context = matched
        assert other.shape == prompt.tokens.shape
        assert (other != prompt.tokens).nonzero().flatten().tolist() == [
            p for p in context if prompt.tokens[p] != neutral
        ]
        assert all(0 < p < len(prompt.tokens) - 1 for p in context)
        assert (other[context] == neutral).all()
        pair = cc.contrastive_pair(
            model, transcoders, root.layer, root.feature, prompt.tokens, other, context
        )
        if pair["patched_all_share_by_layer"][0] is not None:  # a difference to share
            for share in pair["patched_all_share_by_layer"]:  # every layer: all of it
                assert share == pytest.approx(1.0, abs=1e-5)
            assert pair["patched_context_share_by_layer"][0] == pytest.approx(1.0, abs=1e-5)
        assert pair["attributed_difference"] == pytest.approx(pair["difference"], abs=1e-3)
    assert n_pairs > 0


def test_contrastive_check_is_below_when_the_named_context_is_not_what_the_root_reads(caught):
    """As the ground-truth test: the most frequent label in the prompts' context other than the
    planted one (and the target) named as the context; BELOW under the configured bars, ok only
    when the bars are lowered past what was measured."""
    model, settings, transcoders, heldout, root, prompts, neutral = caught
    counts = torch.bincount(torch.cat([p.labels[1:-1] for p in prompts]).clamp(min=0))
    counts[heldout.label_ids(settings.context_labels + settings.target_labels)] = 0
    other = heldout.name_of(int(counts.argmax()))

    def check(bars: FaithfulnessConfig, labels: list[str]) -> dict:
        return cc.contrastive_check(
            model, transcoders, root.layer, root.feature, prompts, heldout, labels, neutral, bars
        )

    bars = FaithfulnessConfig()
    start = time.perf_counter()
    planted = check(bars, settings.context_labels)
    print(f"contrastive check, {planted['n_pairs']} pairs: {time.perf_counter() - start:.2f} s")
    print(cc.describe_contrastive(planted))
    assert planted["n_pairs"] > 0 and planted["verdict"] in ("ok", "BELOW")
    wrong = check(bars, [other])
    print(cc.describe_contrastive(wrong))
    assert wrong["n_pairs"] > 0 and wrong["verdict"] == "BELOW", (other, wrong)
    share = wrong["patched_context_share_at_root_layer"]["median"]
    assert share is not None and share < bars.min_context_loss
    lowered = FaithfulnessConfig(min_context_loss=share - 1e-9)
    assert check(lowered, [other])["verdict"] == "ok"
