"""Faithfulness by intervention (circuits.faithfulness) on a small random model.

Total effects: in the replacement model (attention patterns, LayerNorm scales and transcoder errors
held at the clean run's values) the root is a piecewise-linear function of the feature activations,
and scaling feature s by a factor c changes the root by (c - 1) T_s as long as no other feature
crosses zero. So T_s is the derivative of the root with respect to that factor at c = 1, which
autograd computes through the real model's hooks, independently of the pullback that
`total_effects` uses. Both are float32 sums of the same terms in a different order: they agree to a
few 1e-6 of the largest effect; 1e-4 of it leaves room for that and nothing else.
"""

import numpy as np
import pytest
import torch

from transcoder_lab.circuits import feature_root
from transcoder_lab.circuits.faithfulness import (
    circuit_faithfulness,
    in_region,
    percentile,
    precision_at_k,
    total_effects,
)

from helpers.circuit_models import small_context


@pytest.fixture(scope="module")
def setup():
    return _setup(root_layer=3)


def _setup(root_layer: int):
    """The small model, the most active feature of `root_layer` at the last token as the root, and
    the active features that can reach it."""
    model, tcs, tokens, ctx = small_context()
    t = len(tokens) - 1
    root = feature_root(ctx, root_layer, int(ctx.feature_acts[root_layer][t].argmax()), t)
    candidates = [
        (lay, int(p), int(f))
        for lay, z in sorted(ctx.feature_acts.items())
        for p, f in (z > 0).nonzero().tolist()
        if in_region(root, lay, int(p))
    ]
    return model, tcs, tokens, ctx, root, candidates


def _replacement_model_gradient(model, tcs, tokens, ctx, root):
    """d root / d (scale of each feature's activation) at scale 1, in the replacement model."""
    n = model.cfg.n_layers
    _, cache = model.run_with_cache(tokens[None])
    scales = {layer: torch.ones(ctx.feature_acts[layer].shape, requires_grad=True) for layer in tcs}
    captured = {}
    hooks = []
    for layer in range(n):
        hooks.append(
            (
                f"blocks.{layer}.attn.hook_pattern",
                lambda a, hook, c=cache[f"blocks.{layer}.attn.hook_pattern"]: c,
            )
        )
        for ln in ("ln1", "ln2"):
            name = f"blocks.{layer}.{ln}.hook_scale"
            hooks.append((name, lambda a, hook, c=cache[name]: c))
        tc = tcs[layer]
        clean_error = (
            cache[f"blocks.{layer}.hook_mlp_out"]
            - tc.decode(tc.encode(cache[tc.spec.hook_in]), cache[tc.spec.hook_in])
        ).detach()

        def capture(a, hook, layer=layer):
            captured[layer] = a
            return a

        def replace(a, hook, layer=layer, tc=tc, error=clean_error):
            x = captured[layer]
            return tc.decode(tc.encode(x) * scales[layer][None], x) + error

        hooks += [(tc.spec.hook_in, capture), (f"blocks.{layer}.hook_mlp_out", replace)]
    hooks.append(("ln_final.hook_scale", lambda a, hook, c=cache["ln_final.hook_scale"]: c))
    read = {}
    reader = (
        f"blocks.{root.layer}.ln2.hook_normalized"
        if root.sublayer == "resid_mid"
        else f"blocks.{root.layer}.ln1.hook_normalized"
    )
    hooks.append((reader, lambda a, hook: read.setdefault("x", a)))
    with model.hooks(fwd_hooks=hooks):
        model(tokens[None])
    value = read["x"][0, root.position].double() @ root.vector.double()
    value.backward()
    return {layer: scale.grad for layer, scale in scales.items()}


def test_total_effects_are_derivatives_in_the_replacement_model(setup):
    model, tcs, tokens, ctx, root, candidates = setup
    effects = total_effects(ctx, root, candidates)
    grads = _replacement_model_gradient(model, tcs, tokens, ctx, root)
    expected = torch.tensor([float(grads[lay][p, f]) for lay, p, f in candidates], dtype=torch.float64)
    assert len(candidates) > 20 and {lay for lay, _, _ in candidates} == {0, 1, 2}
    scale = float(expected.abs().max())
    assert torch.allclose(effects, expected, atol=1e-4 * scale, rtol=0)
    # and not only the direct terms: some layer-0 feature's effect runs mostly through later features
    direct = total_effects(ctx, root, [c for c in candidates if c[0] == 0])
    assert (direct - effects[: len(direct)]).abs().max() > 1e-2 * scale


def test_sufficiency_and_necessity_of_everything_and_of_nothing(setup):
    model, tcs, tokens, ctx, root, candidates = setup
    # zero "means": an inactive feature ablated stays at zero, so keeping every active feature is
    # the clean run (sufficiency 1), keeping none the all-ablated run (0) and ablating none the
    # clean run (necessity 0), to float rounding. (Ablating every active feature is not the
    # all-ablated run: features that the ablation switches on stay on.)
    means = {layer: torch.zeros(tc.spec.d_sae) for layer, tc in tcs.items()}
    everything = circuit_faithfulness(model, tcs, tokens, root, candidates, means, n_random=3, per_node=False)
    nothing = circuit_faithfulness(model, tcs, tokens, root, [], means, n_random=3, per_node=False)
    for mode in ("frozen", "live"):
        assert abs(everything[mode]["clean"] - everything[mode]["all_ablated"]) > 0.1
        assert everything[mode]["sufficiency"] == pytest.approx(1.0, abs=1e-5)
        assert nothing[mode]["sufficiency"] == pytest.approx(0.0, abs=1e-5)
        assert nothing[mode]["necessity"] == pytest.approx(0.0, abs=1e-5)
    # the clean value is the root's own value v·LN(x) on the unedited prompt
    ln = ctx.ln_output(root.layer, root.sublayer, root.position).double()
    assert everything["live"]["clean"] == pytest.approx(float(ln @ root.vector.double()), rel=1e-5)


def test_the_circuit_of_the_largest_effects_beats_random_sets_and_the_smallest_does_not():
    # a layer-1 root: frozen, only layer-0 features reach it and linearly (no later MLP's error
    # reacts), so the largest total effects are the largest actual ones
    model, tcs, tokens, ctx, root, candidates = _setup(root_layer=1)
    effects = total_effects(ctx, root, candidates).abs()
    k = 5
    largest = [candidates[i] for i in effects.topk(k).indices.tolist()]
    smallest = [candidates[i] for i in (-effects).topk(k).indices.tolist()]
    means = {layer: torch.zeros(tc.spec.d_sae) for layer, tc in tcs.items()}  # zero ablation
    strong = circuit_faithfulness(model, tcs, tokens, root, largest, means, n_random=20)
    weak = circuit_faithfulness(model, tcs, tokens, root, smallest, means, n_random=20)
    frozen_strong, frozen_weak = strong["frozen"], weak["frozen"]
    for name in ("sufficiency", "necessity"):
        assert frozen_strong[f"random_{name}"]["percentile_of_circuit"] >= 95
        assert frozen_weak[f"random_{name}"]["percentile_of_circuit"] < 95
        assert frozen_strong[name] > 0.5 and abs(frozen_weak[name]) < 0.05
    # the per-node rows: one per active region feature, in the circuit where chosen
    assert len(strong["nodes"]) == len(candidates)
    assert sum(row["in_circuit"] for row in strong["nodes"]) == k
    assert frozen_strong["precision_at_k"] >= 0.6 >= frozen_weak["precision_at_k"]


def test_percentile_and_precision_by_hand():
    assert percentile(3.0, [1.0, 2.0, 3.0, 4.0]) == pytest.approx(100 * 2.5 / 4)
    assert percentile(10.0, [1.0, 2.0]) == 100.0
    assert precision_at_k([0.1, -5.0, 3.0, 0.2], [False, True, False, True]) == 0.5
    assert precision_at_k([1.0], [False]) is None
    assert np.isclose(percentile(0.0, [0.0]), 50.0)
