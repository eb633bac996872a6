"""Cross-layer transcoders: shapes and formulas, equivalence with per-layer transcoders, gradients,
training (learning, resume, divergence), our file format, and the export to circuit-tracer's layout."""

import dataclasses
import itertools
import json

import pytest
import torch
import yaml
from safetensors import safe_open

from transcoder_lab.circuits.circuit_tracer.export import ExportError
from transcoder_lab.circuits.circuit_tracer.export_crosslayer import export_crosslayer, export_crosslayer_dir
from transcoder_lab.config import ConfigError
from transcoder_lab.dictionaries import Dictionary, DictionarySpec
from transcoder_lab.dictionaries.crosslayer import (
    CFG_FILENAME,
    SPARSITY_FILENAME,
    WEIGHTS_FILENAME,
    CrossLayerRecipe,
    CrossLayerSpec,
    CrossLayerTrainingConfig,
    CrossLayerTranscoder,
    load_crosslayer,
    load_crosslayer_log10_frequency,
    read_crosslayer_config,
    save_crosslayer,
)
from transcoder_lab.dictionaries.crosslayer_training import (
    CHECKPOINT,
    crosslayer_loss,
    stack_layers,
    train_crosslayer,
)
from transcoder_lab.dictionaries.training import TrainingDivergedError
from transcoder_lab.io import write_safetensors
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook

L, D, D_SAE = 3, 8, 16
RECIPES = list(CrossLayerRecipe)


def spec(recipe: str = "l1_decoder_norm", **overrides) -> CrossLayerSpec:
    fields = dict(n_layers=L, d_in=D, d_out=D, d_sae=D_SAE, recipe=recipe, model_name="organism")
    return CrossLayerSpec(**{**fields, **overrides})


def random_clt(
    clt_spec: CrossLayerSpec, seed: int = 0, dtype: torch.dtype = torch.float32
) -> CrossLayerTranscoder:
    """Random weights everywhere, biases included (the pre-bias too, so folding it matters)."""
    generator = torch.Generator().manual_seed(seed)
    clt = CrossLayerTranscoder.initialise(clt_spec, generator, dtype=dtype)
    with torch.no_grad():
        for name, parameter in clt.named_parameters():
            scale = 0.3 if name.startswith("b_") or name == "log_threshold" else 0.1
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator, dtype=dtype))
    return clt


def config(**overrides) -> CrossLayerTrainingConfig:
    base = CrossLayerTrainingConfig(seed=0, lr=1e-2, n_steps=50, warmup_steps=5, sparsity_coefficient=1e-3,
                                    frequency_window_steps=10, dead_window_steps=10,
                                    checkpoint_every=10)  # fmt: skip
    return dataclasses.replace(base, **overrides)


def planted_problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A planted CLT: atoms A [L, 6, D] and decoders D [L (from), L (to), 6, D]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(L, 6, D, generator=generator), torch.randn(L, L, 6, D, generator=generator) / 2


def planted_codes(generator: torch.Generator, n_rows: int) -> torch.Tensor:
    return torch.rand(L, n_rows, 6, generator=generator) * (
        torch.rand(L, n_rows, 6, generator=generator) < 0.3
    )


def planted_batches(seed: int = 0, batch_size: int = 64):
    """Layer l's MLP input is sparse codes c_l times atoms A_l; MLP output l' is
    sum_{l <= l'} c_l D[l -> l']: output 2 depends on codes only layers 0 and 1 can read."""
    atoms, decoders = planted_problem(seed)

    def stream():
        g = torch.Generator().manual_seed(seed + 1)
        while True:
            codes = planted_codes(g, batch_size)
            batch = {}
            for out in range(L):
                batch[mlp_in_hook(out)] = codes[out] @ atoms[out] + 0.5
                batch[mlp_out_hook(out)] = (
                    sum(codes[src] @ decoders[src, out] for src in range(out + 1)) - 0.2
                )
            yield batch

    return stream


def per_layer_floor(out: int, seed: int = 0) -> float:
    """The normalised MSE at output `out` of the best predictor that reads layer `out` alone: the
    codes of other layers are independent of it, so their part of y (minus its mean) stays unexplained."""
    _, decoders = planted_problem(seed)
    codes = planted_codes(torch.Generator().manual_seed(seed + 100), 8192)
    y = sum(codes[src] @ decoders[src, out] for src in range(out + 1)) - 0.2
    unexplained = sum((codes[src] - codes[src].mean(0)) @ decoders[src, out] for src in range(out))
    return (unexplained**2 / y.norm(dim=-1, keepdim=True)).mean().item()


# -- the module --------------------------------------------------------------------------------


def test_spec_converts_the_recipe_and_refuses_unknown_ones():
    assert spec("tanh_jumprelu").recipe is CrossLayerRecipe.tanh_jumprelu and spec().jumprelu is False
    assert spec().hooks_in == [f"blocks.{layer}.ln2.hook_normalized" for layer in range(L)]
    assert spec().hooks_out == [f"blocks.{layer}.hook_mlp_out" for layer in range(L)]
    with pytest.raises(ValueError, match="'l1_decoder_norm', 'tanh_jumprelu'"):
        spec("topk")
    with pytest.raises(ValueError, match="positive"):
        spec(d_sae=0)
    with pytest.raises(ConfigError, match="jumprelu_bandwidth"):
        config(jumprelu_bandwidth=0.0)


@pytest.mark.parametrize("recipe", RECIPES)
def test_shapes_and_a_deterministic_init(recipe):
    first = CrossLayerTranscoder.initialise(spec(recipe), torch.Generator().manual_seed(3))
    second = CrossLayerTranscoder.initialise(spec(recipe), torch.Generator().manual_seed(3))
    shapes = {name: tuple(p.shape) for name, p in first.named_parameters()}
    expected = {"W_enc": (L, D, D_SAE), "b_enc": (L, D_SAE), "b_dec": (L, D), "b_dec_out": (L, D)}
    expected |= {f"W_dec.{layer}": (D_SAE, L - layer, D) for layer in range(L)}
    if recipe == "tanh_jumprelu":
        expected["log_threshold"] = (L, D_SAE)
    assert shapes == expected
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
    torch.testing.assert_close(first.decoder_norms(), torch.ones(L, D_SAE))  # concatenated: unit norm
    torch.testing.assert_close(first.W_enc.norm(dim=1), torch.ones(L, D_SAE))
    x = torch.randn(L, 5, D)
    y_hat, z = first(x)
    assert y_hat.shape == (L, 5, D) and z.shape == (L, 5, D_SAE)


def test_decode_sums_every_earlier_layers_decoder_into_each_output():
    clt = random_clt(spec())
    z = torch.relu(torch.randn(L, 7, D_SAE))
    expected = torch.stack([
        clt.b_dec_out[out] + sum(z[src] @ clt.W_dec[src][:, out - src] for src in range(out + 1))
        for out in range(L)
    ])  # fmt: skip
    torch.testing.assert_close(clt.decode(z), expected, rtol=1e-6, atol=1e-6)
    # a feature's norm over every layer it writes to: sqrt(sum_j ||W_dec[src][i, j]||^2)
    squares = [sum(clt.W_dec[src][:, j].pow(2).sum(-1) for j in range(L - src)) for src in range(L)]
    norms = torch.stack(squares).sqrt()
    torch.testing.assert_close(clt.decoder_norms(), norms)


def test_without_cross_layer_decoders_it_computes_per_layer_transcoders():
    """Splice equivalence: zero decoders l -> l' > l leave n per-layer transcoders (dictionary.py's
    Dictionary) with the same weights. float64; the two paths use different fused products
    (baddbmm vs addmm), so agreement is to rounding, not bit for bit."""
    clt = random_clt(spec(), dtype=torch.float64)
    with torch.no_grad():
        for layer in range(L):
            clt.W_dec[layer][:, 1:] = 0.0
    x = torch.randn(L, 32, D, dtype=torch.float64) + clt.b_dec.detach().unsqueeze(1)
    with torch.no_grad():
        y_hat, z = clt(x)
    for layer in range(L):
        transcoder = Dictionary(DictionarySpec("transcoder", layer, D, D_SAE, D), dtype=torch.float64)
        with torch.no_grad():
            for name in ("W_enc", "b_enc", "b_dec", "b_dec_out"):
                getattr(transcoder, name).copy_(getattr(clt, name)[layer])
            transcoder.W_dec.copy_(clt.W_dec[layer][:, 0])
            y_layer, z_layer = transcoder(x[layer])
        assert 0 < (z_layer > 0).double().mean() < 1
        torch.testing.assert_close(z[layer], z_layer, rtol=0, atol=1e-12)
        torch.testing.assert_close(y_hat[layer], y_layer, rtol=0, atol=1e-12)


@pytest.mark.parametrize("recipe", RECIPES)
def test_layer_by_layer_encode_and_decode_equal_the_stacked_forward(recipe):
    """What splicing uses (evaluation.py): layer l's features from its input alone, and output l'
    from the features of layers 0..l' alone, equal the stacked forward pass."""
    clt = random_clt(spec(recipe))
    x = torch.randn(L, 2, 5, D)  # [n_layers, batch, position, d_in], as a model's activations come
    with torch.no_grad():
        y_hat, z = clt(x.reshape(L, -1, D))
        by_layer = [clt.encode_layer(x[layer], layer) for layer in range(L)]
        for layer in range(L):
            assert by_layer[layer].shape == (2, 5, D_SAE)
            torch.testing.assert_close(by_layer[layer].reshape(-1, D_SAE), z[layer])
            later_ignored = by_layer[: layer + 1] + [torch.full_like(by_layer[0], float("nan"))] * (
                L - layer - 1
            )
            decoded = clt.decode_layer(later_ignored, layer)
            torch.testing.assert_close(decoded.reshape(-1, D), y_hat[layer])


def test_the_sparsity_coefficient_warms_up_over_its_share_of_the_steps():
    cfg = config(n_steps=100, sparsity_coefficient=2e-3, sparsity_warmup_fraction=0.5)
    assert [cfg.sparsity_at(step) for step in (0, 24, 49, 50, 99)] == pytest.approx(
        [4e-5, 1e-3, 2e-3, 2e-3, 2e-3]
    )
    assert config(sparsity_coefficient=2e-3).sparsity_at(0) == 2e-3  # no warm-up by default
    with pytest.raises(ConfigError, match="sparsity_warmup_fraction"):
        config(sparsity_warmup_fraction=1.5)
    batch = next(planted_batches()())
    clt = random_clt(spec())
    x, y = stack_layers(batch, spec())
    full, warming = crosslayer_loss(clt, x, y, cfg), crosslayer_loss(clt, x, y, cfg, step=24)
    assert warming.sparsity.item() == pytest.approx(full.sparsity.item() / 2, rel=1e-6)


def test_jumprelu_fires_above_the_threshold_with_the_rectangle_pseudo_derivative():
    clt = CrossLayerTranscoder(spec("tanh_jumprelu", n_layers=1, d_sae=2))
    with torch.no_grad():
        clt.log_threshold.copy_(torch.tensor([[1.0, 0.5]]).log())  # thresholds 1.0 and 0.5
    pre = torch.tensor([[[0.9, 0.1], [1.04, 0.6], [2.0, 0.56]]], requires_grad=True)  # [1, 3, 2]
    bandwidth = 0.1
    z = clt.activation(pre, bandwidth)
    assert torch.equal(z.detach(), torch.tensor([[[0.0, 0.0], [1.04, 0.6], [2.0, 0.56]]]))
    grad_z = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])
    z.backward(grad_z)
    assert torch.equal(pre.grad, grad_z * (z.detach() > 0))
    # in the window |p - theta| < eps / 2: feature 0 rows 0 (0.9) no, 1 (1.04) yes; feature 1 row 2 (0.56) no
    expected = torch.tensor([[-(1.0 / bandwidth) * 3.0, -(0.5 / bandwidth) * 0.0]])
    torch.testing.assert_close(clt.log_threshold.grad, expected)
    assert torch.equal(clt.activation(pre.detach()), z.detach())  # inference: same features, no bandwidth


def test_autograd_gradient_of_the_l1_decoder_norm_loss_equals_the_hand_formula():
    """float64, a tiny CLT. With g_l' = dL/dy_hat_l' = 2 (y_hat - y) / (b d ||y||) and N the
    concatenated decoder norms: dL/dW_dec[l][i, j] = sum_b z_lbi g_{l+j,b} + (lam / b) (sum_b z_lbi)
    W_dec[l][i, j] / N_li; dL/dz_lbi = sum_j g_{l+j,b} . W_dec[l][i, j] + lam N_li / b, masked by p > 0
    for dL/dp; then dL/dW_enc_l = (x_l - b_dec_l)^T dL/dp_l, dL/db_enc_l = sum_b dL/dp_l,
    dL/db_dec_l = -W_enc_l dL/db_enc_l, dL/db_dec_out_l = sum_b g_l. Sums of a few hundred O(1)
    products agree to ~1e-14; a missing term is off by orders of magnitude more than rtol 1e-10."""
    generator = torch.Generator().manual_seed(1)
    clt = random_clt(spec(d_sae=6), seed=1, dtype=torch.float64)
    x = torch.randn(L, 10, D, generator=generator, dtype=torch.float64)
    y = torch.randn(L, 10, D, generator=generator, dtype=torch.float64)
    cfg = config(sparsity_coefficient=0.05)
    loss = crosslayer_loss(clt, x, y, cfg)
    loss.total.backward()

    with torch.no_grad():
        n_rows, lam, W_dec = x.shape[1], cfg.sparsity_coefficient, list(clt.W_dec)
        x_centred = x - clt.b_dec.unsqueeze(1)
        pre = torch.stack([x_centred[src] @ clt.W_enc[src] + clt.b_enc[src] for src in range(L)])
        z = pre.clamp_min(0)
        y_hat = torch.stack([
            clt.b_dec_out[out] + sum(z[src] @ W_dec[src][:, out - src] for src in range(out + 1))
            for out in range(L)
        ])  # fmt: skip
        g = 2 * (y_hat - y) / (n_rows * D * y.norm(dim=-1, keepdim=True))  # [L, b, d]
        norms = torch.stack([W.pow(2).sum((1, 2)).sqrt() for W in W_dec])  # [L, d_sae]
        expected = {"b_dec_out": g.sum(1)}
        grad_pre = []
        for src in range(L):
            g_out = g[src:].transpose(0, 1)  # [b, L - src, d]: the outputs feature layer src writes to
            l1_part = (lam / n_rows) * z[src].sum(0)[:, None, None] * W_dec[src] / norms[src][:, None, None]
            expected[f"W_dec.{src}"] = torch.einsum("bi,bjd->ijd", z[src], g_out) + l1_part
            grad_z = torch.einsum("bjd,ijd->bi", g_out, W_dec[src]) + lam * norms[src] / n_rows
            grad_pre.append(grad_z * (pre[src] > 0))
        grad_pre = torch.stack(grad_pre)  # [L, b, d_sae]
        expected["W_enc"] = x_centred.transpose(1, 2) @ grad_pre
        expected["b_enc"] = grad_pre.sum(1)
        expected["b_dec"] = -torch.einsum("lds,ls->ld", clt.W_enc, grad_pre.sum(1))
    assert 0 < (z > 0).double().mean() < 1  # both ReLU branches exercised
    assert sorted(expected) == sorted(name for name, _ in clt.named_parameters())
    for name, parameter in clt.named_parameters():
        torch.testing.assert_close(parameter.grad, expected[name], rtol=1e-10, atol=1e-13, msg=name)


def test_tanh_jumprelu_loss_is_the_formula():
    clt = random_clt(spec("tanh_jumprelu"), seed=2, dtype=torch.float64)
    x, y = torch.randn(L, 12, D, dtype=torch.float64), torch.randn(L, 12, D, dtype=torch.float64)
    cfg = config(sparsity_coefficient=0.1, pre_act_coefficient=0.01, tanh_scale=4.0)
    loss = crosslayer_loss(clt, x, y, cfg)
    with torch.no_grad():
        pre = clt.pre_activations(x)
        z = pre * (pre > clt.log_threshold.exp().unsqueeze(1))
        mse = sum(
            (((clt.decode(z)[layer] - y[layer]) ** 2) / y[layer].norm(dim=-1, keepdim=True)).mean()
            for layer in range(L)
        )
        tanh = 0.1 * torch.tanh(4.0 * z * clt.decoder_norms().unsqueeze(1)).sum((0, 2)).mean()
        pre_act = 0.01 * torch.relu(-pre).sum((0, 2)).mean()
    assert 0 < (z > 0).double().mean() < 1
    torch.testing.assert_close(loss.total.detach(), mse + tanh + pre_act, rtol=1e-12, atol=0)


# -- training ----------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", RECIPES)
def test_loss_goes_down_on_a_planted_cross_layer_problem(recipe, tmp_path):
    batch = next(planted_batches()())
    x, y = stack_layers(batch, spec(recipe))
    baseline = sum(
        ((y[layer] - y[layer].mean(0)) ** 2 / y[layer].norm(dim=-1, keepdim=True)).mean()
        for layer in range(L)
    )
    result = train_crosslayer(spec(recipe), planted_batches(), config(), tmp_path / "clt", tmp_path / "ckpt")
    assert result.steps == 50
    assert sum(result.final_mse_by_layer) < 0.3 * baseline.item()  # predicting the mean would give baseline
    # below what any transcoder reading layer 2 alone could reach (0.14): the cross-layer decoders work
    assert result.final_mse_by_layer[2] < 0.5 * per_layer_floor(2)
    assert load_crosslayer_log10_frequency(tmp_path / "clt").shape == (L, D_SAE)
    assert read_crosslayer_config(tmp_path / "clt")["metadata"]["training"]["n_steps"] == 50


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_resumed_run_ends_bit_identical(recipe, tmp_path):
    cfg = config(n_steps=20, checkpoint_every=5)
    train_crosslayer(spec(recipe), planted_batches(), cfg, tmp_path / "straight", tmp_path / "c1")
    train_crosslayer(
        spec(recipe), planted_batches(), cfg, tmp_path / "resumed", tmp_path / "c2", stop_after_step=10
    )
    assert not (tmp_path / "resumed").exists() and (tmp_path / "c2" / CHECKPOINT).exists()
    train_crosslayer(spec(recipe), planted_batches(), cfg, tmp_path / "resumed", tmp_path / "c2")
    a, b = load_crosslayer(tmp_path / "straight"), load_crosslayer(tmp_path / "resumed")
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(p, q), name
    frequencies = [load_crosslayer_log10_frequency(tmp_path / name) for name in ("straight", "resumed")]
    assert torch.equal(*frequencies)


def test_nan_stops_the_run_naming_the_step_and_keeps_the_checkpoint(tmp_path):
    def poisoned():
        for step, batch in enumerate(planted_batches()()):
            if step == 13:
                batch = {hook: torch.full_like(rows, float("nan")) for hook, rows in batch.items()}
            yield batch

    with pytest.raises(TrainingDivergedError, match="step 13"):
        train_crosslayer(spec(), poisoned, config(), tmp_path / "clt", tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / CHECKPOINT).exists() and not (tmp_path / "clt").exists()


def test_a_short_stream_or_a_missing_hook_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="stream ended after 3 batches"):
        train_crosslayer(
            spec(), lambda: itertools.islice(planted_batches()(), 3), config(), tmp_path / "a", tmp_path / "c"
        )
    batch = next(planted_batches()())
    del batch[mlp_out_hook(2)]
    with pytest.raises(KeyError, match=r"blocks\.2\.hook_mlp_out"):
        stack_layers(batch, spec())


# -- files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", RECIPES)
def test_save_and_load_round_trip_exactly(recipe, tmp_path):
    clt = random_clt(spec(recipe))
    frequency = torch.linspace(-10, -1, L * D_SAE).view(L, D_SAE)
    save_crosslayer(clt, tmp_path / "clt", frequency, {"note": "test"})
    cfg = json.loads((tmp_path / "clt" / CFG_FILENAME).read_text())
    assert cfg["architecture"] == "crosslayer_transcoder"
    assert cfg["transcoder_lab"]["format_version"] == 1 and cfg["transcoder_lab"]["metadata"] == {
        "note": "test"
    }
    assert cfg["transcoder_lab"]["hooks_out"] == spec().hooks_out
    loaded = load_crosslayer(tmp_path / "clt")
    assert loaded.spec == clt.spec
    for (name, p), (name_q, q) in zip(clt.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert name == name_q and torch.equal(p, q), name
    assert torch.equal(load_crosslayer_log10_frequency(tmp_path / "clt"), frequency)
    save_crosslayer(loaded, tmp_path / "clt")  # without a frequency the old sparsity file goes
    assert not (tmp_path / "clt" / SPARSITY_FILENAME).exists()
    assert not [path for path in (tmp_path / "clt").iterdir() if path.name.endswith(".tmp")]


def test_bad_files_are_clear_errors_naming_the_tensor(tmp_path):
    clt = random_clt(spec())
    save_crosslayer(clt, tmp_path / "clt")
    weights = {name.replace("W_dec.", "W_dec_"): p.detach() for name, p in clt.named_parameters()}
    write_safetensors(
        tmp_path / "clt" / WEIGHTS_FILENAME, {k: v for k, v in weights.items() if k != "W_dec_1"}
    )
    with pytest.raises(ValueError, match=r"missing tensors \['W_dec_1'\]"):
        load_crosslayer(tmp_path / "clt")
    write_safetensors(tmp_path / "clt" / WEIGHTS_FILENAME, weights | {"b_enc": torch.zeros(L, D_SAE + 1)})
    with pytest.raises(ValueError, match=r"tensor 'b_enc' has shape \(3, 17\).*\(3, 16\)"):
        load_crosslayer(tmp_path / "clt")
    (tmp_path / "clt" / WEIGHTS_FILENAME).unlink()
    with pytest.raises(FileNotFoundError, match=WEIGHTS_FILENAME):
        load_crosslayer(tmp_path / "clt")
    with pytest.raises(FileNotFoundError, match=CFG_FILENAME):
        load_crosslayer(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="log10_frequency has shape"):
        save_crosslayer(clt, tmp_path / "other", torch.zeros(D_SAE))


# -- export to circuit-tracer ------------------------------------------------------------------


def load_like_circuit_tracer(folder):
    """What circuit-tracer's `load_clt` reads, restated: n_layers = the number of W_enc_*.safetensors
    files; per layer W_enc_<l> [d_transcoder, d_model], b_enc_<l>, b_dec_<l> (output bias), optional
    threshold_<l> (in layer 0's file: JumpReLU), and W_dec_<l> [d_transcoder, n_layers - l, d_model]."""
    n_layers = len(list(folder.glob("W_enc_*.safetensors")))
    tensors = {}
    for layer in range(n_layers):
        for kind in ("enc", "dec"):
            with safe_open(str(folder / f"W_{kind}_{layer}.safetensors"), framework="pt") as handle:
                tensors |= {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    d_sae, d_model = tensors["W_enc_0"].shape
    jumprelu = "threshold_0" in tensors
    for layer in range(n_layers):
        assert tensors[f"W_dec_{layer}"].shape == (d_sae, n_layers - layer, d_model)
        assert tensors[f"b_enc_{layer}"].shape == (d_sae,) and tensors[f"b_dec_{layer}"].shape == (d_model,)
        assert (f"threshold_{layer}" in tensors) == jumprelu
    return n_layers, tensors


def circuit_tracer_forward(n_layers, tensors, x):
    features = []
    for layer in range(n_layers):
        f = x[layer] @ tensors[f"W_enc_{layer}"].T + tensors[f"b_enc_{layer}"]
        threshold = tensors.get(f"threshold_{layer}")
        features.append(f * (f > threshold) if threshold is not None else torch.relu(f))
    outputs = [
        tensors[f"b_dec_{out}"]
        + sum(features[src] @ tensors[f"W_dec_{src}"][:, out - src] for src in range(out + 1))
        for out in range(n_layers)
    ]
    return torch.stack(features), torch.stack(outputs)


@pytest.mark.parametrize("recipe", RECIPES)
def test_export_reads_back_as_our_features_and_reconstruction(recipe, tmp_path):
    clt = random_clt(spec(recipe))
    save_crosslayer(clt, tmp_path / "clt")
    export_crosslayer(random_clt(spec(recipe, n_layers=L + 1)), tmp_path / "export")  # stale: one layer more
    config_path = export_crosslayer_dir(tmp_path / "clt", tmp_path / "export", scan="lab/organism-clt")
    config_yaml = yaml.safe_load(config_path.read_text())
    assert config_yaml["model_kind"] == "cross_layer_transcoder" and config_yaml["model_name"] == "organism"
    assert (config_yaml["feature_input_hook"], config_yaml["feature_output_hook"]) == (
        "ln2.hook_normalized",
        "hook_mlp_out",
    )
    assert config_yaml["scan"] == "lab/organism-clt"
    n_layers, tensors = load_like_circuit_tracer(tmp_path / "export")
    assert n_layers == L and ("threshold_0" in tensors) == (recipe == "tanh_jumprelu")
    x = torch.randn(L, 64, D, generator=torch.Generator().manual_seed(9)) + clt.b_dec.detach().unsqueeze(1)
    with torch.no_grad():
        y_hat, z = clt(x)
    features, outputs = circuit_tracer_forward(n_layers, tensors, x)
    assert 0 < (z > 0).float().mean() < 1
    torch.testing.assert_close(features, z, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outputs, y_hat, rtol=1e-5, atol=1e-5)


def test_export_refuses_what_circuit_tracer_cannot_load(tmp_path):
    with pytest.raises(ExportError, match="one d_model"):
        export_crosslayer(random_clt(spec(d_out=D + 1)), tmp_path / "a")
    with pytest.raises(ExportError, match="names no model"):
        export_crosslayer(random_clt(spec(model_name="")), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
