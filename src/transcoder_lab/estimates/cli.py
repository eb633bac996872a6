"""The estimator's command line (benchmarks/estimate_paper_runs.py): compose the profile, estimate
every stage instance, measure this machine's rates, print the per-stage table (and, with
`--check`, real trainer steps against the FLOP estimate)."""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch

from transcoder_lab import estimates
from transcoder_lab.config import Config, compose, load_config
from transcoder_lab.estimates.estimator import Estimator, Settings, Stage, stage_instances
from transcoder_lab.estimates.formulas import GB
from transcoder_lab.estimates.measure import (
    OtherCpu,
    Rates,
    buffer_bandwidth,
    matmul_throughput,
    per_step_fit,
    run_check,
)

# -- output ---------------------------------------------------------------------------------------


def human_seconds(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"


def human_bytes(size: float) -> str:
    return "-" if size <= 0 else f"{size / GB:.2f}" if size < 10 * GB else f"{size / GB:.0f}"


def grouped(stages: list[Stage]) -> list[tuple[str, Stage]]:
    """Consecutive instances of one stage with identical estimates as one row, every instance named:
    (label, stage)."""

    def key(stage: Stage) -> tuple:
        return stage.name.split("@")[0], stage.flops, stage.device_bytes, stage.host_bytes, stage.dominant

    runs: list[list[Stage]] = []
    for stage in stages:
        if runs and "@" in stage.name and "@" in runs[-1][0].name and key(stage) == key(runs[-1][0]):
            runs[-1].append(stage)
        else:
            runs.append([stage])
    rows = []
    for run in runs:
        if len(run) == 1:
            rows.append((run[0].name, run[0]))
            continue
        items = ", ".join(stage.name.split("@", 1)[1] for stage in run)
        rows.append((f"{run[0].name.split('@')[0]}@{{{items}}} ({len(run)} instances, each)", run[0]))
    return rows


def print_report(
    label: str, cfg: Config, stages: list[Stage], estimator: Estimator, rates: Rates,
    args: argparse.Namespace, other_cpu: float | None,
) -> None:  # fmt: skip
    shape, grid = estimator.shape, cfg.profile.dictionaries
    d_sae = grid.expansion_factor * shape.d_model
    print(f"# Per-stage estimates: profile {label}")
    print(
        f"model: {cfg.profile.model.pretrained_name or cfg.profile.name}, {shape.n_layers} layers, "
        f"d_model {shape.d_model}, d_mlp {shape.d_mlp}, vocab {shape.vocab:,} ({shape.n_params / 1e6:.0f}M "
        f"parameters in TransformerLens, {estimator.model_bytes / GB:.2f} GB float32); dictionaries d_sae "
        f"{d_sae:,} x {len(grid.l1_coefficients)} L1 values per cell; {grid.training.n_steps:,} steps x "
        f"{grid.training.batch_size:,} tokens; device {cfg.profile.device}"
    )
    share = f"; other processes used {other_cpu:.0%} of the CPU meanwhile" if other_cpu is not None else ""
    print(
        f"this CPU, measured now: {rates.cpu / 1e9:.1f} GFLOP/s (float32 [{args.matmul_rows}, "
        f"{shape.d_model}] x [{shape.d_model}, {d_sae}], best of {args.repeats}, {torch.get_num_threads()} "
        f"threads); shuffle-buffer copies {rates.host_copy / 1e9:.2f} GB/s (the real ShuffleBuffer, "
        f"{args.buffer_rows:,} rows x 2 hooks x {shape.d_model}){share}"
    )
    autocast = grid.harvest.autocast_dtype
    line = (
        f"GPU (assumed): float32 {args.gpu_tflops:g} TFLOP/s x utilisation {args.utilisation:g} = "
        f"{rates.gpu_fp32 / 1e12:.1f} TFLOP/s (CUDA cores: PyTorch's default uses no TF32)"
    )
    if args.tf32_tflops:
        line += f"; column 'GPU tf32': {args.tf32_tflops:g} x {args.utilisation:g}, if TF32 were allowed"
    if autocast:
        line += f"; harvesting under {autocast} autocast at {args.bf16_tflops:g} x {args.utilisation:g}"
    print(line)
    header = ["stage", "FLOPs", "this CPU", "GPU fp32"]
    header += ["GPU tf32"] if args.tf32_tflops else []
    header += ["host copies", "GPU GB", "host GB", "what dominates"]
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    totals = {"cpu": 0.0, "fp32": 0.0, "tf32": 0.0, "copies": 0.0}
    for stage in stages:
        totals["cpu"] += rates.cpu_seconds(stage)
        totals["fp32"] += rates.gpu_seconds(stage, rates.gpu_fp32)
        totals["tf32"] += rates.gpu_seconds(stage, rates.gpu_tf32) if args.tf32_tflops else 0.0
        totals["copies"] += rates.copy_seconds(stage)
    for name, stage in grouped(stages):
        what = stage.dominant + (f"; {stage.io}" if stage.io else "")
        row = [name, f"{stage.flops:.2e}" if stage.flops else "-", human_seconds(rates.cpu_seconds(stage))]
        row.append(human_seconds(rates.gpu_seconds(stage, rates.gpu_fp32)))
        row += [human_seconds(rates.gpu_seconds(stage, rates.gpu_tf32))] if args.tf32_tflops else []
        copies = rates.copy_seconds(stage)
        copied = f"{human_seconds(copies)} ({stage.host_copy_bytes / 1e12:.1f} TB)" if copies else "-"
        row += [copied, human_bytes(stage.device_bytes)]
        row += [human_bytes(stage.host_bytes), what]
        print("| " + " | ".join(row) + " |")
    row = ["**every stage, one after another**", f"{sum(stage.flops for stage in stages):.2e}"]
    row += [human_seconds(totals["cpu"]), human_seconds(totals["fp32"])]
    row += [human_seconds(totals["tf32"])] if args.tf32_tflops else []
    row += [human_seconds(totals["copies"]), "", "", "peak memory: the largest stage's"]
    print("| " + " | ".join(row) + " |")
    print(
        "\nthis CPU: matmul FLOPs at the measured rate plus the host copies. GPU columns: matmul time "
        "only; the host copies (this CPU's rate; the GPU machine's host may be faster) add to them, as "
        "training synchronises every step. GPU GB: the device that runs the model and trains (on a CPU "
        "run it adds to host GB); GB = 1e9 bytes; PyTorch's caching allocator reserves somewhat more."
    )
    reach = estimator.text_reach()
    if reach is not None:
        print(
            f"\ntext: {reach['repo']}@{reach['revision']}, files '{reach['files_glob']}' in name order. "
            f"Training reads ~{reach['training_tokens']:,} tokens per cell, ~{reach['training_documents']:,} "
            f"documents at {args.tokens_per_document:g} tokens per document (an assumption); the held-out "
            f"set ({reach['heldout_tokens']:,} tokens at most) starts after "
            f"{reach['heldout_skip_documents']:,} documents, so the reader reaches document "
            f"~{reach['last_document']:,}: the first {reach['files']} file(s) at "
            f"{args.documents_per_file:,} documents per file (an assumption; the first file's row count "
            "gives the real one)."
        )
        if reach["training_reaches_heldout"]:
            print("WARNING: the training stream reaches the held-out documents (heldout_skip_documents).")


# -- the command line -----------------------------------------------------------------------------


def estimate_profile(
    name: str, overrides: list[str], settings: Settings
) -> tuple[Config, Estimator, list[Stage]]:
    """The composed config, its estimator and every dvc.yaml stage instance's estimate."""
    raw = compose([f"profile={name}", *overrides])
    cfg = load_config(raw)
    estimator = Estimator(cfg, settings)
    stages = [estimator.estimate(stage, instance) for stage, instance in stage_instances(raw)]
    return cfg, estimator, stages


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(estimates.__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("profile", help="a profile in conf/profile/ (gpt2_small, pythia_410m, pythia_1_4b, ...)")
    add("overrides", nargs="*", help="Hydra overrides, e.g. budget=smoke")
    add("--gpu-tflops", type=float, default=51.0, help="GPU float32 TFLOP/s, dense (H100 PCIe; SXM/H200: 67)")
    add("--tf32-tflops", type=float, default=378.0, help="GPU TF32 TFLOP/s, dense, 'if allowed' (0: omit)")
    add("--bf16-tflops", type=float, default=756.0, help="GPU bf16 TFLOP/s, dense, for an autocast harvest")
    add("--utilisation", type=float, default=0.5, help="the share of the GPU's peak reached")
    add("--matmul-rows", type=int, default=None, help="rows of the measured CPU matmul (default: auto)")
    add("--repeats", type=int, default=3, help="timed CPU matmuls (the best is kept)")
    add("--buffer-rows", type=int, default=32_768, help="capacity of the measured shuffle buffer")
    add("--vocab", type=int, default=None, help="the vocabulary, for a model not known here")
    add("--tokens-per-document", type=float, default=1100.0, help="text source (OpenWebText: ~1,000-1,100)")
    add("--documents-per-file", type=int, default=100_000, help="per parquet file (an assumption)")
    add("--check", action="store_true", help="also time real trainer steps on this CPU")
    add("--check-l1-values", type=int, default=2, help="dictionaries of the smoke cell timed together")
    add("--check-steps", type=int, default=2, help="timed steps (after one untimed warm-up step)")
    add("--check-batch", type=int, default=1024, help="batch of a second timing, one dictionary (0: skip)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    settings = Settings(args.vocab, args.tokens_per_document, args.documents_per_file)
    cfg, estimator, stages = estimate_profile(args.profile, args.overrides, settings)
    d, d_sae = (
        cfg.profile.model.d_model,
        cfg.profile.dictionaries.expansion_factor * cfg.profile.model.d_model,
    )
    other = OtherCpu()
    if args.matmul_rows is None:  # >= 5 GFLOP a product where the batch allows: small ones mislead
        batch = cfg.profile.dictionaries.training.batch_size
        args.matmul_rows = min(batch, max(256, math.ceil(5e9 / (2 * d * d_sae))))
    cpu = matmul_throughput(d, d_sae, args.matmul_rows, args.repeats)
    harvested = cfg.profile.dictionaries.harvest.batch_contexts * estimator.context
    copy = buffer_bandwidth(d, 2, max(args.buffer_rows, 2 * harvested), harvested)
    util = args.utilisation
    rates = Rates(cpu, copy, args.gpu_tflops * 1e12 * util, args.tf32_tflops * 1e12 * util,
                  args.bf16_tflops * 1e12 * util)  # fmt: skip
    label = " ".join([args.profile, *args.overrides])
    print_report(label, cfg, stages, estimator, rates, args, other.share())
    result: dict[str, Any] = {
        "profile": args.profile, "stages": stages, "rates": rates, "text": estimator.text_reach(),
    }  # fmt: skip
    if args.check:
        check = run_check(args.profile, args.overrides, cpu, args)
        print("\n## FLOP counts checked against the CPU smoke run (real DictionaryTrainer steps)")
        print(
            "| timing | dictionaries | batch | timed steps | matmul FLOPs | estimate at the measured rate "
            "| measured | measured / estimate | other CPU use |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for name, c in check.items():
            share = f"{c['other_cpu']:.0%}" if c["other_cpu"] is not None else "n/a"
            print(
                f"| {name} ({c['cell']}) | {c['dictionaries']} | {c['batch']:,} | {c['steps']} "
                f"| {c['flops']:.2e} | {c['estimated_s']:.2f} s | {c['measured_s']:.2f} s | {c['ratio']:.2f} "
                f"| {share} |"
            )
        print(
            "measured / estimate: how much longer real steps take than their matrix products at the measured "
            "rate (Adam, decoder renormalisation and gradient projection, L1, ReLU, firing counters). That "
            "work is per step or per batch element, so the ratio falls as the batch grows."
        )
        fit = per_step_fit(check, cpu, cfg)
        if fit is not None:
            print(
                f"fitted per dictionary and step, time = a + b x batch: a = {fit['a_s']:.2f} s (per-step "
                f"work), b = {fit['b_s'] * 1e3:.2f} ms per token ({fit['b_over_matmul']:.2f} x the matmul "
                f"estimate); at the profile's batch of {fit['batch']:,} the ratio would be "
                f"{fit['ratio_at_batch']:.2f}."
            )
            check["fit"] = fit
        result["check"] = check
    return result
