"""Benchmark the dictionary-training path on this machine's CPU: three measurements, each a ratio.

Every number is measured in the same run against a baseline measured in that run; there are no
stored timings and no asserts on speed (the targets are printed beside the ratios, nothing fails).

1. Training throughput: our SAE arm (kind "sae_mlp_out", architecture relu) trained through the
   real code path, `DictionaryTrainer.step` in a loop (what `train_dictionaries` runs per step,
   with the trainer's configured defaults: ghost grads, LR warm-up, firing counters), versus
   sae-lens's own trainer, `SAETrainer.fit()` with a `StandardTrainingSAE` (wandb off, no
   evaluator, no checkpoints). Both read the same pre-harvested activations (the MLP output of
   layer 2 of a random GPT-2-architecture model, harvested once into memory and cycled through
   in the same order on both sides), with the same d_in, d_sae, batch size, Adam settings and
   number of steps; a few warm-up steps on each side are run but not timed. Each side runs
   `--train-repeats` times, alternating, from fresh weights; the best tokens/s of each side is
   kept (the least disturbed run). Printed: tokens/s of each and ours / sae-lens (target >= 2x),
   and each side's fraction of the matmul roofline (`gemm_roofline`, measured in the same run).
2. Harvesting throughput: tokens/s of `harvest_batches` for the MLP input and output of layer 2
   of that model, versus a bare `model(tokens, stop_at_layer=3)` (no hooks) on the same context
   batches. Rounds alternate between the two; the median of each is reported, ratio harvest /
   bare (target >= 0.85).
3. Peak memory against the token budget: in a fresh subprocess per budget (so the peak resident
   set size is clean), harvest N tokens into safetensors shards (`write_shards`, fixed shard
   size) and train one dictionary over them (`train_dictionaries` fed by `shard_training_batches`
   with a fixed shuffle buffer), for N and 4N tokens (4x the steps). The child reports its peak
   RSS over that work (VmHWM, reset after imports and model set-up; see `peak_rss_mib` for why
   not ru_maxrss); the ratio peak(4N) / peak(N) should stay within 10% (<= 1.10), because
   memory is bounded by the shard, buffer and batch sizes, not by the budget.

Timings are only meaningful on an otherwise idle machine: each part also reports the share of
the CPU that other processes used while it ran, and flags the part when that exceeds 5%.

Run from the repository root: `python benchmarks/bench_training.py` (about 1-3 minutes on two
cores); `--quick` is a smoke run of a few seconds of work per part; see `--help` for larger sizes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from sae_lens import LoggingConfig, SAETrainer, StandardTrainingSAE, StandardTrainingSAEConfig
from sae_lens.config import SAETrainerConfig
from transformer_lens import HookedTransformer

from transcoder_lab.config import DictionaryTrainingConfig, HarvestConfig
from transcoder_lab.dictionaries import DictionarySpec
from transcoder_lab.dictionaries.activations import (
    context_batches,
    harvest_batches,
    needed_hooks,
    shard_training_batches,
    write_shards,
)
from transcoder_lab.dictionaries.training import DictionaryJob, DictionaryTrainer, train_dictionaries
from transcoder_lab.sources.hooks import mlp_out_hook
from transcoder_lab.sources.models import build_processed_model
from transcoder_lab.standins.gpt2 import gpt2_shaped_config

MEMORY_RESULT_TAG = "MEMORY_RESULT "  # the line a memory child prints its JSON result on
TRAINING_TARGET = 2.0  # the lab's bar for ours / sae-lens training throughput
CONTENDED_SHARE = 0.05  # other processes' share of the CPU above which a timing is flagged

# Defaults of a normal run, and of `--quick`; an explicit flag overrides either.
FULL_DEFAULTS: dict[str, int] = dict(
    steps=100,
    warmup=5,
    train_repeats=3,
    pool_batches=16,
    harvest_batches=16,
    harvest_rounds=3,
    memory_tokens=131_072,
    shard_tokens=32_768,
    buffer_tokens=HarvestConfig().buffer_tokens,
)
QUICK_DEFAULTS: dict[str, int] = dict(
    steps=10,
    warmup=2,
    train_repeats=1,
    pool_batches=4,
    harvest_batches=4,
    harvest_rounds=1,
    memory_tokens=32_768,
    shard_tokens=16_384,
    buffer_tokens=16_384,
)


# -- set-up shared by the three parts ----------------------------------------------------------


def build_model(args: argparse.Namespace) -> HookedTransformer:
    """A random GPT-2-architecture model under the project's default processing."""
    config = gpt2_shaped_config(
        seed=args.seed,
        n_layers=args.n_layers,
        d_model=args.d_model,
        d_head=32,
        n_heads=args.d_model // 32,
        d_mlp=4 * args.d_model,
        d_vocab=args.d_vocab,
    )
    return build_processed_model(config)


def random_contexts(n_contexts: int, args: argparse.Namespace, seed: int) -> Iterator[torch.Tensor]:
    """Batches of `batch_contexts` random token contexts, generated lazily (memory independent of n)."""
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, n_contexts, args.batch_contexts):
        n = min(args.batch_contexts, n_contexts - start)
        yield torch.randint(0, args.d_vocab, (n, args.context_size), generator=generator)


def sae_spec(args: argparse.Namespace) -> DictionarySpec:
    return DictionarySpec(
        kind="sae_mlp_out",
        layer=args.layer,
        d_in=args.d_model,
        d_sae=args.d_sae,
        d_out=args.d_model,
        architecture="relu",
        model_name="random-gpt2-shaped",
    )


def _status_mib(field: str) -> float | None:
    """A memory line of /proc/self/status (VmHWM, VmRSS) in MiB; None off Linux."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # reported in kB
    return None


def peak_rss_mib() -> float:
    """This process's peak resident set size so far.

    /proc/self/status VmHWM, not `ru_maxrss`: across fork + exec Linux carries the parent's peak
    into the child's ru_maxrss (a child started by a 1 GiB parent reports >= 1 GiB), which
    would hide the child's own peak. ru_maxrss (KiB on Linux) is only the fallback.
    """
    hwm = _status_mib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset the peak (VmHWM) to the current RSS (Linux >= 4.0); False where that is impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class OtherCpu:
    """CPU time that other processes spent while a part ran: timings are only fair on a quiet machine.

    Busy time of the whole machine (/proc/stat) minus this process's and its children's CPU time,
    as a share of the machine's capacity over the wall time. None where /proc/stat is missing.
    """

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        except (OSError, ValueError):
            return None
        machine_busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
        usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        own = sum(u.ru_utime + u.ru_stime for u in usage)
        return time.perf_counter(), machine_busy, own

    def share(self) -> float | None:
        end = self._read()
        if self.start is None or end is None:
            return None
        wall = end[0] - self.start[0]
        other = (end[1] - self.start[1]) - (end[2] - self.start[2])
        return max(0.0, other) / (wall * (os.cpu_count() or 1))


# -- 1. training throughput --------------------------------------------------------------------


def harvest_pool(model: HookedTransformer, args: argparse.Namespace) -> list[torch.Tensor]:
    """`pool_batches` training batches of the layer's MLP output, harvested once into memory."""
    pool_tokens = args.pool_batches * args.batch_size
    n_contexts = math.ceil(pool_tokens / args.context_size)
    hook = mlp_out_hook(args.layer)
    rows = torch.cat(
        [batch[hook] for batch in harvest_batches(model, random_contexts(n_contexts, args, seed=1), [hook])]
    )
    return list(rows[:pool_tokens].split(args.batch_size))


class TimedBatches:
    """An iterator over the pool, cycled for `total` batches, that notes when batch `mark` is taken.

    sae-lens's `fit()` runs its own loop, so the time its step `mark` starts is read from the
    moment it asks for that step's batch.
    """

    def __init__(self, pool: list[torch.Tensor], total: int, mark: int) -> None:
        self.pool, self.total, self.mark = pool, total, mark
        self.index = 0
        self.marked_at = math.nan

    def __iter__(self) -> TimedBatches:
        return self

    def __next__(self) -> torch.Tensor:
        if self.index >= self.total:
            raise StopIteration
        if self.index == self.mark:
            self.marked_at = time.perf_counter()
        batch = self.pool[self.index % len(self.pool)]
        self.index += 1
        return batch


@dataclass
class TrainingRun:
    tokens_per_s: float
    seconds: float
    note: str


def train_ours(pool: list[torch.Tensor], args: argparse.Namespace) -> TrainingRun:
    """Our trainer's step loop, exactly as `train_dictionaries` drives it, minus tqdm and checkpoints.

    Per step, beyond the shared forward / loss / backward / Adam step, ours does (and sae-lens
    does not): the ghost-grad term once features have been silent for `dead_window_steps` (the
    configured default `dead_features: ghost_grads`), the normalised MSE (divided by ||y||),
    removal of the decoder-parallel gradient component and decoder-row renormalisation after
    every step, an isfinite check and two `.item()` reads (mse, L0), and firing counts over the
    final `frequency_window_steps` steps.
    """
    cfg = DictionaryTrainingConfig(batch_size=args.batch_size, n_steps=args.warmup + args.steps)
    job = DictionaryJob(sae_spec(args), l1_coefficient=args.l1, out_dir=Path("unused"))
    trainer = DictionaryTrainer(job, cfg, seed=cfg.seed * 1000)  # train_dictionaries' seed for job 0
    hook = job.spec.hook_in
    ghost_steps = 0
    start = math.nan
    for step in range(cfg.n_steps):
        if step == args.warmup:
            start = time.perf_counter()
        batch = {hook: pool[step % len(pool)]}
        if step == 0:
            trainer.initialise_biases(batch)
        if step >= args.warmup and cfg.dead_features == "ghost_grads":
            # A 1-element read of a d_sae-sized comparison: the same test step() makes.
            ghost_steps += bool((trainer.steps_since_fired >= cfg.dead_window_steps).any())
        trainer.step(batch, step)
    seconds = time.perf_counter() - start
    dead = (trainer.steps_since_fired >= cfg.dead_window_steps).float().mean().item()
    note = (
        f"ghost grads active on {ghost_steps}/{args.steps} timed steps; final dead fraction {dead:.2f}, "
        f"L0 {trainer.last['l0']:.1f}"
    )
    return TrainingRun(args.steps * args.batch_size / seconds, seconds, note)


def train_sae_lens(pool: list[torch.Tensor], args: argparse.Namespace) -> TrainingRun:
    """sae-lens's `SAETrainer.fit()` on a `StandardTrainingSAE`, fed from the same pool.

    Per step, beyond the shared work, sae-lens does (and ours does not): an L1 term weighted by
    the decoder row norms (a W_dec norm inside the graph), gradient-norm clipping over all
    parameters, LR- and coefficient-scheduler steps, and firing-frequency accumulation over a
    dense [batch, d_sae] float copy of the activations on every step; its forward also passes
    through HookPoint modules (no hooks attached). It has no ghost grads (sae-lens 6 dropped
    them) and no per-step decoder renormalisation or gradient projection.
    """
    cfg = DictionaryTrainingConfig(batch_size=args.batch_size)  # our lr, warm-up and dead window
    total = args.warmup + args.steps
    torch.manual_seed(args.seed)
    sae = StandardTrainingSAE(
        StandardTrainingSAEConfig(
            d_in=args.d_model, d_sae=args.d_sae, l1_coefficient=args.l1, dtype="float32", device="cpu"
        )
    )
    trainer_cfg = SAETrainerConfig(
        total_training_samples=total * args.batch_size,
        train_batch_size_samples=args.batch_size,
        lr=cfg.lr,
        lr_end=cfg.lr / 10,  # sae-lens's runner default; unused by the constant schedule
        lr_warm_up_steps=cfg.warmup_steps,
        adam_beta1=0.9,
        adam_beta2=0.999,
        device="cpu",
        dead_feature_window=cfg.dead_window_steps,
        n_checkpoints=0,
        save_final_checkpoint=False,
        logger=LoggingConfig(log_to_wandb=False),
    )
    batches = TimedBatches(pool, total, mark=args.warmup)
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=batches)
    trainer.fit()
    seconds = time.perf_counter() - batches.marked_at
    note = (
        f"final dead features {int(trainer.dead_neurons.sum())}/{args.d_sae} (window {cfg.dead_window_steps})"
    )
    return TrainingRun(args.steps * args.batch_size / seconds, seconds, note)


def gemm_roofline(args: argparse.Namespace, rounds: int = 10) -> tuple[float, float]:
    """(seconds, GFLOP/s): this machine's time for the five matrix products one training step
    cannot avoid, at the benchmark's sizes and threads, measured now (median of `rounds`).

    With x [b, d_in], W_enc [d_in, d_sae], W_dec [d_sae, d_out]: the encoder x W_enc and the
    decoder z W_dec forward; backward dL/dz = g W_dec^T, dL/dW_dec = z^T g, dL/dW_enc = x^T dL/dpre.
    Each is 2 b d d_sae FLOPs. A step at this time would be at the matmul roofline; everything
    else a step does (elementwise work, Adam, bookkeeping) is the gap to it."""
    b, d, f = args.batch_size, args.d_model, args.d_sae
    generator = torch.Generator().manual_seed(4)
    x, g = torch.randn(b, d, generator=generator), torch.randn(b, d, generator=generator)
    z, dz = torch.randn(b, f, generator=generator), torch.randn(b, f, generator=generator)
    W_enc, W_dec = torch.randn(d, f, generator=generator), torch.randn(f, d, generator=generator)

    def products() -> None:
        x @ W_enc, z @ W_dec, g @ W_dec.T, z.T @ g, x.T @ dz

    products()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        products()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return seconds, 5 * 2 * b * d * f / seconds / 1e9


# -- 2. harvesting throughput ------------------------------------------------------------------


def harvest_tokens_per_s(model: HookedTransformer, contexts: list[torch.Tensor], hooks: list[str]) -> float:
    start = time.perf_counter()
    n_tokens = sum(len(batch[hooks[0]]) for batch in harvest_batches(model, contexts, hooks))
    return n_tokens / (time.perf_counter() - start)


@torch.no_grad()
def bare_tokens_per_s(model: HookedTransformer, contexts: list[torch.Tensor], stop_at_layer: int) -> float:
    start = time.perf_counter()
    for tokens in contexts:
        model(tokens.to(model.cfg.device), stop_at_layer=stop_at_layer)
    return sum(t.numel() for t in contexts) / (time.perf_counter() - start)


def bench_harvest(model: HookedTransformer, args: argparse.Namespace) -> tuple[float, float]:
    """Median tokens/s of harvesting and of the bare forward pass, over alternating rounds."""
    generator = torch.Generator().manual_seed(2)
    tokens = torch.randint(
        0, args.d_vocab, (args.harvest_batches * args.batch_contexts, args.context_size), generator=generator
    )
    contexts = list(context_batches(tokens, args.batch_contexts))
    hooks = needed_hooks([args.layer])
    harvest_tokens_per_s(model, contexts[:2], hooks)  # warm-up, not timed
    bare_tokens_per_s(model, contexts[:2], args.layer + 1)
    harvest, bare = [], []
    for _ in range(args.harvest_rounds):
        bare.append(bare_tokens_per_s(model, contexts, args.layer + 1))
        harvest.append(harvest_tokens_per_s(model, contexts, hooks))
    return statistics.median(harvest), statistics.median(bare)


# -- 3. peak memory against the token budget ----------------------------------------------------


def memory_child(args: argparse.Namespace) -> None:
    """(In a fresh process.) Harvest `memory_child` tokens to shards, train on them, print the peaks.

    The peak is reset after the imports and the model are built (their transient peak, the same
    at every budget, would otherwise hide the work's), so `peak_mib` is the highest RSS reached
    while harvesting, writing shards and training: libraries and model included, import
    transients not.
    """
    n_tokens = args.memory_child
    model = build_model(args)
    spec = sae_spec(args)
    setup_peak = peak_rss_mib()
    was_reset = reset_peak_rss()
    setup_rss = _status_mib("VmRSS") or setup_peak
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        shard_dir = Path(tmp) / "shards"
        contexts = random_contexts(n_tokens // args.context_size, args, seed=3)
        manifest = write_shards(
            harvest_batches(model, contexts, needed_hooks([args.layer])),
            shard_dir,
            args.shard_tokens,
            dtype=getattr(torch, HarvestConfig().dtype),
        )
        harvest_peak = peak_rss_mib()
        cfg = DictionaryTrainingConfig(batch_size=args.batch_size, n_steps=n_tokens // args.batch_size)
        hooks = sorted({spec.hook_in, spec.hook_out})

        def batches() -> Iterator[dict[str, torch.Tensor]]:
            return shard_training_batches(shard_dir, hooks, cfg.batch_size, args.buffer_tokens, cfg.seed)

        job = DictionaryJob(spec, l1_coefficient=args.l1, out_dir=Path(tmp) / "dictionary")
        start = time.perf_counter()
        train_dictionaries([job], batches, cfg, checkpoint_dir=Path(tmp), data_id=f"bench:{n_tokens}")
        seconds = time.perf_counter() - start
    result = {
        "tokens": n_tokens,
        "steps": cfg.n_steps,
        "shards": manifest["n_shards"],
        "setup_peak_mib": setup_peak,
        "setup_rss_mib": setup_rss,
        "peak_reset": was_reset,
        "harvest_peak_mib": harvest_peak,
        "peak_mib": peak_rss_mib(),
        "train_seconds": seconds,
    }
    print(MEMORY_RESULT_TAG + json.dumps(result), flush=True)


def run_memory_child(n_tokens: int) -> dict:
    """Run this script again as a memory child for `n_tokens`, with the same flags."""
    command = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:], "--memory-child", str(n_tokens)]
    env = {**os.environ, "TQDM_DISABLE": "1"}  # its progress bars would only be discarded
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"memory child for {n_tokens} tokens failed:\n{done.stderr[-4000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith(MEMORY_RESULT_TAG)]
    if not lines:
        raise RuntimeError(f"memory child for {n_tokens} tokens printed no result:\n{done.stdout[-4000:]}")
    return json.loads(lines[-1].removeprefix(MEMORY_RESULT_TAG))


# -- command line and summary ------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a very short smoke run")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, the same for every side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--d-model", type=int, default=128, help="model width = the SAE's d_in")
    parser.add_argument("--d-sae", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=4096, help="activation rows per training step")
    parser.add_argument("--l1", type=float, default=1e-3, help="L1 coefficient (both sides)")
    parser.add_argument("--n-layers", type=int, default=4)
    parser.add_argument("--d-vocab", type=int, default=2048)
    parser.add_argument("--layer", type=int, default=2, help="the hooked layer")
    parser.add_argument("--context-size", type=int, default=128)
    parser.add_argument("--batch-contexts", type=int, default=32, help="contexts per model pass")
    defaults = FULL_DEFAULTS
    parser.add_argument("--steps", type=int, help=f"timed training steps ({defaults['steps']})")
    parser.add_argument("--warmup", type=int, help=f"untimed training steps first ({defaults['warmup']})")
    parser.add_argument(
        "--train-repeats", type=int, help=f"training runs per side, alternating ({defaults['train_repeats']})"
    )
    parser.add_argument(
        "--pool-batches",
        type=int,
        help=f"distinct pre-harvested training batches ({defaults['pool_batches']})",
    )
    parser.add_argument(
        "--harvest-batches", type=int, help=f"model passes per harvest round ({defaults['harvest_batches']})"
    )
    parser.add_argument(
        "--harvest-rounds", type=int, help=f"timed harvest rounds ({defaults['harvest_rounds']})"
    )
    parser.add_argument(
        "--memory-tokens", type=int, help=f"token budget N of the memory part ({defaults['memory_tokens']})"
    )
    parser.add_argument("--shard-tokens", type=int, help=f"rows per shard ({defaults['shard_tokens']})")
    parser.add_argument(
        "--buffer-tokens", type=int, help=f"shuffle-buffer capacity ({defaults['buffer_tokens']})"
    )
    parser.add_argument(
        "--parts", default="train,harvest,memory", help="comma-separated subset of train,harvest,memory"
    )
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)  # internal: one memory run
    args = parser.parse_args(argv)
    for name, value in (QUICK_DEFAULTS if args.quick else FULL_DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.d_model % 32:
        parser.error("--d-model must be a multiple of 32 (heads of width 32)")
    if args.buffer_tokens < 2 * args.batch_size:
        parser.error("--buffer-tokens must hold at least two batches")
    if args.memory_tokens < args.batch_size:
        parser.error("--memory-tokens must hold at least one batch")
    return args


def verdict(ratio: float, target: float, at_least: bool) -> str:
    return "yes" if (ratio >= target if at_least else ratio <= target) else "NO"


def contention(share: float | None) -> str:
    """How much of the machine other processes used during a part, for the summary."""
    if share is None:
        return "n/a"
    return f"{100 * share:.0f}%" + (" (contended)" if share > CONTENDED_SHARE else "")


def bench_training(model: HookedTransformer, args: argparse.Namespace) -> tuple[str, ...]:
    pool = harvest_pool(model, args)
    print(
        f"\n[1] training: {len(pool)} pre-harvested batches of {mlp_out_hook(args.layer)}, cycled; "
        f"{args.train_repeats} alternating repeats per side, best of each reported"
    )
    monitor = OtherCpu()
    ours_runs: list[TrainingRun] = []
    theirs_runs: list[TrainingRun] = []
    for _ in range(args.train_repeats):
        theirs_runs.append(train_sae_lens(pool, args))
        run = theirs_runs[-1]
        print(f"  sae-lens: {run.tokens_per_s:>9,.0f} tokens/s ({run.seconds:.2f} s); {run.note}")
        ours_runs.append(train_ours(pool, args))
        run = ours_runs[-1]
        print(f"  ours:     {run.tokens_per_s:>9,.0f} tokens/s ({run.seconds:.2f} s); {run.note}")
    ours = max(run.tokens_per_s for run in ours_runs)
    theirs = max(run.tokens_per_s for run in theirs_runs)
    ratio = ours / theirs
    print(
        f"  best: ours {ours:,.0f}, sae-lens {theirs:,.0f} tokens/s; "
        f"ours / sae-lens = {ratio:.2f}x (target >= {TRAINING_TARGET}x)"
    )
    roofline_s, gflops = gemm_roofline(args)
    step_ours, step_theirs = args.batch_size / ours, args.batch_size / theirs
    print(
        f"  matmul roofline: the step's five products take {1e3 * roofline_s:.1f} ms here "
        f"({gflops:.0f} GFLOP/s); a step takes {1e3 * step_ours:.1f} ms ours, {1e3 * step_theirs:.1f} ms "
        f"sae-lens's: roofline fraction {roofline_s / step_ours:.2f} ours, "
        f"{roofline_s / step_theirs:.2f} sae-lens's"
    )
    return (
        "training tokens/s",
        f"{ours:,.0f}",
        f"{theirs:,.0f} (sae-lens)",
        f"{ratio:.2f}x",
        f">= {TRAINING_TARGET}x",
        verdict(ratio, TRAINING_TARGET, at_least=True),
        contention(monitor.share()),
    )


def bench_harvesting(model: HookedTransformer, args: argparse.Namespace) -> tuple[str, ...]:
    n = args.harvest_batches * args.batch_contexts * args.context_size
    print(
        f"\n[2] harvesting layer {args.layer} MLP in/out vs a bare forward pass, {n:,} tokens per round, "
        f"{args.harvest_rounds} alternating rounds, median of each"
    )
    monitor = OtherCpu()
    harvest, bare = bench_harvest(model, args)
    ratio = harvest / bare
    print(f"  harvest_batches: {harvest:,.0f} tokens/s; bare forward: {bare:,.0f} tokens/s")
    print(f"  harvest / bare = {ratio:.2f} (target >= 0.85)")
    return (
        "harvest tokens/s",
        f"{harvest:,.0f}",
        f"{bare:,.0f} (bare fwd)",
        f"{ratio:.2f}",
        ">= 0.85",
        verdict(ratio, 0.85, at_least=True),
        contention(monitor.share()),
    )


def bench_memory(args: argparse.Namespace) -> tuple[str, ...]:
    print(
        f"\n[3] peak RSS while harvesting to shards of {args.shard_tokens:,} rows and training with a "
        f"buffer of {args.buffer_tokens:,} rows, each budget in a fresh process"
    )
    monitor = OtherCpu()
    results = [run_memory_child(factor * args.memory_tokens) for factor in (1, 4)]
    for r in results:
        print(
            f"  {r['tokens']:>9,} tokens ({r['steps']} steps, {r['shards']} shards): "
            f"peak {r['peak_mib']:.0f} MiB (harvesting {r['harvest_peak_mib']:.0f}; "
            f"RSS after imports + model {r['setup_rss_mib']:.0f}, their peak {r['setup_peak_mib']:.0f}); "
            f"training {r['train_seconds']:.1f} s"
        )
    small, large = results
    if not (small["peak_reset"] and large["peak_reset"]):
        print("  (the peak could not be reset after the imports: it includes their transient peak)")
    ratio = large["peak_mib"] / small["peak_mib"]
    above = [r["peak_mib"] - r["setup_rss_mib"] for r in (small, large)]
    print(
        f"  peak(4N) / peak(N) = {ratio:.3f} (target <= 1.10); growth above the post-setup RSS: "
        f"{above[1]:.0f} MiB at 4N vs {above[0]:.0f} MiB at N"
    )
    return (
        "peak RSS MiB (4N vs N)",
        f"{large['peak_mib']:.0f}",
        f"{small['peak_mib']:.0f} (N={args.memory_tokens:,})",
        f"{ratio:.3f}",
        "<= 1.10",
        verdict(ratio, 1.10, at_least=False),
        contention(monitor.share()),  # memory does not depend on it; reported for completeness
    )


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        memory_child(args)
        return
    parts = set(args.parts.split(","))
    print(
        f"torch {torch.__version__}, {args.threads} threads (os.cpu_count() = {os.cpu_count()}); "
        f"d_in {args.d_model}, d_sae {args.d_sae}, batch {args.batch_size}, "
        f"{args.steps} timed steps after {args.warmup} warm-up steps"
    )
    rows: list[tuple[str, ...]] = []
    model = build_model(args) if parts & {"train", "harvest"} else None
    if "train" in parts:
        assert model is not None
        rows.append(bench_training(model, args))
    if "harvest" in parts:
        assert model is not None
        rows.append(bench_harvesting(model, args))
    if "memory" in parts:
        rows.append(bench_memory(args))

    header = ("measure", "ours / measured", "baseline", "ratio", "target", "met", "other CPU use")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print("\nSummary (this machine, this run)")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    if any("contended" in row[-1] for row in rows):
        print(
            "WARNING: other processes used the CPU during a timed part ('other CPU use', share of all "
            "cores); with torch on every core its threads then wait on each other: rerun on a quiet machine."
        )


if __name__ == "__main__":
    main()
