"""One trainer for every dictionary arm: transcoders, SAEs on the MLP output, SAEs on the MLP input.

Several dictionaries (a sparsity sweep, several layers, both arms) train side by side on one
stream of harvested activation batches, so the model's forward pass is paid once. A dictionary's
initialisation seed depends only on its position among the jobs of its own cell (same arm and
layer), so it trains to the same weights whether its cell runs alone or beside other cells.

Algorithm, per step and per dictionary (docs/design.md §4.2):
1. Read its input x and target y from the batch (by hook name: a transcoder reads the MLP input
   and predicts the MLP output; an SAE reads and predicts the same hook).
2. Forward: z = ReLU((x - b_dec) W_enc + b_enc) (TopK keeps the k largest), y_hat = z W_dec + b_dec_out.
3. Loss: mean_{b,j} (y_hat_bj - y_bj)^2 / ||y_b||_2  +  lambda * mean_b sum_i |z_bi|
   (TopK dictionaries use no L1 term), plus, with `dead_features: ghost_grads`, the ghost-grad
   term for features that have not fired for `dead_window_steps`: exp(pre-activations) of the
   dead features decode a "ghost" output, rescaled to half the norm of the residual
   r = y - y_hat (the target minus the output, for transcoders too), and trained to explain r,
   with the ghost loss rescaled to the size of the reconstruction loss.
4. Backward (ReLU dictionaries: gradients written out by hand in `relu_loss_backward`, the same
   as autograd's in fewer passes; TopK: autograd); remove from each decoder row's gradient its
   component along the row; Adam step with the learning rate warmed up linearly then held
   constant; renormalise decoder rows.
5. With `dead_features: resample`, every `resample_every` steps each dead feature is re-pointed
   at a poorly reconstructed input of the current batch (decoder row = that residual, normalised;
   encoder column = the same direction scaled to 0.2 x the mean live encoder norm), and its Adam
   moments are reset.
Biases start at the mean input (b_dec) and mean target (b_dec_out) of the first batch. Options
against dead transcoder features, off in the paper's recipe (docs/dead_features.md measures them):
`transcoder_init: linear` points each transcoder feature's decoder row where the least-squares
linear map from input to target (first batch) sends its encoder column; `transcoder_init: data`
starts feature i as token i of the first batch (centred input in, centred target out); and
`l1_warmup_fraction` ramps the L1 coefficient up from 0 over that share of the steps (with
`dead_features: none`, the organism's recipe: it keeps nearly every transcoder feature alive at
no cost in spliced CE at matched L0). Resampling never happens in the last
`resample_every` steps (a resampled feature needs them to settle).
Every `checkpoint_every` steps all dictionaries, optimisers and counters are written atomically;
a rerun resumes there and replays the (seeded, deterministic) batch stream up to that step
without training, so a resumed run ends with the same weights as an uninterrupted one.
A NaN or Inf loss stops the run naming the step and the dictionary; the last checkpoint stays.
Devices: dictionaries are initialised on the CPU (the same weights everywhere), then moved to
`device`, where they train in float32; each batch is moved there once per step through pinned
memory (transcoder_lab.dictionaries.activations.batch_to_device) and shared by every dictionary. Checkpoints
load onto any device, and saved dictionaries are always CPU tensors.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from transcoder_lab import io
from transcoder_lab.config import (
    Architecture,
    DeadFeatures,
    DictionaryTrainingConfig,
    Sparsity,
    TranscoderInit,
)
from transcoder_lab.dictionaries.activations import Batch, batch_to_device
from transcoder_lab.dictionaries.dictionary import Dictionary, DictionarySpec, save_dictionary

CHECKPOINT = "dictionaries_checkpoint.pt"
DEAD_LOG10_FREQUENCY = -10.0  # the published files' value for a feature that never fired


class TrainingDivergedError(RuntimeError):
    pass


@dataclass
class DictionaryJob:
    """One dictionary to train: its shape, sparsity penalty and output directory."""

    spec: DictionarySpec
    l1_coefficient: float
    out_dir: Path

    @property
    def name(self) -> str:
        sparsity = Sparsity(self.l1_coefficient if self.spec.k is None else 0.0, self.spec.k)
        return f"{self.spec.arm}@L{self.spec.layer} {sparsity.setting}"


@dataclass
class JobResult:
    name: str
    steps: int
    final_mse_loss: float
    final_l0: float
    dead_fraction: float
    seconds: float


def normalised_mse(y_hat: Float[torch.Tensor, "b d"], y: Float[torch.Tensor, "b d"]) -> torch.Tensor:
    """The paper's reconstruction loss: squared error divided by the target's norm (not its square)."""
    return ((y_hat - y).pow(2) / y.norm(dim=-1, keepdim=True).clamp_min(1e-8)).mean()


def ghost_grad_loss(
    dead_pre: Float[torch.Tensor, "b n_dead"],
    dead_W_dec: Float[torch.Tensor, "n_dead d_out"],
    residual: Float[torch.Tensor, "b d_out"],
    reconstruction_loss: torch.Tensor,
) -> torch.Tensor:
    """Ghost-grad term: the dead features' exp(pre-activation) output, trained on the residual."""
    ghost = dead_pre.exp() @ dead_W_dec
    scale = residual.norm(dim=-1, keepdim=True) / (2 * ghost.norm(dim=-1, keepdim=True) + 1e-6)
    ghost = ghost * scale.detach()
    ghost_loss = normalised_mse(ghost, residual.detach())
    return ghost_loss * (reconstruction_loss / (ghost_loss + 1e-6)).detach()


@dataclass
class StepOutputs:
    z: Float[torch.Tensor, "b d_sae"]  # the feature activations
    y_hat: Float[torch.Tensor, "b d_out"]
    mse: torch.Tensor  # the normalised MSE, a scalar
    extra_loss: torch.Tensor  # the L1 (autograd path) and ghost-grad terms beside it; 0 if none


@torch.no_grad()
def relu_loss_backward(
    dictionary: Dictionary,
    x: Float[torch.Tensor, "b d_in"],
    y: Float[torch.Tensor, "b d_out"],
    l1: float,
    dead: torch.Tensor | None,
) -> StepOutputs:
    """A ReLU dictionary's loss (step 3 of the module docstring) and its gradients, by hand.

    Fills every parameter's `.grad` with what autograd would give (tests/dictionaries/test_training.py checks
    this in float64), in fewer passes over the [batch, d_sae] tensors, which beside the five
    matrix products are what a CPU step costs:
    1. pre = (x - b_dec) W_enc + b_enc; z = ReLU(pre), written over pre in place.
    2. y_hat = z W_dec + b_dec_out (+ x W_skip); g = dL/dy_hat = 2 (y_hat - y) / (||y|| b d_out).
    3. dL/dz = g W_dec^T + l1 / b: the L1 gradient is the bias of that product, not an extra pass;
       dL/dpre = dL/dz where z > 0, else 0.
    4. dL/dW_enc = (x - b_dec)^T dL/dpre, dL/db_enc = sum_b dL/dpre, and b_dec's encoder-side
       gradient -W_enc dL/db_enc, a matrix-vector product where autograd would form dL/dx, a sixth
       matrix product. dL/dW_dec = z^T g, dL/db_dec_out = sum_b g, dL/dW_skip = x^T g.
    With `dead` (ghost grads on), the ghost term's gradients with respect to the dead features'
    pre-activations and decoder rows come from autograd on those columns alone and are added in.
    The L1 term's value is not formed (nothing reads it); `extra_loss` is the ghost term or 0.
    """
    n_rows = x.shape[0]
    x_centred = x - dictionary.b_dec  # [b, d_in]
    pre = torch.addmm(dictionary.b_enc, x_centred, dictionary.W_enc)  # [b, d_sae]
    dead_pre = pre[:, dead] if dead is not None else None  # a copy: the ReLU below overwrites pre
    z = pre.clamp_min_(0)
    y_hat = torch.addmm(dictionary.b_dec_out, z, dictionary.W_dec)  # [b, d_out]
    if dictionary.W_skip is not None:
        y_hat.addmm_(x, dictionary.W_skip)
    norm = y.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    error = y_hat - y
    mse = (error.pow(2) / norm).mean()
    grad_y_hat = error * (2 / error.numel()) / norm  # [b, d_out]

    l1_grad = torch.full((1,), l1 / n_rows, dtype=z.dtype, device=z.device)
    grad_z = torch.addmm(l1_grad, grad_y_hat, dictionary.W_dec.T)  # [b, d_sae]
    grad_pre = torch.ops.aten.threshold_backward(grad_z, z, 0)  # 0 where ReLU(pre) = 0
    extra_loss = torch.zeros((), dtype=z.dtype, device=z.device)
    dead_W_dec_grad = None
    if dead is not None:
        with torch.enable_grad():
            dead_pre.requires_grad_(True)
            dead_W_dec = dictionary.W_dec[dead].requires_grad_(True)
            extra_loss = ghost_grad_loss(dead_pre, dead_W_dec, y - y_hat, mse)
            dead_pre_grad, dead_W_dec_grad = torch.autograd.grad(extra_loss, [dead_pre, dead_W_dec])
        grad_pre[:, dead] += dead_pre_grad
        extra_loss = extra_loss.detach()

    b_enc_grad = grad_pre.sum(0)
    dictionary.W_enc.grad = x_centred.T @ grad_pre
    dictionary.b_enc.grad = b_enc_grad
    b_dec_grad = -(dictionary.W_enc @ b_enc_grad)
    b_dec_out_grad = grad_y_hat.sum(0)
    if dictionary.spec.is_transcoder:
        dictionary.b_dec_out.grad = b_dec_out_grad
    else:  # an SAE's b_dec is also its output bias
        b_dec_grad += b_dec_out_grad
    dictionary.b_dec.grad = b_dec_grad
    dictionary.W_dec.grad = z.T @ grad_y_hat
    if dead_W_dec_grad is not None:
        dictionary.W_dec.grad[dead] += dead_W_dec_grad
    if dictionary.W_skip is not None:
        dictionary.W_skip.grad = x.T @ grad_y_hat
    return StepOutputs(z, y_hat, mse, extra_loss)


def autograd_loss_backward(
    dictionary: Dictionary,
    x: Float[torch.Tensor, "b d_in"],
    y: Float[torch.Tensor, "b d_out"],
    l1: float,
    dead: torch.Tensor | None,
) -> StepOutputs:
    """Any dictionary's loss (step 3 of the module docstring), differentiated by autograd: the
    path of TopK dictionaries (which have no L1 term: pass l1 = 0)."""
    pre = dictionary.pre_activations(x)
    z = dictionary.activation(pre)
    y_hat = dictionary.decode(z, x)
    mse = normalised_mse(y_hat, y)
    extra_loss = l1 * z.sum(-1).mean()  # z >= 0: the sum is the L1 norm
    if dead is not None:
        extra_loss = extra_loss + ghost_grad_loss(pre[:, dead], dictionary.W_dec[dead], y - y_hat, mse)
    (mse + extra_loss).backward()
    return StepOutputs(z.detach(), y_hat.detach(), mse.detach(), extra_loss.detach())


class DictionaryTrainer:
    """The state of one dictionary's training: weights, Adam, firing counters."""

    def __init__(
        self, job: DictionaryJob, cfg: DictionaryTrainingConfig, seed: int, device: str | torch.device = "cpu"
    ) -> None:
        self.job, self.cfg = job, cfg
        self.device = torch.device(device)
        generator = torch.Generator().manual_seed(seed)  # on the CPU: the same weights on every device
        self.dictionary = Dictionary.initialise(job.spec, generator=generator).to(self.device)
        self.optimizer = torch.optim.Adam(self.dictionary.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        d_sae = job.spec.d_sae
        self.steps_since_fired = torch.zeros(d_sae, dtype=torch.long, device=self.device)
        self.fire_counts = torch.zeros(d_sae, dtype=torch.long, device=self.device)  # frequency window
        self.window_tokens = 0
        self.last = {"mse": math.nan, "l0": math.nan}

    def inputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return batch[self.job.spec.hook_in], batch[self.job.spec.hook_out]

    @torch.no_grad()
    def initialise_biases(self, batch: Batch) -> None:
        """Before the first step: biases at the batch means; with `transcoder_init: linear`, a
        transcoder's decoder rows become its encoder columns mapped by the least-squares linear
        map from (centred) input to (centred) target, computed on the CPU so every device starts
        from the same weights."""
        x, y = self.inputs(batch)
        dictionary = self.dictionary
        dictionary.b_dec.copy_(x.mean(0))
        if dictionary.b_dec_out is not dictionary.b_dec:  # transcoders: a separate output bias
            dictionary.b_dec_out.copy_(y.mean(0))
        if not dictionary.spec.is_transcoder or self.cfg.transcoder_init == TranscoderInit.random:
            return
        x_c, y_c = (v.cpu().double() - v.cpu().double().mean(0) for v in (x, y))
        if self.cfg.transcoder_init == TranscoderInit.linear:
            linear_map = torch.linalg.lstsq(x_c, y_c).solution  # [d_in, d_out]
            W_enc = dictionary.W_enc.cpu().double()
            W_dec = W_enc.T @ linear_map  # [d_sae, d_out]
        else:  # "data": feature i starts as token i of the batch (cycled): its input in, its target out
            rows = torch.arange(dictionary.spec.d_sae) % len(x_c)
            W_enc, W_dec = x_c[rows].T, y_c[rows]
        unit = lambda w, dim: w / w.norm(dim=dim, keepdim=True).clamp_min(1e-12)  # noqa: E731
        dictionary.W_enc.copy_(unit(W_enc, 0))
        dictionary.W_dec.copy_(unit(W_dec, -1))

    def step(self, batch: Batch, step: int) -> None:
        cfg, dictionary = self.cfg, self.dictionary
        x, y = self.inputs(batch)
        dead = self.steps_since_fired >= cfg.dead_window_steps
        ghost_dead = dead if cfg.dead_features == DeadFeatures.ghost_grads and dead.any() else None
        self.optimizer.zero_grad(set_to_none=True)
        if dictionary.spec.architecture is Architecture.relu:
            l1 = self.job.l1_coefficient * min(1.0, (step + 1) / max(1, cfg.l1_warmup_steps))
            out = relu_loss_backward(dictionary, x, y, l1, ghost_dead)
        else:
            out = autograd_loss_backward(dictionary, x, y, 0.0, ghost_dead)
        loss = out.mse + out.extra_loss
        if not torch.isfinite(loss):  # checked before the parameters move
            raise TrainingDivergedError(
                f"loss of {self.job.name} is {loss.item()} at step {step}; the last checkpoint is kept. "
                "Lower the learning rate or the L1 coefficient."
            )
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        dictionary.remove_parallel_decoder_grad_()
        self.optimizer.step()
        dictionary.normalize_decoder_()
        z, y_hat, mse = out.z, out.y_hat, out.mse

        with torch.no_grad():
            # One pass over z gives firing, frequency and L0. sign(z) is 0 or 1 (z >= 0), and a float32
            # sum of 0/1 values is exact below 2^24 rows; counting a bool mask instead first widens
            # it to int64, a pass that cost a quarter of a CPU step.
            counts = z.sign().sum(0).long()
            self.steps_since_fired = torch.where(counts > 0, 0, self.steps_since_fired + 1)
            if step >= cfg.n_steps - cfg.frequency_window_steps:
                self.fire_counts += counts
                self.window_tokens += len(z)
            self.last = {"mse": mse.item(), "l0": counts.sum().item() / len(z)}
            # never in the last resample_every steps: a resampled feature needs them to settle
            settle = step + 1 <= cfg.n_steps - cfg.resample_every
            if cfg.dead_features == DeadFeatures.resample and (step + 1) % cfg.resample_every == 0 and settle:
                self.resample_dead(x, y - y_hat, dead)

    @torch.no_grad()
    def resample_dead(self, x: torch.Tensor, residual: torch.Tensor, dead: torch.Tensor) -> None:
        """Re-point dead features at the worst-reconstructed inputs of this batch."""
        dead_ids = dead.nonzero().squeeze(-1)
        if len(dead_ids) == 0:
            return
        worst = residual.norm(dim=-1).argsort(descending=True)[: len(dead_ids)]
        dead_ids = dead_ids[: len(worst)]
        directions = residual[worst] / residual[worst].norm(dim=-1, keepdim=True).clamp_min(1e-8)
        dictionary = self.dictionary
        alive = ~dead
        encoder_norm = (
            dictionary.W_enc[:, alive].norm(dim=0).mean()
            if alive.any()
            else torch.tensor(1.0, device=x.device)
        )
        inputs = x[worst] - dictionary.b_dec
        inputs = inputs / inputs.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        dictionary.W_dec[dead_ids] = directions
        dictionary.W_enc[:, dead_ids] = (0.2 * encoder_norm * inputs).T
        dictionary.b_enc[dead_ids] = 0.0
        for parameter in (dictionary.W_dec, dictionary.W_enc, dictionary.b_enc):
            state = self.optimizer.state.get(parameter, {})
            for moment in ("exp_avg", "exp_avg_sq"):
                if moment in state:
                    index = (slice(None), dead_ids) if parameter is dictionary.W_enc else dead_ids
                    state[moment][index] = 0.0
        self.steps_since_fired[dead_ids] = 0

    def log10_frequency(self) -> torch.Tensor:
        frequency = self.fire_counts.double() / max(1, self.window_tokens)
        return torch.where(frequency > 0, frequency.log10(), DEAD_LOG10_FREQUENCY).float()

    def state(self) -> dict:
        return {
            "dictionary": self.dictionary.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "steps_since_fired": self.steps_since_fired,
            "fire_counts": self.fire_counts,
            "window_tokens": self.window_tokens,
        }

    def load(self, state: dict) -> None:
        """A checkpoint's state (read onto the CPU), placed on this trainer's device."""
        self.dictionary.load_state_dict(state["dictionary"])
        self.optimizer.load_state_dict(state["optimizer"])  # moves Adam's moments to the parameters
        self.steps_since_fired = state["steps_since_fired"].to(self.device)
        self.fire_counts = state["fire_counts"].to(self.device)
        self.window_tokens = state["window_tokens"]


def jobs_fingerprint(jobs: list[DictionaryJob], cfg: DictionaryTrainingConfig, data_id: str) -> str:
    """What a checkpoint must match to be resumed: the jobs, the settings, the data's identity and
    the code that trains (this module's source, torch's version)."""
    payload = [[asdict(job.spec), job.l1_coefficient, str(job.out_dir)] for job in jobs]
    settings = {k: v for k, v in asdict(cfg).items() if k != "checkpoint_every"}
    code = [io.sha256_file(__file__), torch.__version__]
    return hashlib.sha256(
        json.dumps([payload, settings, data_id, code], sort_keys=True, default=str).encode()
    ).hexdigest()


def job_seeds(jobs: list[DictionaryJob], seed: int) -> list[int]:
    """Each job's initialisation seed: seed * 1000 + its index among the jobs of its own cell (the
    same arm and layer). A cell's dictionaries so get the same seeds whether the cell trains alone
    (one DVC stage instance per cell) or in one pass with other cells."""
    seen: dict[tuple[str, int], int] = {}
    seeds = []
    for job in jobs:
        cell = (job.spec.arm, job.spec.layer)
        seeds.append(seed * 1000 + seen.get(cell, 0))
        seen[cell] = seen.get(cell, 0) + 1
    return seeds


def train_dictionaries(
    jobs: list[DictionaryJob],
    batches: Callable[[], Iterator[Batch]],
    cfg: DictionaryTrainingConfig,
    checkpoint_dir: Path,
    data_id: str = "",
    stop_after_step: int | None = None,
    device: str | torch.device = "cpu",
) -> list[JobResult]:
    """Train every job on one batch stream; save each to its out_dir in sae-lens's format.

    `batches()` must return a fresh, deterministic iterator of batches (the same sequence on every
    call); `data_id` names that stream in the checkpoint fingerprint. `stop_after_step` ends the
    run early after that step's checkpoint, as an interruption would. `device` is where the
    dictionaries train (a resolved name: see transcoder_lab.sources.models.resolve_device).
    """
    with matmul_precision(cfg.matmul_precision):
        return _train_dictionaries(jobs, batches, cfg, checkpoint_dir, data_id, stop_after_step, device)


@contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """torch's float32 matrix-product precision set to `precision` inside the block, restored after
    (a process-wide setting: the model passes of later stages must not inherit it)."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(str(precision))
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def read_checkpoint(path: Path, fingerprint: str) -> dict | None:
    """A checkpoint's state (on the CPU) when `path` holds one with this fingerprint, else None:
    a checkpoint of other settings, data or code is ignored and the run starts afresh."""
    if not path.exists():
        return None
    state = io.read_torch(path)
    return state if state["fingerprint"] == fingerprint else None


def replayed_steps(
    batches: Callable[[], Iterator[Batch]], n_steps: int, start_step: int
) -> Iterator[tuple[int, Batch]]:
    """(step, batch) for steps start_step..n_steps-1. The stream is read from its start, so a resumed
    run trains on the batches an uninterrupted one would; a stream that ends early is an error that
    says what to change."""
    stream = batches()
    for step in range(n_steps):
        try:
            batch = next(stream)
        except StopIteration:
            raise ValueError(
                f"the activation stream ended after {step} batches but n_steps is {n_steps}: "
                "harvest more tokens or lower n_steps"
            ) from None
        if step >= start_step:  # before it: replaying the stream up to the checkpoint
            yield step, batch


def _train_dictionaries(
    jobs: list[DictionaryJob],
    batches: Callable[[], Iterator[Batch]],
    cfg: DictionaryTrainingConfig,
    checkpoint_dir: Path,
    data_id: str,
    stop_after_step: int | None,
    device: str | torch.device,
) -> list[JobResult]:
    start_time = time.time()
    seeds = job_seeds(jobs, cfg.seed)
    trainers = [DictionaryTrainer(job, cfg, seed, device) for job, seed in zip(jobs, seeds, strict=True)]
    checkpoint_path = Path(checkpoint_dir) / CHECKPOINT
    fingerprint = jobs_fingerprint(jobs, cfg, data_id)
    start_step = 0
    state = read_checkpoint(checkpoint_path, fingerprint)
    if state is not None:
        for trainer, trainer_state in zip(trainers, state["trainers"], strict=True):
            trainer.load(trainer_state)
        start_step = state["step"]
        print(f"resuming {len(jobs)} dictionaries from {checkpoint_path} at step {start_step}")

    def save_checkpoint(step: int) -> None:
        state = {"fingerprint": fingerprint, "step": step, "trainers": [t.state() for t in trainers]}
        io.write_torch(checkpoint_path, state)

    progress = tqdm(total=cfg.n_steps, initial=start_step, desc=f"{len(jobs)} dictionaries")
    done = start_step
    for step, batch in replayed_steps(batches, cfg.n_steps, start_step):
        batch = batch_to_device(batch, device)  # once per step, shared by every dictionary
        if step == 0:
            for trainer in trainers:
                trainer.initialise_biases(batch)
        for trainer in trainers:
            trainer.step(batch, step)
        done = step + 1
        progress.update(1)
        if step % 20 == 0:
            first = trainers[0].last
            dead = sum((t.steps_since_fired >= cfg.dead_window_steps).float().mean().item() for t in trainers)
            progress.set_postfix(
                mse=f"{first['mse']:.4f}", l0=f"{first['l0']:.1f}", dead=f"{dead / len(trainers):.2f}"
            )
        if done % cfg.checkpoint_every == 0 or done == cfg.n_steps:
            save_checkpoint(done)
        if stop_after_step is not None and done >= stop_after_step:
            break
    progress.close()

    results = []
    for trainer in trainers:
        dead = (trainer.steps_since_fired >= cfg.dead_window_steps).float().mean().item()
        results.append(
            JobResult(
                trainer.job.name,
                done,
                trainer.last["mse"],
                trainer.last["l0"],
                dead,
                time.time() - start_time,
            )
        )
        if done == cfg.n_steps:
            metadata = {"l1_coefficient": trainer.job.l1_coefficient, "training": asdict(cfg)}
            save_dictionary(
                trainer.dictionary.cpu(), trainer.job.out_dir, trainer.log10_frequency().cpu(), metadata
            )
    return results
