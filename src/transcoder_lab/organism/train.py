"""Next-token training of the model organism, resumable, then weight processing.

Algorithm:
1. Pack the corpus's training documents into BOS-led contexts of n_ctx tokens (transcoder_lab.data).
2. Build the GPT-2-architecture model of transcoder_lab.organism.model (LayerNorm, learned
   positions, GELU-new; TransformerLens's parameter names and initialisation, fused kernels) whose
   vocabulary is the tokenizer's, initialised from the training seed.
3. AdamW (weight decay on matrices only), linear warm-up then cosine decay to
   `lr * min_lr_fraction`. Step s reads the contexts at positions [s*B, (s+1)*B) of an epoch-wise
   permutation seeded by (seed, epoch), so the batch of a step depends only on the seed and the
   step: a resumed run sees exactly the batches an uninterrupted one would.
4. Every `checkpoint_every` steps write model, optimiser and step atomically to `checkpoint_dir`
   (outside DVC's outputs, which DVC deletes before a stage runs); on start, resume from that
   checkpoint if its fingerprint (model and training config, corpus hashes, training code) matches. A NaN or
   Inf loss stops the run naming the step; the last good checkpoint stays on disk.
5. Save the raw (unprocessed) parameters (no buffers: their shapes differ between TransformerLens
   versions, see transcoder_lab.sources.models), the config and the tokenizer. Loading
   (transcoder_lab.sources.models) applies TransformerLens's default processing; step 6 checks that this
   leaves log-probs intact.
6. Compare log-probabilities of the trained model and of the processed TransformerLens model on
   held-out contexts and record the largest difference; a difference above tolerance is an error.
   This checks the weights' conversion to TransformerLens and its processing in one comparison.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from transcoder_lab import io
from transcoder_lab.config import ModelConfig, TrainingConfig
from transcoder_lab.data import split_contexts
from transcoder_lab.organism import model as organism_model
from transcoder_lab.organism.model import OrganismModel, build_organism_model
from transcoder_lab.sources.models import (
    MODEL_CONFIG,
    MODEL_WEIGHTS,
    TOKENIZER_FILE,
    build_processed_model,
    hooked_config,
    parameter_state_dict,
    saved_parameters,
)
from transcoder_lab.sources.tokens import load_tokenizer

CHECKPOINT = "checkpoint.pt"
# Processing (fold_ln, centring) is exact in real arithmetic; in float32 it moves log-probs by
# rounding only: a few ulps of values of size ~10 summed over d_model terms, so ~1e-5; 1e-4
# leaves an order of magnitude of room while catching any real error (those are >= 1e-2).
PROCESSING_TOLERANCE = 1e-4


class TrainingDivergedError(RuntimeError):
    pass


@dataclass
class TrainingResult:
    steps: int
    tokens_seen: int
    first_step_loss: float
    final_train_loss: float
    heldout_loss: float
    processing_max_logprob_diff: float
    seconds: float
    resumed_from_step: int


def learning_rate(step: int, cfg: TrainingConfig) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.lr * cfg.min_lr_fraction at max_steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    floor = cfg.lr * cfg.min_lr_fraction
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * min(1.0, progress)))


def batch_indices(step: int, n_contexts: int, batch_size: int, seed: int) -> torch.Tensor:
    """Context indices of a step: a slice of a permutation that depends only on (seed, epoch)."""
    per_epoch = n_contexts // batch_size
    if per_epoch == 0:
        raise ValueError(f"the corpus has {n_contexts} contexts, fewer than one batch of {batch_size}")
    epoch, position = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    permutation = torch.randperm(n_contexts, generator=generator)
    return permutation[position * batch_size : (position + 1) * batch_size]


def make_optimizer(model: torch.nn.Module, cfg: TrainingConfig) -> torch.optim.AdamW:
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    vectors = [p for p in model.parameters() if p.ndim < 2]
    groups = [
        {"params": matrices, "weight_decay": cfg.weight_decay},
        {"params": vectors, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95))


@torch.no_grad()
def mean_loss(model: OrganismModel, contexts: torch.Tensor, batch_size: int = 64) -> float:
    losses = [
        model.next_token_loss(contexts[i : i + batch_size]).item()
        for i in range(0, len(contexts), batch_size)
    ]
    return float(np.mean(losses))


@torch.no_grad()
def max_logprob_difference(a: OrganismModel, b: HookedTransformer, tokens: torch.Tensor) -> float:
    return (a(tokens).log_softmax(-1) - b(tokens).log_softmax(-1)).abs().max().item()


def run_fingerprint(model_cfg: ModelConfig, cfg: TrainingConfig, corpus_dir: Path) -> str:
    """What a checkpoint must match to be resumed: the configs, the corpus's content hashes, and
    the code that trains (this module's and the model's source, torch's version): a checkpoint left
    by older code would otherwise be picked up as if it were this code's."""
    settings = {k: v for k, v in asdict(cfg).items() if k != "checkpoint_every"}
    manifest = json.loads((Path(corpus_dir) / "manifest.json").read_text())
    code = [io.sha256_file(__file__), io.sha256_file(organism_model.__file__), torch.__version__]
    payload = json.dumps([asdict(model_cfg), settings, manifest, code], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


@contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """Deterministic kernels for the duration. Without them two CPU training runs of the organism
    differ at the 1e-8 level within 150 steps and the difference grows (held-out greater-than
    0.8864 vs 0.8857 after 1800 steps); with them runs are bit-identical.

    Deterministic mode also fills every new uninitialised tensor with NaN by default (a guard
    against reading garbage), about 800 fills a step, 6% of the organism's training time; no
    kernel here reads memory it has not written, so that guard is off: the weights are
    bit-identical either way (checked over 25 steps when it was switched off)."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.utils.deterministic.fill_uninitialized_memory = previous_fill


@deterministic_algorithms()
def train_organism(
    model_cfg: ModelConfig,
    cfg: TrainingConfig,
    corpus_dir: Path,
    out_dir: Path,
    checkpoint_dir: Path,
    stop_after_step: int | None = None,
) -> TrainingResult:
    """Train (or resume) the organism and save it to out_dir; returns what happened.

    `stop_after_step` ends the run early after that step's checkpoint, as an interruption would
    (tests use it to check that resuming reproduces an uninterrupted run).
    """
    start_time = time.time()
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = load_tokenizer(corpus_dir / TOKENIZER_FILE)
    bos_id = tokenizer.bos_token_id
    train_contexts = split_contexts(corpus_dir, "train", model_cfg.n_ctx, bos_id)
    heldout_contexts = split_contexts(corpus_dir, "heldout", model_cfg.n_ctx, bos_id)

    model = build_organism_model(model_cfg, d_vocab=len(tokenizer), seed=cfg.seed)
    optimizer = make_optimizer(model, cfg)

    checkpoint_path = Path(checkpoint_dir) / CHECKPOINT
    fingerprint = run_fingerprint(model_cfg, cfg, corpus_dir)
    start_step, first_step_loss, losses = 0, float("nan"), []
    if checkpoint_path.exists():
        state = io.read_torch(checkpoint_path)
        if state["fingerprint"] == fingerprint:
            # Parameters only, strictly checked; the model keeps its own buffers.
            model.load_state_dict(saved_parameters(state["model"], model, str(checkpoint_path)), strict=False)
            optimizer.load_state_dict(state["optimizer"])
            start_step, first_step_loss, losses = (
                state["step"],
                state["first_step_loss"],
                list(state["losses"]),
            )
            print(f"resuming from {checkpoint_path} at step {start_step}")
        else:
            print(f"ignoring {checkpoint_path}: it belongs to another config or corpus")

    def save_checkpoint(step: int) -> None:
        io.write_torch(
            checkpoint_path,
            {
                "model": parameter_state_dict(model),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "first_step_loss": first_step_loss,
                "losses": losses,
                "fingerprint": fingerprint,
            },
        )

    model.train()
    done = start_step  # steps completed so far
    progress = tqdm(
        range(start_step, cfg.max_steps), initial=start_step, total=cfg.max_steps, desc="organism"
    )
    for step in progress:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg)
        tokens = train_contexts[batch_indices(step, len(train_contexts), cfg.batch_size, cfg.seed)]
        loss = model.next_token_loss(tokens)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"loss is {loss.item()} at step {step}; "
                f"the last good checkpoint ({checkpoint_path}) is kept. "
                "Lower profile.training.lr or raise warmup_steps."
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if step == 0:
            first_step_loss = losses[0]
        if step % 10 == 0:
            progress.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}", lr=f"{learning_rate(step, cfg):.1e}")
        done = step + 1
        if done % cfg.checkpoint_every == 0 or done == cfg.max_steps:
            save_checkpoint(done)
        if stop_after_step is not None and done >= stop_after_step:
            break
    progress.close()
    steps_done = done

    model.eval()
    heldout_loss = mean_loss(model, heldout_contexts)
    result = TrainingResult(
        steps=steps_done,
        tokens_seen=steps_done * cfg.batch_size * model_cfg.n_ctx,
        first_step_loss=first_step_loss,
        final_train_loss=float(np.mean(losses[-20:])),
        heldout_loss=heldout_loss,
        processing_max_logprob_diff=float("nan"),
        seconds=time.time() - start_time,
        resumed_from_step=start_step,
    )
    if steps_done < cfg.max_steps:
        return result  # interrupted on purpose: the checkpoint is the product

    # Step 5: the raw weights, the config and the tokenizer; loading applies the processing.
    raw_state = parameter_state_dict(model)
    io.write_safetensors(out_dir / MODEL_WEIGHTS, raw_state)
    io.write_json(out_dir / MODEL_CONFIG, config_fields(model_cfg, len(tokenizer), cfg.seed))
    shutil.copyfile(corpus_dir / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)

    # Step 6: processing must not change what the model computes.
    processed = build_processed_model(
        hooked_config(model_cfg, len(tokenizer), cfg.seed), raw_state, tokenizer
    )
    difference = max_logprob_difference(model, processed, heldout_contexts[:16])
    if difference > PROCESSING_TOLERANCE:
        raise RuntimeError(
            f"weight processing changed log-probs by {difference:.2e} (> {PROCESSING_TOLERANCE})"
        )
    result.processing_max_logprob_diff = difference
    result.seconds = time.time() - start_time
    io.write_json(out_dir / "training.json", {**asdict(result), "loss_curve": losses[::10]})
    return result


def config_fields(model_cfg: ModelConfig, d_vocab: int, seed: int) -> dict:
    """The HookedTransformerConfig fields that rebuild the (unprocessed) organism."""
    config = hooked_config(model_cfg, d_vocab, seed)
    keys = [
        "n_layers", "d_model", "d_head", "n_heads", "d_mlp", "n_ctx", "d_vocab", "act_fn",
        "normalization_type", "positional_embedding_type", "default_prepend_bos", "seed",
    ]  # fmt: skip
    fields = {key: getattr(config, key) for key in keys}
    fields["tokenizer_name"] = None
    return json.loads(json.dumps(fields))
