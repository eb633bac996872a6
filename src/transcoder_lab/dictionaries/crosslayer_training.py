"""Training a cross-layer transcoder (crosslayer.py) on harvested activation batches.

The batches are the harvest's (activations.py): dicts from hook name to [tokens, d] rows, aligned
across hooks; a CLT reads every layer's MLP input and output, `blocks.l.ln2.hook_normalized` and
`blocks.l.hook_mlp_out` for l in 0..n_layers-1. Algorithm, per step:
1. Stack the batch by layer: x [n_layers, b, d_in], y [n_layers, b, d_out].
2. Forward (crosslayer.py steps 1-2): z = act(p), y_hat_l' = b_dec_out_l' + sum_{l <= l'} z_l W_dec[l -> l'].
3. Loss (`crosslayer_loss`): sum over output layers of the per-layer trainer's normalised MSE
   (training.normalised_mse) plus the recipe's sparsity term (crosslayer.py step 4), weighted by
   each feature's concatenated decoder norm.
4. Backward by autograd (the CLT is small on the organism; tests/dictionaries/test_crosslayer.py
   checks autograd's gradient of the l1_decoder_norm loss against a hand-written formula in
   float64). A NaN or Inf loss stops the run naming the step, before any parameter moves.
5. Adam step with the learning rate warmed up linearly over `warmup_steps`, then held. No decoder
   renormalisation: the penalty is scale-invariant (crosslayer.py step 3). With
   `sparsity_warmup_fraction` > 0, lambda ramps linearly from 0 over that share of the steps
   (`CrossLayerTrainingConfig.sparsity_at`), as the per-layer trainer's `l1_warmup_fraction` does.
Before step 0 the CLT is initialised on the CPU from `seed` (the same weights on every device),
b_dec starts at the first batch's mean input per layer and b_dec_out at its mean target.
Every `checkpoint_every` steps the CLT, Adam and the firing counters are written atomically; a
rerun with the same settings, data and code (the checkpoint's fingerprint) resumes there, replaying
the deterministic batch stream up to that step without training, so it ends bit-identical to an
uninterrupted run. At the end the CLT is saved with the log10 firing frequency of each feature over
the last `frequency_window_steps` steps (crosslayer.save_crosslayer).
Not here yet (later steps): dead-feature remedies (ghost grads, resampling) and reduced-precision
matrix products. The DVC stage and the profile settings are crosslayer_stage.py's.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from transcoder_lab import io
from transcoder_lab.dictionaries import crosslayer, training
from transcoder_lab.dictionaries.activations import Batch, batch_to_device
from transcoder_lab.dictionaries.crosslayer import (
    CrossLayerSpec,
    CrossLayerTrainingConfig,
    CrossLayerTranscoder,
    save_crosslayer,
)
from transcoder_lab.dictionaries.training import (
    DEAD_LOG10_FREQUENCY,
    TrainingDivergedError,
    normalised_mse,
    read_checkpoint,
    replayed_steps,
)

CHECKPOINT = "crosslayer_checkpoint.pt"


@dataclass
class CrossLayerLoss:
    total: torch.Tensor  # what is differentiated
    mse_by_layer: Float[torch.Tensor, " n_layers"]  # each output layer's normalised MSE
    sparsity: torch.Tensor  # the recipe's sparsity term (lambda included)
    pre_act: torch.Tensor  # the pre-activation term (tanh_jumprelu; 0 otherwise)
    z: Float[torch.Tensor, "n_layers b d_sae"]


@dataclass
class CrossLayerResult:
    steps: int
    final_loss: float
    final_mse_by_layer: list[float]
    final_l0_by_layer: list[float]  # active features per token, per source layer
    dead_fraction: float
    seconds: float


def stack_layers(
    batch: Batch, spec: CrossLayerSpec
) -> tuple[Float[torch.Tensor, "n_layers b d_in"], Float[torch.Tensor, "n_layers b d_out"]]:
    """A harvested batch's MLP inputs and outputs of every layer, stacked by layer (step 1)."""
    missing = [hook for hook in spec.hooks_in + spec.hooks_out if hook not in batch]
    if missing:
        raise KeyError(
            f"the batch lacks {missing}: a {spec.n_layers}-layer CLT needs the MLP input and output "
            f"of every layer (it has {sorted(batch)})"
        )
    x = torch.stack([batch[hook] for hook in spec.hooks_in])
    y = torch.stack([batch[hook] for hook in spec.hooks_out])
    return x, y


def crosslayer_loss(
    clt: CrossLayerTranscoder,
    x: Float[torch.Tensor, "n_layers b d_in"],
    y: Float[torch.Tensor, "n_layers b d_out"],
    cfg: CrossLayerTrainingConfig,
    step: int | None = None,
) -> CrossLayerLoss:
    """The loss of step 3 for the CLT's recipe, differentiable by autograd; at a training `step`
    lambda is the warmed-up one (`cfg.sparsity_at`), else cfg.sparsity_coefficient."""
    pre = clt.pre_activations(x)
    z = clt.activation(pre, cfg.jumprelu_bandwidth)
    y_hat = clt.decode(z)
    mse_by_layer = torch.stack([normalised_mse(y_hat[layer], y[layer]) for layer in range(len(y))])
    weighted = z * clt.decoder_norms().unsqueeze(1)  # z_{l,b,i} ||W_dec[l, i]||
    lam = cfg.sparsity_at(step) if step is not None else cfg.sparsity_coefficient
    pre_act = torch.zeros((), dtype=z.dtype, device=z.device)
    if clt.spec.jumprelu:
        sparsity = lam * torch.tanh(cfg.tanh_scale * weighted).sum((0, 2)).mean()
        pre_act = cfg.pre_act_coefficient * torch.relu(-pre).sum((0, 2)).mean()
    else:  # z >= 0, so this sum is the decoder-norm-weighted L1 norm
        sparsity = lam * weighted.sum((0, 2)).mean()
    total = mse_by_layer.sum() + sparsity + pre_act
    return CrossLayerLoss(total, mse_by_layer, sparsity, pre_act, z)


class CrossLayerTrainer:
    """One CLT's training state: weights, Adam, firing counters."""

    def __init__(
        self, spec: CrossLayerSpec, cfg: CrossLayerTrainingConfig, device: str | torch.device = "cpu"
    ) -> None:
        self.spec, self.cfg, self.device = spec, cfg, torch.device(device)
        generator = torch.Generator().manual_seed(cfg.seed)  # on the CPU: the same weights everywhere
        clt = CrossLayerTranscoder.initialise(spec, generator, init_threshold=cfg.jumprelu_init_threshold)
        self.clt = clt.to(self.device)
        self.optimizer = torch.optim.Adam(self.clt.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        shape = (spec.n_layers, spec.d_sae)
        self.steps_since_fired = torch.zeros(shape, dtype=torch.long, device=self.device)
        self.fire_counts = torch.zeros(shape, dtype=torch.long, device=self.device)
        self.window_tokens = 0
        self.last_loss, self.last_mse, self.last_l0 = math.nan, [math.nan], [math.nan]  # the last step's

    @torch.no_grad()
    def initialise_biases(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.clt.b_dec.copy_(x.mean(1))
        self.clt.b_dec_out.copy_(y.mean(1))

    def step(self, x: torch.Tensor, y: torch.Tensor, step: int) -> None:
        cfg = self.cfg
        self.optimizer.zero_grad(set_to_none=True)
        loss = crosslayer_loss(self.clt, x, y, cfg, step)
        if not torch.isfinite(loss.total):  # before any parameter moves
            raise TrainingDivergedError(
                f"the cross-layer transcoder's loss is {loss.total.item()} at step {step}; the last "
                "checkpoint is kept. Lower the learning rate or the sparsity coefficient."
            )
        loss.total.backward()
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        self.optimizer.step()
        with torch.no_grad():
            counts = (loss.z > 0).sum(1)  # [n_layers, d_sae]: tokens on which each feature fired
            self.steps_since_fired = torch.where(counts > 0, 0, self.steps_since_fired + 1)
            if step >= cfg.n_steps - cfg.frequency_window_steps:
                self.fire_counts += counts
                self.window_tokens += loss.z.shape[1]
            self.last_loss, self.last_mse = loss.total.item(), loss.mse_by_layer.tolist()
            self.last_l0 = (counts.sum(1).double() / loss.z.shape[1]).tolist()  # per source layer

    def log10_frequency(self) -> torch.Tensor:
        frequency = self.fire_counts.double() / max(1, self.window_tokens)
        return torch.where(frequency > 0, frequency.log10(), DEAD_LOG10_FREQUENCY).float()

    def dead_fraction(self) -> float:
        return (self.steps_since_fired >= self.cfg.dead_window_steps).float().mean().item()

    def state(self) -> dict:
        return {
            "clt": self.clt.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "steps_since_fired": self.steps_since_fired,
            "fire_counts": self.fire_counts,
            "window_tokens": self.window_tokens,
            "last": [self.last_loss, self.last_mse, self.last_l0],
        }

    def load(self, state: dict) -> None:
        """A checkpoint's state (read onto the CPU), placed on this trainer's device."""
        self.clt.load_state_dict(state["clt"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps_since_fired = state["steps_since_fired"].to(self.device)
        self.fire_counts = state["fire_counts"].to(self.device)
        self.window_tokens = state["window_tokens"]
        self.last_loss, self.last_mse, self.last_l0 = state["last"]


def crosslayer_fingerprint(
    spec: CrossLayerSpec, cfg: CrossLayerTrainingConfig, out_dir: Path, data_id: str
) -> str:
    """What a checkpoint must match to be resumed: spec, settings (bar checkpoint_every), output,
    the data's identity and the code that trains (this module, crosslayer.py, the stream replay of
    training.py, torch's version)."""
    settings = {k: v for k, v in asdict(cfg).items() if k != "checkpoint_every"}
    sources = [__file__, crosslayer.__file__, training.__file__]
    code = [io.sha256_file(path) for path in sources] + [torch.__version__]
    payload = [spec.to_json(), settings, str(out_dir), data_id, code]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def train_crosslayer(
    spec: CrossLayerSpec,
    batches: Callable[[], Iterator[Batch]],
    cfg: CrossLayerTrainingConfig,
    out_dir: str | Path,
    checkpoint_dir: str | Path,
    data_id: str = "",
    stop_after_step: int | None = None,
    device: str | torch.device = "cpu",
) -> CrossLayerResult:
    """Train one CLT on a batch stream and save it to `out_dir` (crosslayer.py's format).

    `batches()` must return a fresh, deterministic iterator (the same batches on every call);
    `data_id` names that stream in the checkpoint fingerprint. `stop_after_step` ends the run after
    that step (and its checkpoint, if one falls there), as an interruption would.
    """
    start_time = time.time()
    out_dir, checkpoint_path = Path(out_dir), Path(checkpoint_dir) / CHECKPOINT
    trainer = CrossLayerTrainer(spec, cfg, device)
    fingerprint = crosslayer_fingerprint(spec, cfg, out_dir, data_id)
    start_step = 0
    state = read_checkpoint(checkpoint_path, fingerprint)
    if state is not None:
        trainer.load(state["trainer"])
        start_step = state["step"]
        print(f"resuming the cross-layer transcoder from {checkpoint_path} at step {start_step}")

    progress = tqdm(total=cfg.n_steps, initial=start_step, desc=f"CLT x{spec.n_layers} layers")
    done = start_step
    for step, batch in replayed_steps(batches, cfg.n_steps, start_step):
        x, y = stack_layers(batch_to_device(batch, device), spec)
        if step == 0:
            trainer.initialise_biases(x, y)
        trainer.step(x, y, step)
        done = step + 1
        progress.update(1)
        if step % 20 == 0:
            progress.set_postfix(loss=f"{trainer.last_loss:.4f}", dead=f"{trainer.dead_fraction():.2f}")
        if done % cfg.checkpoint_every == 0 or done == cfg.n_steps:
            io.write_torch(
                checkpoint_path, {"fingerprint": fingerprint, "step": done, "trainer": trainer.state()}
            )
        if stop_after_step is not None and done >= stop_after_step:
            break
    progress.close()

    if done == cfg.n_steps:
        metadata = {"training": asdict(cfg), "steps": done}
        save_crosslayer(trainer.clt.cpu(), out_dir, trainer.log10_frequency().cpu(), metadata)
    return CrossLayerResult(
        done,
        trainer.last_loss,
        trainer.last_mse,
        trainer.last_l0,
        trainer.dead_fraction(),
        time.time() - start_time,
    )
