"""The dictionary trainer: loss, decoder handling, dead features, resume, divergence, saving."""

import dataclasses
import itertools

import pytest
import torch

from transcoder_lab.config import ConfigError, DictionaryTrainingConfig, MatmulPrecision
from transcoder_lab.dictionaries import Dictionary, DictionarySpec, load_dictionary
from transcoder_lab.dictionaries.training import (
    DictionaryJob,
    DictionaryTrainer,
    TrainingDivergedError,
    ghost_grad_loss,
    matmul_precision,
    normalised_mse,
    relu_loss_backward,
    train_dictionaries,
)
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook

D, D_SAE = 8, 32
IN, OUT = mlp_in_hook(0), mlp_out_hook(0)


def synthetic_batches(seed: int = 0, batch_size: int = 64):
    """x has sparse structure; y is a fixed linear map of x, so a transcoder can learn it."""
    generator = torch.Generator().manual_seed(seed)
    atoms = torch.randn(16, D, generator=generator)
    mixing = torch.randn(D, D, generator=generator) / D**0.5

    def stream():
        g = torch.Generator().manual_seed(seed + 1)
        while True:
            codes = torch.rand(batch_size, 16, generator=g) * (torch.rand(batch_size, 16, generator=g) < 0.15)
            x = codes @ atoms + 0.5
            yield {IN: x, OUT: x @ mixing - 0.2}

    return stream


def spec(kind: str = "transcoder", **overrides) -> DictionarySpec:
    fields = dict(kind=kind, layer=0, d_in=D, d_sae=D_SAE, d_out=D, architecture="relu", k=None, skip=False,
                  model_name="test")  # fmt: skip
    return DictionarySpec(**{**fields, **overrides})


def config(**overrides) -> DictionaryTrainingConfig:
    base = DictionaryTrainingConfig(seed=0, lr=3e-3, batch_size=64, n_steps=40, warmup_steps=5,
                                    dead_features="ghost_grads", dead_window_steps=10, resample_every=20,
                                    frequency_window_steps=10, checkpoint_every=10)  # fmt: skip
    return dataclasses.replace(base, **overrides)


def test_normalised_mse_divides_by_the_norm_not_its_square():
    y = torch.tensor([[3.0, 4.0]])  # norm 5
    y_hat = torch.tensor([[4.0, 4.0]])
    assert normalised_mse(y_hat, y).item() == pytest.approx(1.0 / 5 / 2)


def test_ghost_grad_loss_is_rescaled_to_the_reconstruction_loss():
    dictionary = Dictionary.initialise(spec(), generator=torch.Generator().manual_seed(0))
    dead_pre = torch.randn(5, 4, requires_grad=True)
    loss = ghost_grad_loss(dead_pre, dictionary.W_dec[:4], torch.randn(5, D), torch.tensor(0.3))
    assert loss.item() == pytest.approx(0.3, rel=1e-4)
    loss.backward()
    assert dead_pre.grad.abs().min() > 0


def reference_loss(dictionary: Dictionary, x, y, l1: float, dead):
    """The loss of the module docstring's step 3, written independently in autograd: normalised
    MSE, L1, and the ghost term (dead features' exp(pre) decoded, scaled to half the residual's
    norm, its normalised MSE against the residual rescaled to the reconstruction loss)."""
    pre = (x - dictionary.b_dec) @ dictionary.W_enc + dictionary.b_enc
    z = torch.relu(pre)
    y_hat = z @ dictionary.W_dec + dictionary.b_dec_out
    if dictionary.W_skip is not None:
        y_hat = y_hat + x @ dictionary.W_skip
    mse = ((y_hat - y) ** 2 / y.norm(dim=-1, keepdim=True)).mean()
    loss = mse + l1 * z.abs().sum(-1).mean()
    if dead is not None:
        residual = (y - y_hat).detach()
        ghost = torch.exp(pre[:, dead]) @ dictionary.W_dec[dead]
        ghost = (
            ghost
            * (residual.norm(dim=-1, keepdim=True) / (2 * ghost.norm(dim=-1, keepdim=True) + 1e-6)).detach()
        )
        ghost_mse = ((ghost - residual) ** 2 / residual.norm(dim=-1, keepdim=True)).mean()
        loss = loss + ghost_mse * (mse / (ghost_mse + 1e-6)).detach()
    return loss, mse, z


def test_a_step_keeps_decoder_rows_unit_norm():
    job = DictionaryJob(spec(), 1e-3, out_dir=None)
    trainer = DictionaryTrainer(job, config(), seed=0)
    batch = next(synthetic_batches()())
    trainer.initialise_biases(batch)
    torch.testing.assert_close(trainer.dictionary.b_dec.detach(), batch[IN].mean(0))
    torch.testing.assert_close(trainer.dictionary.b_dec_out.detach(), batch[OUT].mean(0))
    trainer.step(batch, 0)
    norms = trainer.dictionary.W_dec.norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))


@pytest.mark.parametrize("kind", ["transcoder", "sae_mlp_out", "sae_mlp_in"])
def test_every_arm_learns_and_saves(kind, tmp_path):
    job = DictionaryJob(spec(kind), 1e-3, tmp_path / kind)
    cfg = config(n_steps=300, checkpoint_every=100)
    first = DictionaryTrainer(job, cfg, seed=0)
    batch = next(synthetic_batches()())
    x, y = first.inputs(batch)
    baseline = normalised_mse(y.mean(0).expand_as(y), y).item()  # predicting the mean
    [result] = train_dictionaries([job], synthetic_batches(), cfg, tmp_path / "ckpt")
    assert result.final_mse_loss < 0.2 * baseline
    loaded = load_dictionary(tmp_path / kind)
    assert loaded.spec.kind == kind


def test_sweep_shares_one_stream_and_sparsity_rises_with_l1(tmp_path):
    jobs = [DictionaryJob(spec(), l1, tmp_path / f"l1_{l1}") for l1 in (1e-4, 3e-2)]
    low, high = train_dictionaries(jobs, synthetic_batches(), config(n_steps=200), tmp_path / "ckpt")
    assert high.final_l0 < low.final_l0


def test_resumed_run_ends_with_the_same_weights(tmp_path):
    cfg = config()
    straight = DictionaryJob(spec(), 1e-3, tmp_path / "straight")
    train_dictionaries([straight], synthetic_batches(), cfg, tmp_path / "c1")
    resumed = DictionaryJob(spec(), 1e-3, tmp_path / "resumed")
    train_dictionaries([resumed], synthetic_batches(), cfg, tmp_path / "c2", stop_after_step=20)
    assert not (tmp_path / "resumed").exists()
    train_dictionaries([resumed], synthetic_batches(), cfg, tmp_path / "c2")
    a, b = load_dictionary(tmp_path / "straight"), load_dictionary(tmp_path / "resumed")
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(q, p, rtol=0, atol=1e-6, msg=name)


def test_checkpoint_of_other_data_or_code_is_not_resumed(tmp_path, monkeypatch):
    from transcoder_lab import io
    from transcoder_lab.dictionaries.training import jobs_fingerprint

    cfg, jobs = config(), [DictionaryJob(spec(), 1e-3, tmp_path / "d")]
    reference = jobs_fingerprint(jobs, cfg, "shards:a:hash1")
    assert jobs_fingerprint(jobs, cfg, "shards:a:hash1") == reference
    assert jobs_fingerprint(jobs, cfg, "shards:a:hash2") != reference  # same folder, new content
    monkeypatch.setattr(io, "sha256_file", lambda path: "edited source")
    assert jobs_fingerprint(jobs, cfg, "shards:a:hash1") != reference


def test_resample_revives_dead_features(tmp_path):
    job = DictionaryJob(spec(), 1e-3, tmp_path / "d")
    trainer = DictionaryTrainer(job, config(dead_features="resample"), seed=0)
    with torch.no_grad():
        trainer.dictionary.b_enc[:10] = -1e3  # these ten can never fire
    trainer.steps_since_fired[:10] = 100
    batch = next(synthetic_batches()())
    trainer.step(batch, 19)  # step 19 is a resampling step (resample_every=20)
    assert (trainer.steps_since_fired[:10] == 0).all()
    assert trainer.dictionary.b_enc[:10].abs().max() == 0


def test_no_resampling_in_the_last_resample_every_steps(tmp_path):
    """A feature resampled at the last step would be saved untrained (n_steps 40, resample_every 20:
    step 19 resamples, step 39 does not)."""
    job = DictionaryJob(spec(), 1e-3, tmp_path / "d")
    trainer = DictionaryTrainer(job, config(dead_features="resample"), seed=0)
    batch = next(synthetic_batches()())
    for step in (19, 39):
        with torch.no_grad():
            trainer.dictionary.b_enc[:10] = -1e3  # these ten can never fire
        trainer.steps_since_fired[:10] = 100
        trainer.step(batch, step)
        resampled = bool((trainer.dictionary.b_enc[:10] == 0).all())
        assert resampled == (step == 19), step


def test_nan_stops_the_run_naming_the_step_and_keeps_the_checkpoint(tmp_path):
    def poisoned():
        clean = synthetic_batches()()
        for step in itertools.count():
            batch = next(clean)
            if step == 15:
                batch = {hook: torch.full_like(rows, float("nan")) for hook, rows in batch.items()}
            yield batch

    job = DictionaryJob(spec(), 1e-3, tmp_path / "d")
    with pytest.raises(TrainingDivergedError, match="step 15"):
        train_dictionaries([job], poisoned, config(), tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "dictionaries_checkpoint.pt").exists()


def test_short_stream_is_a_clear_error(tmp_path):
    job = DictionaryJob(spec(), 1e-3, tmp_path / "d")
    with pytest.raises(ValueError, match="stream ended after 3 batches"):
        train_dictionaries(
            [job], lambda: itertools.islice(synthetic_batches()(), 3), config(), tmp_path / "c"
        )


def test_topk_arm_keeps_k_features_and_ignores_l1(tmp_path):
    job = DictionaryJob(spec(architecture="topk", k=3), l1_coefficient=1e9, out_dir=tmp_path / "topk")
    [result] = train_dictionaries([job], synthetic_batches(), config(n_steps=60), tmp_path / "ckpt")
    assert result.final_l0 <= 3.0  # an L1 of 1e9 would have silenced a relu dictionary entirely
    assert result.final_mse_loss < 0.5


def test_skip_transcoder_trains_its_skip_matrix(tmp_path):
    job = DictionaryJob(spec(skip=True), 1e-3, tmp_path / "skip")
    train_dictionaries([job], synthetic_batches(), config(n_steps=60), tmp_path / "ckpt")
    assert load_dictionary(tmp_path / "skip").W_skip.abs().max() > 0


def test_linear_init_points_each_decoder_row_where_the_linear_map_sends_its_encoder_column():
    """With y an exact linear map M of x, the least-squares map is M: row i is W_enc[:, i] M, normalised."""
    batch = next(synthetic_batches(batch_size=256)())
    x_c = batch[IN] - batch[IN].mean(0)
    mixing = torch.linalg.lstsq(x_c.double(), (batch[OUT] - batch[OUT].mean(0)).double()).solution
    linear = DictionaryTrainer(DictionaryJob(spec(), 1e-3, None), config(transcoder_init="linear"), seed=0)
    random = DictionaryTrainer(DictionaryJob(spec(), 1e-3, None), config(), seed=0)
    W_dec_random = random.dictionary.W_dec.detach().clone()
    for trainer in (linear, random):
        trainer.initialise_biases(batch)
    expected = linear.dictionary.W_enc.detach().double().T @ mixing
    expected = (expected / expected.norm(dim=-1, keepdim=True)).float()
    # float32 weights: agreement to a few float32 ulps of unit-norm rows
    torch.testing.assert_close(linear.dictionary.W_dec.detach(), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(random.dictionary.W_dec.detach(), W_dec_random, rtol=0, atol=0)  # as it was
    sae_job = DictionaryJob(spec("sae_mlp_out"), 1e-3, None)
    sae = DictionaryTrainer(sae_job, config(transcoder_init="linear"), seed=0)
    W_dec_sae = sae.dictionary.W_dec.detach().clone()
    sae.initialise_biases(batch)
    torch.testing.assert_close(sae.dictionary.W_dec.detach(), W_dec_sae, rtol=0, atol=0)  # SAEs: tied init


def test_l1_warmup_scales_the_penalty_by_the_fraction_of_warmup_done():
    """Step s of a warm-up over N steps (here 0.1 of 40) is exactly a step with coefficient
    lambda * (s + 1) / N."""
    batch = next(synthetic_batches()())
    warm = DictionaryTrainer(DictionaryJob(spec(), 4e-3, None), config(l1_warmup_fraction=0.1), seed=0)
    scaled = DictionaryTrainer(DictionaryJob(spec(), 1e-3, None), config(), seed=0)
    for trainer in (warm, scaled):
        trainer.initialise_biases(batch)
        trainer.step(batch, 0)
    scaled_parameters = dict(scaled.dictionary.named_parameters())
    for name, parameter in warm.dictionary.named_parameters():
        torch.testing.assert_close(parameter, scaled_parameters[name], rtol=0, atol=0)


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_an_l1_warmup_fraction_outside_zero_to_one_is_refused(fraction: float):
    with pytest.raises(ConfigError, match="l1_warmup_fraction is .*between 0 .* and 1"):
        DictionaryTrainer(DictionaryJob(spec(), 1e-3, None), config(l1_warmup_fraction=fraction), seed=0)


def test_an_unknown_transcoder_init_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="'random'.*'linear'"):
        DictionaryTrainer(DictionaryJob(spec(), 1e-3, None), config(transcoder_init="pca"), seed=0)


def test_data_init_starts_feature_i_as_token_i_of_the_first_batch():
    batch = next(synthetic_batches(batch_size=16)())  # fewer rows than features: tokens are cycled
    trainer = DictionaryTrainer(DictionaryJob(spec(), 1e-3, None), config(transcoder_init="data"), seed=0)
    trainer.initialise_biases(batch)
    x_c, y_c = batch[IN] - batch[IN].mean(0), batch[OUT] - batch[OUT].mean(0)
    rows = torch.arange(D_SAE) % 16
    expected_enc = (x_c[rows] / x_c[rows].norm(dim=-1, keepdim=True)).T
    expected_dec = y_c[rows] / y_c[rows].norm(dim=-1, keepdim=True)
    torch.testing.assert_close(trainer.dictionary.W_enc.detach(), expected_enc, rtol=0, atol=1e-6)
    torch.testing.assert_close(trainer.dictionary.W_dec.detach(), expected_dec, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind, skip", [("transcoder", False), ("transcoder", True), ("sae_mlp_out", False)])
@pytest.mark.parametrize("ghost", [False, True])
def test_hand_written_relu_gradients_equal_autograds(kind, skip, ghost):
    """In float64 both paths agree to rounding: each gradient entry is a sum of at most
    batch x d_sae = 512 products of O(1) terms, so two summation orders differ by about
    512 * 1.1e-16 ~ 6e-14 relative; a wrong or missing term (the L1 gradient alone is
    l1 / batch = 3e-3 per active entry) would be off by orders of magnitude more than rtol 1e-10."""
    generator = torch.Generator().manual_seed(1)
    dictionary = Dictionary.initialise(spec(kind, skip=skip), generator=generator, dtype=torch.float64)
    with torch.no_grad():
        for parameter in dictionary.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
        dictionary.b_enc[:6] -= 3.0  # features that rarely fire, as dead ones do
    x = torch.randn(16, D, generator=generator, dtype=torch.float64)
    y = torch.randn(16, D, generator=generator, dtype=torch.float64)
    l1 = 0.05
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    dead[:6] = True
    dead = dead if ghost else None

    ref_loss, ref_mse, ref_z = reference_loss(dictionary, x, y, l1, dead)
    ref_loss.backward()
    reference = {name: p.grad.clone() for name, p in dictionary.named_parameters()}
    dictionary.zero_grad(set_to_none=True)
    out = relu_loss_backward(dictionary, x, y, l1, dead)

    assert 0 < (ref_z > 0).double().mean() < 1  # both ReLU branches are exercised
    torch.testing.assert_close(out.z, ref_z.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(out.mse, ref_mse.detach(), rtol=1e-12, atol=0)
    l1_value = l1 * ref_z.detach().sum(-1).mean()  # the hand-written path does not form it
    torch.testing.assert_close(out.mse + out.extra_loss + l1_value, ref_loss.detach(), rtol=1e-12, atol=0)
    for name, parameter in dictionary.named_parameters():
        torch.testing.assert_close(parameter.grad, reference[name], rtol=1e-10, atol=1e-13, msg=name)
    if ghost:  # the ghost term reaches the dead features' encoder columns, which ReLU alone never does
        assert reference["W_enc"][:, :6].abs().min() > 0


@pytest.mark.parametrize("kind", ["transcoder", "sae_mlp_out"])
def test_hand_written_step_trains_like_an_autograd_step(kind):
    """Three float32 steps with ghost grads on (eight features forced dead) and the firing counters
    inside the frequency window, against the same steps through `reference_loss` and autograd.
    Gradients differ by float32 rounding (~1e-7 relative); Adam's first steps move each weight by
    at most lr = 3e-3 times m / (sqrt(v) + eps), which a relative gradient change of 1e-6 perturbs
    by ~lr * 1e-6, so after three steps the weights (O(1), float32 ulp ~1e-7) agree well within
    atol 1e-6. The counters depend only on z > 0, which rounding flips only for a pre-activation
    within ~1e-7 of 0: none here."""
    batch = next(synthetic_batches()())
    cfg = config(n_steps=12, frequency_window_steps=10)
    trainer, reference = (
        DictionaryTrainer(DictionaryJob(spec(kind), 3e-2, None), cfg, seed=0) for _ in range(2)
    )
    for t in (trainer, reference):
        t.initialise_biases(batch)
    x, y = reference.inputs(batch)
    for step in (0, 1, 2):
        for t in (trainer, reference):
            t.steps_since_fired[:8] = 100  # dead at every step: the ghost-grad term is on
        trainer.step(batch, step)

        dead = reference.steps_since_fired >= cfg.dead_window_steps
        for group in reference.optimizer.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps)
        reference.optimizer.zero_grad(set_to_none=True)
        loss, mse, z = reference_loss(reference.dictionary, x, y, 3e-2, dead)
        loss.backward()
        reference.dictionary.remove_parallel_decoder_grad_()
        reference.optimizer.step()
        reference.dictionary.normalize_decoder_()
        counts = (z > 0).sum(0)
        reference.steps_since_fired = torch.where(counts > 0, 0, reference.steps_since_fired + 1)
        if step >= cfg.n_steps - cfg.frequency_window_steps:
            reference.fire_counts += counts
            reference.window_tokens += len(z)

    reference_parameters = dict(reference.dictionary.named_parameters())
    for name, parameter in trainer.dictionary.named_parameters():
        torch.testing.assert_close(parameter, reference_parameters[name], rtol=0, atol=1e-6, msg=name)
    assert torch.equal(trainer.steps_since_fired, reference.steps_since_fired)
    assert torch.equal(trainer.fire_counts, reference.fire_counts) and trainer.fire_counts.sum() > 0
    assert trainer.window_tokens == reference.window_tokens
    assert trainer.last["l0"] == counts.sum().item() / len(z)
    assert trainer.last["mse"] == pytest.approx(mse.item(), rel=1e-5)


@pytest.mark.parametrize("precision", ["high", "medium"])
def test_reduced_matmul_precision_trains_and_is_restored(precision, tmp_path):
    """The GPU speed option's code path, run on the CPU: the dictionaries train under the setting
    and torch's default is back afterwards. Where the hardware computes the setting's products in
    lower precision ("medium": bfloat16 on CPUs with AMX or AVX512-BF16), the weights differ from
    float32's; where it does not ("high" on any CPU), they are bit-identical. Either way they learn."""
    cfg = config(n_steps=300, checkpoint_every=100)
    exact_job = DictionaryJob(spec(), 1e-3, tmp_path / "exact")
    reduced_job = DictionaryJob(spec(), 1e-3, tmp_path / "reduced")
    [exact] = train_dictionaries([exact_job], synthetic_batches(), cfg, tmp_path / "c1")
    reduced_cfg = dataclasses.replace(cfg, matmul_precision=MatmulPrecision(precision))
    [reduced] = train_dictionaries([reduced_job], synthetic_batches(), reduced_cfg, tmp_path / "c2")
    assert torch.get_float32_matmul_precision() == "highest"

    # does this machine compute the setting's products in lower precision? Probed on the decoder's
    # product z W_dec (oneDNN lowers a product by its shape: with 8 inner terms it stays float32)
    z, w_dec = torch.randn(64, D_SAE, generator=torch.Generator().manual_seed(0)), torch.randn(D_SAE, D)
    with matmul_precision(precision):
        product = z @ w_dec
    lowered = not torch.equal(product, z @ w_dec)
    first, second = load_dictionary(tmp_path / "exact"), load_dictionary(tmp_path / "reduced")
    pairs = zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs) != lowered

    y = next(synthetic_batches()())[OUT]
    baseline = normalised_mse(y.mean(0).expand_as(y), y).item()  # predicting the mean
    assert exact.final_mse_loss < 0.2 * baseline and reduced.final_mse_loss < 0.2 * baseline


def test_an_unknown_matmul_precision_is_refused_with_the_choices():
    from transcoder_lab.config import ConfigError, compose, load_config

    with pytest.raises(ConfigError, match="matmul_precision"):
        load_config(compose(["profile=tiny", "profile.dictionaries.training.matmul_precision=fast"]))
