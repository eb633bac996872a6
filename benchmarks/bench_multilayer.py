"""Benchmark one shared model pass feeding k dictionaries against k separate passes.

The question: training k dictionaries (by default transcoders at layers 0..3 of the
organism) from ONE streamed pass, where the model runs once per batch and its activations feed
all k, against k separate runs that each pay their own model forward. Both sides use the real
code path of the dictionaries stage in stream mode, with the same number of training steps:

1. Model: the organism from `models/organism` (config.json + model.safetensors, processed as
   every stage processes it); when absent, a randomly initialised model of the organism
   profile's shape (conf/profile/organism.yaml). The printout says which.
2. Tokens: seeded random token contexts (BOS first) of the organism's harvest context size, in
   batches of `batch_contexts` contexts per model pass (timings do not depend on the text).
3. Shared: `train_dictionaries` on all k jobs, fed by `ShuffleBuffer(harvest_batches(model,
   contexts, every needed hook))`: one forward per batch of contexts, up to the last needed layer.
4. Separate: for each job alone, the same with only its own hooks (so the pass stops after its
   own layer, as a separate run would).
5. The same stream (harvest + shuffle buffer, no training) is also timed alone for each side, so
   the printout splits each time into model pass and dictionary training. Separate / shared
   can only approach k when the model pass dominates; with stop_at_layer, separate passes for
   layers 0..3 cost (1+2+3+4)/4 = 2.5 full passes, so even free training caps the ratio at 2.5
   for k = 4 at layers 0..3 (and at k when every job sits at the last layer, e.g. an L1 sweep:
   `--layers 3 3 3 3`).
6. Check: the shared and separate runs must train identical dictionaries (each dictionary's
   seed depends only on its own cell, and its rows are the same whatever else is harvested);
   the largest weight difference is printed (skipped when a layer repeats: that is one cell
   trained at several seeds in the shared pass).

Target printed beside the ratio (the lab's): separate / shared >= 0.8 x k. Nothing is asserted.
The two sides run `--repeats` rounds, alternating (shared, then the k separate runs); the best
round of each side is kept, the least disturbed one. Timings are meaningful on an otherwise idle
machine: every round reports the share of the CPU that other processes took meanwhile. Runs
unchanged on a GPU (`--device auto`, optionally `--autocast bfloat16`).

Run from the repository root: `python benchmarks/bench_multilayer.py` (about 1.5 minutes on two
cores); `--steps 2 --repeats 1 --buffer-tokens 2048 --batch-size 256` is a smoke run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # the trainer's progress bar would only add noise

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformer_lens import HookedTransformer, HookedTransformerConfig  # noqa: E402

from transcoder_lab.config import DictionaryTrainingConfig, load_profile  # noqa: E402
from transcoder_lab.dictionaries import DictionarySpec, load_dictionary  # noqa: E402
from transcoder_lab.dictionaries.activations import Batch, ShuffleBuffer, autocast_dtype, harvest_batches  # noqa: E402
from transcoder_lab.dictionaries.training import DictionaryJob, train_dictionaries  # noqa: E402
from transcoder_lab.sources.models import (  # noqa: E402
    MODEL_CONFIG,
    MODEL_WEIGHTS,
    build_processed_model,
    hooked_config,
    resolve_device,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def build_model(args: argparse.Namespace) -> tuple[HookedTransformer, str]:
    """The trained organism if its files exist, else a random model of its shape; and which."""
    model_dir = Path(args.model_dir)
    profile = load_profile("organism").profile
    device = resolve_device(args.device)
    if (model_dir / MODEL_CONFIG).exists() and (model_dir / MODEL_WEIGHTS).exists():
        fields = json.loads((model_dir / MODEL_CONFIG).read_text())
        config = HookedTransformerConfig(**fields, device=device)
        model = build_processed_model(config, load_file(model_dir / MODEL_WEIGHTS))
        return model, f"the trained organism from {model_dir}"
    assert profile.corpus is not None
    config = hooked_config(profile.model, d_vocab=profile.corpus.vocab_size, seed=args.seed, device=device)
    return build_processed_model(config), f"a RANDOM organism-shaped model ({model_dir} not found)"


def contexts(model: HookedTransformer, args: argparse.Namespace) -> Iterator[torch.Tensor]:
    """An endless, seeded stream of token-context batches (BOS first), the same on every call."""
    generator = torch.Generator().manual_seed(args.seed)
    bos = model.cfg.d_vocab - 1  # any fixed token: the random text only sets the shapes
    while True:
        tokens = torch.randint(
            0, model.cfg.d_vocab, (args.batch_contexts, args.context_size), generator=generator
        )
        tokens[:, 0] = bos
        yield tokens


def stream(model: HookedTransformer, args: argparse.Namespace, hooks: list[str]) -> Iterator[Batch]:
    """What the dictionaries stage feeds the trainer in stream mode: harvest, then shuffle."""
    buffer = ShuffleBuffer(args.buffer_tokens, args.batch_size, seed=args.seed)
    return buffer(harvest_batches(model, contexts(model, args), hooks, autocast_dtype(args.autocast)))


def job(layer: int, args: argparse.Namespace, d_model: int, out_dir: Path) -> DictionaryJob:
    spec = DictionarySpec(
        kind="transcoder", layer=layer, d_in=d_model, d_sae=args.d_sae, d_out=d_model, model_name="organism"
    )
    return DictionaryJob(spec, args.l1, out_dir)


@dataclass
class Timing:
    total: float  # harvesting + training, as a run does it
    stream: float  # harvesting + shuffle buffer alone, the same number of batches


def hooks_of(jobs: list[DictionaryJob]) -> list[str]:
    return sorted({hook for j in jobs for hook in (j.spec.hook_in, j.spec.hook_out)})


def time_run(
    model: HookedTransformer, jobs: list[DictionaryJob], args: argparse.Namespace, tmp: Path
) -> Timing:
    """One training run of `jobs` on one shared stream; and that stream alone, for the split."""
    hooks = hooks_of(jobs)
    cfg = DictionaryTrainingConfig(
        lr=args.lr,
        batch_size=args.batch_size,
        n_steps=args.steps,
        warmup_steps=min(50, args.steps),
        dead_window_steps=200,
        frequency_window_steps=min(200, args.steps),
        checkpoint_every=args.steps,
    )
    checkpoint_dir = Path(tempfile.mkdtemp(dir=tmp, prefix="checkpoint_"))
    start = time.perf_counter()
    train_dictionaries(jobs, lambda: stream(model, args, hooks), cfg, checkpoint_dir, device=args.device_name)
    total = time.perf_counter() - start
    start = time.perf_counter()
    batches = stream(model, args, hooks)
    for _ in range(args.steps):
        next(batches)
    return Timing(total, time.perf_counter() - start)


class OtherCpu:
    """The share of the machine's CPU that other processes used since construction (None off Linux):
    busy time of the whole machine (/proc/stat) minus this process's own CPU time, over the wall time."""

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        except (OSError, ValueError):
            return None
        busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), busy, usage.ru_utime + usage.ru_stime

    def share(self) -> float | None:
        end = self._read()
        if self.start is None or end is None:
            return None
        wall = end[0] - self.start[0]
        return max(0.0, (end[1] - self.start[1]) - (end[2] - self.start[2])) / (wall * (os.cpu_count() or 1))


def contention(share: float | None) -> str:
    if share is None:
        return "other CPU use n/a"
    return f"other processes {share:.0%} of the CPU" + (" (contended)" if share > 0.05 else "")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    organism = load_profile("organism").profile
    harvest, training = organism.dictionaries.harvest, organism.dictionaries.training
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--layers", type=int, nargs="+", default=[0, 1, 2, 3], help="one transcoder per entry"
    )
    parser.add_argument("--steps", type=int, default=100, help="training steps, the same on both sides")
    parser.add_argument(
        "--repeats", type=int, default=2, help="rounds of (shared, separate), alternating; best of each kept"
    )
    parser.add_argument(
        "--d-sae", type=int, default=organism.dictionaries.expansion_factor * organism.model.d_model
    )
    parser.add_argument("--batch-size", type=int, default=training.batch_size, help="rows per step")
    parser.add_argument("--lr", type=float, default=training.lr)
    parser.add_argument("--l1", type=float, default=1e-3)
    parser.add_argument("--context-size", type=int, default=harvest.context_size)
    parser.add_argument(
        "--batch-contexts", type=int, default=harvest.batch_contexts, help="contexts per pass"
    )
    parser.add_argument(
        "--buffer-tokens", type=int, default=harvest.buffer_tokens, help="shuffle buffer rows"
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--autocast", default=None, help="bfloat16 | float16: autocast of the model pass")
    parser.add_argument("--model-dir", default=str(REPO_ROOT / "models" / "organism"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.buffer_tokens < 2 * args.batch_size:
        parser.error("--buffer-tokens must hold at least two batches (--batch-size)")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device_name = resolve_device(args.device)
    model, which = build_model(args)
    if max(args.layers) >= model.cfg.n_layers:
        raise SystemExit(f"--layers: the model has layers 0..{model.cfg.n_layers - 1}")
    k = len(args.layers)
    print(
        f"model: {which}; device {args.device_name}, torch threads {torch.get_num_threads()}, "
        f"autocast {args.autocast or 'off'}\n"
        f"k = {k} transcoders at layers {args.layers}: d_in {model.cfg.d_model}, d_sae {args.d_sae}; "
        f"{args.steps} steps of {args.batch_size} rows; passes of {args.batch_contexts} x "
        f"{args.context_size} tokens; shuffle buffer {args.buffer_tokens:,} rows"
    )
    with tempfile.TemporaryDirectory(prefix="bench_multilayer_") as tmp_name:
        tmp = Path(tmp_name)
        shared_jobs = [
            job(layer, args, model.cfg.d_model, tmp / "shared" / str(i))
            for i, layer in enumerate(args.layers)
        ]
        separate_jobs = [
            job(layer, args, model.cfg.d_model, tmp / "separate" / str(i))
            for i, layer in enumerate(args.layers)
        ]
        warm = argparse.Namespace(**{**vars(args), "steps": 2})
        time_run(model, [job(args.layers[0], args, model.cfg.d_model, tmp / "warm")], warm, tmp)  # untimed
        shared_runs: list[Timing] = []
        separate_runs: list[Timing] = []
        for round_ in range(args.repeats):
            monitor = OtherCpu()
            shared_runs.append(time_run(model, shared_jobs, args, tmp))
            run = shared_runs[-1]
            print(
                f"[{round_ + 1}] one shared pass: {run.total:.2f} s ({run.stream:.2f} s of it harvesting + "
                f"buffer); {contention(monitor.share())}"
            )
            monitor = OtherCpu()
            parts = [time_run(model, [one], args, tmp) for one in separate_jobs]
            separate_runs.append(Timing(sum(t.total for t in parts), sum(t.stream for t in parts)))
            run = separate_runs[-1]
            each = ", ".join(
                f"L{j.spec.layer} {t.total:.2f}" for j, t in zip(separate_jobs, parts, strict=True)
            )
            print(
                f"[{round_ + 1}] k separate passes: {run.total:.2f} s ({each}; {run.stream:.2f} s harvesting "
                f"+ buffer); {contention(monitor.share())}"
            )
        # A repeated layer is one cell trained at several seeds in the shared pass (job_seeds), so
        # only distinct layers have a separate twin with the same seed.
        comparable = len(set(args.layers)) == k
        same = (
            max(
                (load_dictionary(a.out_dir).W_dec - load_dictionary(b.out_dir).W_dec).abs().max().item()
                for a, b in zip(shared_jobs, separate_jobs, strict=True)
            )
            if comparable
            else math.nan
        )
    shared = min(shared_runs, key=lambda t: t.total)  # the least disturbed round of each side
    separate = min(separate_runs, key=lambda t: t.total)
    ratio = separate.total / shared.total
    stream_bound = separate.stream / shared.stream  # the ratio if training cost nothing
    target = 0.8 * k
    print(
        f"\nbest of {args.repeats}: k separate passes {separate.total:.2f} s; "
        f"one shared pass {shared.total:.2f} s\n"
        f"separate / shared = {ratio:.2f} (the lab's target >= 0.8 x k = {target:.1f}: "
        f"{'met' if ratio >= target else 'NOT met'})\n"
        f"split: harvesting + buffer {shared.stream:.2f} s shared vs {separate.stream:.2f} s separate "
        f"({stream_bound:.2f}x: the ceiling of the ratio if training were free); dictionary training "
        f"{shared.total - shared.stream:.2f} s vs {separate.total - separate.stream:.2f} s (the same work).\n"
        f"model pass share of the shared run: {shared.stream / shared.total:.0%}. The ratio approaches k "
        f"only when the model pass dominates training the k dictionaries.\n"
        + (
            f"shared and separate dictionaries: largest |W_dec| difference {same:.2e} (0: identical)"
            if comparable
            else "identity check skipped: repeated layers train at different seeds in one pass"
        )
    )
    return {
        "k": k,
        "shared_s": shared.total,
        "separate_s": separate.total,
        "ratio": ratio,
        "stream_ratio": stream_bound,
        "max_weight_difference": same,
    }


if __name__ == "__main__":
    main(sys.argv[1:])
