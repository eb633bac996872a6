"""Every feature's ground-truth label and top held-out contexts (case_studies.feature_labels): a
planted case whose labels, F1s and examples are known by construction, the same answers as the blind
study's ground-truth rater, and per-layer transcoders and a cross-layer transcoder on a small model."""

import pytest
import torch

from transcoder_lab.case_studies.common import LabelledTokens, layer_activations
from transcoder_lab.case_studies.feature_labels import (
    EXAMPLES_TITLE,
    FeatureLabels,
    heldout_feature_labels,
    label_layer,
)
from transcoder_lab.config import GroundTruthRaterConfig
from transcoder_lab.data import BOS_LABEL
from transcoder_lab.organism.ground_truth import NO_LABEL, label_candidates
from transcoder_lab.sources.hooks import mlp_in_hook
from transcoder_lab.study.packet import ScanData
from transcoder_lab.study.rater import candidates, evidence

from helpers.circuit_models import LABEL_NAMES, labelled_tokens, small_clt, small_model, small_transcoders

RULE = GroundTruthRaterConfig()
# per context: BOS, then background, citation semicolon, background, citation year, prose semicolon,
# background, citation semicolon
ROW = [BOS_LABEL, 0, 1, 0, 2, 3, 0, 1]
N, N_CTX = 4, len(ROW)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # much faster for these tiny products, and fair to a shared machine
    yield
    torch.set_num_threads(threads)


def planted() -> tuple[LabelledTokens, torch.Tensor]:
    """(tokens, activations [N, N_CTX, 5]): feature 0 fires 2 + 0.1·row + 0.01·position on the 8
    citation semicolons and the prose semicolons of rows 0-1, faintly (0.05, under the rule's 10%)
    on background, and hugely on BOS (which never counts); 1 never fires; 2 fires on background
    only; 3 on the citation family; 4 on the prose semicolons of rows 2-3 only."""
    labels = torch.tensor([ROW] * N)
    contexts = torch.arange(N * N_CTX).view(N, N_CTX) % 50
    acts = torch.zeros(N, N_CTX, 5)
    row = torch.arange(N)[:, None].expand(N, N_CTX)
    position = torch.arange(N_CTX)[None].expand(N, N_CTX)
    strength = 2 + 0.1 * row + 0.01 * position
    acts[..., 0] = torch.where((labels == 1) | ((labels == 3) & (row < 2)), strength, 0.05 * (labels == 0))
    acts[:, 0, 0] = 100.0
    acts[..., 2] = (labels == 0).float()
    acts[..., 3] = ((labels == 1) | (labels == 2)).float()
    acts[..., 4] = ((labels == 3) & (row >= 2)).float()
    return LabelledTokens(contexts, labels, LABEL_NAMES), acts


def test_planted_labels_f1_and_examples():
    tokens, acts = planted()
    c = label_candidates(tokens.labels[tokens.labels != BOS_LABEL], list(LABEL_NAMES), RULE.exclude_labels)
    # batch_size 3: the top contexts are merged across chunks
    result = label_layer(
        lambda x: x, acts, tokens.labels, c, RULE, n_examples=3, window=4, after=1, batch_size=3
    )
    names = [c.names[i] if i != NO_LABEL else None for i in result.label.tolist()]
    assert names == ["citation/semicolon", None, None, "citation/*", "prose/semicolon"]
    # feature 0: 10 active tokens, 8 of them the 8 citation semicolons
    assert result.n_active.tolist() == [10, 0, 12, 12, 2]
    assert result.f1.tolist() == pytest.approx([2 * 8 / (10 + 8), 0, 0, 1, 2 * 2 / (2 + 4)])
    assert result.max_act[0] == pytest.approx(2.37)  # row 3, position 7: not BOS's 100

    labels = FeatureLabels(tokens, c, {2: result})
    assert labels.clerps() == {
        (2, 0): "citation/semicolon 0.89",
        (2, 1): "never active",
        (2, 2): "no label",
        (2, 3): "citation/* 1.00",
        (2, 4): "prose/semicolon 0.67",
    }
    # the top contexts, largest first: rows 3, 2, 1 at position 7; a window of 4 would end one token
    # after it, past the context, so it moves left to positions 4-7 with the centred token last
    examples = labels.examples(2, 0)
    assert [ids for ids, _, _ in examples] == [tokens.contexts[r, 4:8].tolist() for r in (3, 2, 1)]
    assert [center for _, _, center in examples] == [3, 3, 3]
    for (_, window_acts, _), r in zip(examples, (3, 2, 1), strict=True):
        assert window_acts == pytest.approx(acts[r, 4:8, 0].tolist())
    assert labels.examples(2, 1) == []  # never active: no example
    files = labels.viewer_files([(2, 0), (2, 1)], lambda t: f"w{t}")
    (group,) = files[(2, 0)]["examples_quantiles"]
    assert group["quantile_name"] == f"{EXAMPLES_TITLE} (citation/semicolon 0.89)"
    assert group["examples"][0]["tokens"] == [f"w{t}" for t in tokens.contexts[3, 4:8].tolist()]
    assert group["examples"][0]["train_token_ind"] == 3
    assert files[(2, 0)]["act_max"] == pytest.approx(2.37)
    assert files[(2, 1)]["examples_quantiles"] == []


def test_labels_are_the_ground_truth_raters():
    """Each feature's best label and F1 equal the rater's evidence for it, read off a scan."""
    tokens, acts = planted()
    c = label_candidates(tokens.labels[tokens.labels != BOS_LABEL], list(LABEL_NAMES), RULE.exclude_labels)
    result = label_layer(lambda x: x, acts, tokens.labels, c, RULE)
    counted = tokens.labels != BOS_LABEL
    flat = (acts * counted[..., None]).reshape(-1, acts.shape[-1])
    index = [torch.nonzero(flat[:, f] > 0).flatten() for f in range(flat.shape[1])]
    scan = ScanData(
        tokens=tokens.contexts, counted=counted, labels=tokens.labels, label_names=list(LABEL_NAMES),
        active_offsets=torch.tensor([0] + [len(i) for i in index]).cumsum(0), active_index=torch.cat(index),
        active_values=torch.cat([flat[i, f] for f, i in enumerate(index)]),
    )  # fmt: skip
    rater = candidates(scan, RULE)
    for feature in range(flat.shape[1]):
        e = evidence(scan, feature + 1, RULE, rater)
        best = int(result.label[feature])
        assert (c.names[best] if best != NO_LABEL else None) == e.best_label
        assert float(result.f1[feature]) == pytest.approx(e.best_label_f1)
        assert int(result.n_active[feature]) == e.n_active


@pytest.fixture(scope="module")
def model():
    return small_model()


def test_per_layer_transcoders_label_every_feature_from_their_activations(model):
    tokens, tcs = labelled_tokens(), small_transcoders(d_sae=32)
    labels = heldout_feature_labels(model, tcs, tokens, RULE, batch_size=3)
    acts = layer_activations(model, tcs, tokens.contexts)
    counted = tokens.labels != BOS_LABEL
    for layer, tc in tcs.items():
        result = labels.layers[layer]
        assert result.f1.shape == (tc.spec.d_sae,)
        expected = (acts[layer] * counted[..., None]).amax(dim=(0, 1))
        torch.testing.assert_close(result.max_act, expected)
        assert ((result.n_active > 0) == (expected > 0)).all()
    clerps = labels.clerps()
    assert len(clerps) == len(tcs) * 32
    assert any(clerp.split()[0] in labels.candidates.names for clerp in clerps.values())


def test_a_crosslayer_transcoder_labels_every_layer_through_encode_layer(model):
    tokens, clt = labelled_tokens(), small_clt()
    labels = heldout_feature_labels(model, clt, tokens, RULE)
    assert sorted(labels.layers) == list(range(clt.spec.n_layers))
    _, cache = model.run_with_cache(tokens.contexts)
    counted = tokens.labels != BOS_LABEL
    for layer, result in labels.layers.items():
        acts = clt.encode_layer(cache[mlp_in_hook(layer)], layer).detach() * counted[..., None]
        torch.testing.assert_close(result.max_act, acts.amax(dim=(0, 1)))
        # the top example of each firing feature is its largest activation, centred in its window
        for feature in acts.amax(dim=(0, 1)).nonzero()[:3, 0].tolist():
            ids, window_acts, center = labels.examples(layer, feature)[0]
            assert window_acts[center] == pytest.approx(float(result.max_act[feature]))
    assert labels.clerp(0, 0) in labels.clerps().values()
