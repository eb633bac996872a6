"""What the estimates measure on this machine in the run, and seconds from rates: the CPU's float32
matmul throughput, the rate at which the real ShuffleBuffer copies on the host, the share of the CPU
other processes used meanwhile, `Rates` (FLOPs and copied bytes to seconds, on this CPU and an
assumed GPU), and `--check`: real DictionaryTrainer steps timed against the FLOP estimate, with a
per-step fit (the package docstring)."""

from __future__ import annotations

import argparse
import math
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from transcoder_lab.config import ARMS, Architecture, Config, compose, load_config, parse_cell
from transcoder_lab.dictionaries import DictionarySpec
from transcoder_lab.dictionaries.activations import ShuffleBuffer
from transcoder_lab.dictionaries.training import DictionaryJob, DictionaryTrainer, job_seeds
from transcoder_lab.estimates.estimator import Stage
from transcoder_lab.estimates.formulas import FLOAT32, buffer_copy_bytes, grid_dictionary

# -- throughput and timing ------------------------------------------------------------------------


def matmul_throughput(d_in: int, d_sae: int, rows: int, repeats: int) -> float:
    """FLOP/s of this CPU on a float32 [rows, d_in] @ [d_in, d_sae] product: best of `repeats`
    timed products after one untimed one (torch's default threads)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(rows, d_in, generator=generator)
    b = torch.randn(d_in, d_sae, generator=generator)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * rows * d_in * d_sae / best


def buffer_bandwidth(d: int, hooks: int, capacity: int, incoming_rows: int) -> float:
    """Bytes/s at which the real ShuffleBuffer copies on this machine: it is fed 3 x its capacity of
    random rows (`hooks` hooks of width d) in batches of `incoming_rows`, and its modelled copies
    (`buffer_copy_bytes`) are divided by the time it took."""
    generator = torch.Generator().manual_seed(0)
    pool = [
        {f"h{i}": torch.randn(incoming_rows, d, generator=generator) for i in range(hooks)} for _ in range(4)
    ]
    n_incoming = max(4, 3 * capacity // incoming_rows)
    buffer = ShuffleBuffer(capacity, incoming_rows, seed=0)
    start = time.perf_counter()
    for _ in buffer(pool[i % len(pool)] for i in range(n_incoming)):
        pass
    seconds = time.perf_counter() - start
    modelled = buffer_copy_bytes(
        capacity, incoming_rows, n_incoming, hooks * d * FLOAT32, incoming_rows, True
    )
    return modelled / seconds


class OtherCpu:
    """The share of the machine's CPU that other processes used while a part ran (/proc/stat busy
    time minus this process's own), so a timing taken beside other jobs says so; None without
    /proc/stat."""

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        except (OSError, ValueError):
            return None
        busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), busy, usage.ru_utime + usage.ru_stime

    def share(self) -> float | None:
        end = self._read()
        if self.start is None or end is None or end[0] <= self.start[0]:
            return None
        other = (end[1] - self.start[1]) - (end[2] - self.start[2])
        return max(0.0, other) / ((end[0] - self.start[0]) * (os.cpu_count() or 1))


@dataclass
class Rates:
    cpu: float  # measured float32 matmul FLOP/s of this CPU
    host_copy: float  # measured bytes/s of the shuffle buffer's copies on this CPU
    gpu_fp32: float  # assumed FLOP/s (datasheet x utilisation)
    gpu_tf32: float
    gpu_bf16: float

    def cpu_seconds(self, stage: Stage) -> float:
        return stage.flops / self.cpu + stage.host_copy_bytes / self.host_copy

    def gpu_seconds(self, stage: Stage, fp32: float) -> float:
        """GPU matmul time; the host's buffer copies are printed apart (they add to it: training
        synchronises every step, so the host's work does not overlap the GPU's)."""
        model_rate = self.gpu_bf16 if stage.autocast else fp32
        return stage.model_flops / model_rate + stage.dictionary_flops / fp32

    def copy_seconds(self, stage: Stage) -> float:
        return stage.host_copy_bytes / self.host_copy


# -- the check ------------------------------------------------------------------------------------


def _timed_steps(trainers: list, batches: list[dict[str, torch.Tensor]]) -> float:
    """One untimed warm-up step (bias initialisation included), then the rest timed."""
    for trainer in trainers:
        trainer.initialise_biases(batches[0])
        trainer.step(batches[0], 0)
    start = time.perf_counter()
    for step, batch in enumerate(batches[1:], start=1):
        for trainer in trainers:
            trainer.step(batch, step)
    return time.perf_counter() - start


def run_check(name: str, overrides: list[str], rate: float, args: argparse.Namespace) -> dict[str, Any]:
    """Real DictionaryTrainer steps of the smoke budget's first cell on random activations of the
    profile's shapes, timed against the FLOP estimate at the measured throughput."""
    import tempfile

    cfg = load_config(compose([f"profile={name}", "budget=smoke", *overrides]))
    grid = cfg.profile.dictionaries
    layer, arm = parse_cell(grid.cells[0])
    shape = grid_dictionary(cfg, arm)
    k = grid.topk_k[0] if ARMS[arm].architecture == Architecture.topk else None
    spec = DictionarySpec(
        ARMS[arm].kind, layer, shape.d_in, shape.d_sae, shape.d_out, ARMS[arm].architecture, k, shape.skip
    )
    generator = torch.Generator().manual_seed(1)
    hooks = sorted({spec.hook_in, spec.hook_out})

    def random_batches(rows: int, n: int) -> list[dict[str, torch.Tensor]]:
        return [
            {hook: torch.randn(rows, shape.d_in, generator=generator) for hook in hooks} for _ in range(n)
        ]

    l1_values = grid.l1_coefficients[: max(1, args.check_l1_values)]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [DictionaryJob(spec, l1, Path(tmp) / f"l1_{l1:g}") for l1 in l1_values]
        seeds = job_seeds(jobs, grid.training.seed)
        points = [("smoke batch", grid.training.batch_size, jobs, seeds)]
        if args.check_batch:
            points.append(("larger batch", args.check_batch, jobs[:1], seeds[:1]))
        for label, rows, point_jobs, point_seeds in points:
            trainers = [
                DictionaryTrainer(job, grid.training, seed, "cpu")
                for job, seed in zip(point_jobs, point_seeds, strict=True)
            ]
            batches = random_batches(rows, args.check_steps + 1)
            other = OtherCpu()
            measured = _timed_steps(trainers, batches)
            flops = args.check_steps * rows * len(trainers) * shape.train_flops_per_token
            results[label] = {
                "cell": grid.cells[0], "dictionaries": len(trainers), "batch": rows,
                "steps": args.check_steps, "flops": flops, "estimated_s": flops / rate,
                "measured_s": measured, "ratio": measured / (flops / rate), "other_cpu": other.share(),
            }  # fmt: skip
            del trainers
    return results


def per_step_fit(check: dict[str, Any], rate: float, cfg: Config) -> dict[str, float] | None:
    """The two timings as time per dictionary and step = a + b x batch, and the ratio that gives at
    the profile's own batch size; None without two batch sizes."""
    points = [c for c in check.values() if isinstance(c, dict) and "batch" in c]
    if len(points) < 2 or points[0]["batch"] == points[1]["batch"]:
        return None
    (b1, t1), (b2, t2) = (
        (c["batch"], c["measured_s"] / (c["steps"] * c["dictionaries"])) for c in points[:2]
    )
    b = (t2 - t1) / (b2 - b1)
    a = max(0.0, t1 - b * b1)
    per_token = points[0]["flops"] / (points[0]["steps"] * points[0]["dictionaries"] * b1) / rate
    batch = cfg.profile.dictionaries.training.batch_size
    return {
        "a_s": a, "b_s": b, "b_over_matmul": b / per_token, "batch": batch,
        "ratio_at_batch": (a + b * batch) / (per_token * batch),
    }  # fmt: skip
