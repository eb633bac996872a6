"""Benchmark the gpt2_small case studies on a random model of GPT-2 small's shape.

Setting (built the same way in every process, from fixed seeds): a random GPT-2-shaped processed
model (12 layers, d_model 768, d_mlp 3072, vocab 50,257), 12 random ReLU transcoders of 24,576
features (unit-norm encoder columns and an effective encoder bias around -2, so a few percent of
features fire on a token, as in bench_attribution.py), and a byte-level BPE tokenizer trained on
the case studies' prompts and padded with added tokens to GPT-2's 50,257 entries (so the blind
token probes scan a vocabulary of GPT-2's size). GPT-2's own tokenizer is not on this machine.

Two measurements, each printed against a baseline measured in the same run (no stored numbers):

- `memory`: each gpt2_small case study runs in its own fresh process (this script re-invoked with
  `--worker <name>`); its peak resident set size comes from `os.wait4` (the child's own
  `ru_maxrss`). Baseline: a process that only builds the model and the transcoders. Printed: each
  study's peak, its excess over the baseline, and the target (every blind study under 4 GB).
- `greater-than`: the features-vs-neurons curves (step 5 of `case_studies.greater_than`, computed in
  `case_studies.greater_than_ablations`), per protocol and per component n, timed for the fast path
  (`fast_curves`: cached activations, only the blocks after the studied MLP, last-token restricted
  logits, several n per forward) and for the straightforward one (`reference_curve`: the whole model
  with hooks, once per n) on a small n in the same process; the two must agree. Then one whole
  `run_greater_than` at `--n-components` gives the fixed cost (everything but the curves); printed:
  time per component, the estimate for 100 components (fixed + 101 points x 2 protocols x per-point
  time) for both paths, and the ratio. Step 2 (every MLP ablated: `mlp_ablations` vs
  `reference_mlp_ablations`) is timed the same way, and its reference time replaces the fast one in
  the old implementation's fixed part.

Run from the repository root (CPU, torch's default thread count; timings need an otherwise idle
machine, the printout reports the load average before and after):

    .venv/bin/python benchmarks/bench_case_studies.py memory
    .venv/bin/python benchmarks/bench_case_studies.py greater-than
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

GPT2_VOCAB = 50257
BLIND = ("citation", "local_context")
STUDIES = ("citation", "caught", "walkthrough", "local_context", "greater_than")
GB = 1024**3


def build_tokenizer(cfg) -> Any:
    """A trained byte-level BPE covering the configs' prompts, padded to GPT-2's vocabulary size."""
    from transcoder_lab.organism.tokenizer import train_tokenizer

    texts = [f"The war lasted from 17{yy:02d} to 17{(yy + 7) % 100:02d}." for yy in range(100)]
    for study in cfg.case_study.values():
        settings = study.profiles.get("gpt2_small")
        if settings is not None:
            texts += list(settings.prompts) + list(settings.contrast_prompts)
    tokenizer = train_tokenizer(texts * 4, vocab_size=2000)
    # added tokens that never occur in the prompts: they only widen the vocabulary the probes scan
    tokenizer.add_tokens([f"<|filler{i}|>" for i in range(GPT2_VOCAB - len(tokenizer))])
    assert len(tokenizer) == GPT2_VOCAB
    return tokenizer


def build_transcoders(d_model: int, d_sae: int, n_layers: int, seed: int = 1) -> dict:
    from transcoder_lab.dictionaries import Dictionary, DictionarySpec

    generator = torch.Generator().manual_seed(seed)
    transcoders = {}
    for layer in range(n_layers):
        spec = DictionarySpec(
            kind="transcoder", layer=layer, d_in=d_model, d_sae=d_sae, d_out=d_model, model_name="gpt2"
        )
        transcoder = Dictionary.initialise(spec, generator)
        with torch.no_grad():
            # LN2(x) has norm ~sqrt(d_model) and the encoder unit columns, so pre-activations are
            # ~N(0, 1) before the bias: b_enc ~ -2 leaves a few percent of features active
            transcoder.b_enc.copy_(-2.0 + 0.3 * torch.randn(d_sae, generator=generator))
            transcoder.b_dec_out.copy_(0.1 * torch.randn(d_model, generator=generator))
        transcoders[layer] = transcoder.eval()
    return transcoders


def build(root: Path, n_components: int, d_sae: int = 24576):
    """(cfg, model, transcoders) of the gpt2_small profile rooted at `root`."""
    from transcoder_lab.config import load_profile
    from transcoder_lab.sources.models import build_processed_model
    from transcoder_lab.standins.gpt2 import gpt2_shaped_config

    cfg = load_profile(
        "gpt2_small", root, [f"case_study.greater_than.profiles.gpt2_small.n_components={n_components}"]
    )
    torch.manual_seed(0)
    model = build_processed_model(gpt2_shaped_config(seed=0))
    model.set_tokenizer(build_tokenizer(cfg))
    transcoders = build_transcoders(model.cfg.d_model, d_sae, model.cfg.n_layers)
    return cfg, model, transcoders


def run_study(cfg, model, transcoders, name: str) -> dict[str, Any]:
    """`run_case_study` with the random model and transcoders in place of the hub's."""
    import transcoder_lab.case_studies as case_studies

    case_studies.load_model = lambda profile, models_dir: model
    case_studies.circuit_transcoders = lambda cfg, device="cpu": transcoders
    return case_studies.run_case_study(cfg, name)


def worker(name: str, root: Path, n_components: int) -> None:
    """One process: build; then run study `name` (or nothing, for the baseline)."""
    cfg, model, transcoders = build(root, n_components)
    start = time.perf_counter()
    if name != "baseline":
        run_study(cfg, model, transcoders, name)
    print(json.dumps({"name": name, "seconds": time.perf_counter() - start}))


def peak_rss(name: str, root: Path, n_components: int) -> tuple[float, float]:
    """(peak RSS in bytes, study seconds) of a fresh process running `worker(name)`."""
    command = [sys.executable, __file__, "--worker", name, "--root", str(root)]
    command += ["--n-components", str(n_components)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"worker {name} failed ({process.returncode}): {output[-2000:]}")
    seconds = json.loads(output.strip().splitlines()[-1])["seconds"]
    return usage.ru_maxrss * 1024, seconds  # ru_maxrss is in KiB on Linux


def memory(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    studies = [name for name in STUDIES if name in args.studies]
    print(f"load average before: {os.getloadavg()[0]:.2f}; torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = {}
        for name in tqdm(["baseline", *studies], desc="case studies (one process each)"):
            rows[name] = peak_rss(name, Path(tmp), args.n_components)
    base = rows["baseline"][0]
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"\nbaseline (model + 12 transcoders of 24,576 features, built, nothing run): {base / GB:.2f} GB")
    print("| case study | blind | peak RSS | over baseline | peak / baseline | study time | target |")
    print("|---|---|---|---|---|---|---|")
    for name in studies:
        peak, seconds = rows[name]
        target = f"< 4 GB: {'met' if peak < 4 * GB else 'NOT met'}" if name in BLIND else "—"
        print(
            f"| {name} | {'yes' if name in BLIND else 'no'} | {peak / GB:.2f} GB "
            f"| {(peak - base) / GB:.2f} GB | {peak / base:.2f} | {seconds:.0f} s | {target} |"
        )


def greater_than(args: argparse.Namespace) -> None:
    from transcoder_lab.behaviour import greater_than_scores, last_token_logits
    from transcoder_lab.case_studies import greater_than as gt
    from transcoder_lab.case_studies import greater_than_ablations as ablations
    from transcoder_lab.case_studies.common import settings_for
    from transcoder_lab.sources.tokens import two_digit_token_ids

    print(f"load average before: {os.getloadavg()[0]:.2f}; torch threads {torch.get_num_threads()}")
    n_small = args.n_reference
    with tempfile.TemporaryDirectory() as tmp:
        cfg, model, transcoders = build(Path(tmp), args.n_components)
        settings = settings_for(cfg, cfg.case_study["greater_than"], "greater_than")
        texts, yy = gt.prompts_for(cfg)
        ids = two_digit_token_ids(model.tokenizer)
        original = greater_than_scores(last_token_logits(model, texts), yy, ids)["probability_difference"]
        per_point: dict[str, dict[str, float]] = {"fast": {}, "reference": {}}
        step2: dict[str, float] = {}
        differences = {"curves": 0.0, "step 2": 0.0}
        with torch.no_grad():
            # step 5, per protocol: fast at n = 0..n_components, the reference at n = 0..n_small
            ranking = ablations.component_ranking(model, texts, transcoders[settings.layer])
            for protocol in gt.PROTOCOLS:
                start = time.perf_counter()
                fast = ablations.fast_curves(model, texts, yy, ids, ranking, protocol, args.n_components)
                per_point["fast"][protocol] = (time.perf_counter() - start) / (2 * (args.n_components + 1))
                start = time.perf_counter()
                reference = {
                    kind: ablations.reference_curve(model, texts, yy, ids, ranking, protocol, kind, n_small)
                    for kind in ablations.KINDS
                }
                per_point["reference"][protocol] = (time.perf_counter() - start) / (2 * (n_small + 1))
                differences["curves"] = max(
                    differences["curves"],
                    *(
                        abs(a - b)
                        for kind in ablations.KINDS
                        for a, b in zip(reference[kind], fast[kind], strict=False)
                    ),
                )
            # step 2: every MLP ablated, both ways
            layers = sorted(transcoders)
            start = time.perf_counter()
            fast_ablations = ablations.mlp_ablations(model, texts, yy, ids, layers)
            step2["fast"] = time.perf_counter() - start
            start = time.perf_counter()
            reference_ablations = ablations.reference_mlp_ablations(model, texts, yy, ids, layers)
            step2["reference"] = time.perf_counter() - start
            differences["step 2"] = max(
                abs(fast_ablations[p][layer] - reference_ablations[p][layer])
                for p in gt.PROTOCOLS
                for layer in layers
            )
        start = time.perf_counter()
        run_study(cfg, model, transcoders, "greater_than")
        whole = time.perf_counter() - start
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(
        f"original probability difference {original:.4f}; fast vs reference, max |difference|: curves "
        f"(n = 0..{n_small}) {differences['curves']:.2e}, step 2 {differences['step 2']:.2e}"
    )
    points = 2 * (args.n_components + 1)  # features and neurons, n = 0..n_components
    curves_now = sum(per_point["fast"][p] for p in gt.PROTOCOLS) * points
    fixed = whole - curves_now
    print(
        f"\nwhole run_greater_than at {args.n_components} components (fast paths): {whole:.0f} s = curves "
        f"{curves_now:.0f} s (from the timed curves) + the rest {fixed:.0f} s, of which step 2 "
        f"{step2['fast']:.0f} s (reference step 2: {step2['reference']:.0f} s)"
    )
    print(
        "| path | s per curve point, zero | s per curve point, mean | s per component (4 points) "
        "| step 2 | estimate at 100 components |"
    )
    print("|---|---|---|---|---|---|")
    estimates = {}
    for path in ("reference", "fast"):
        per_component = 2 * sum(per_point[path][p] for p in gt.PROTOCOLS)
        estimates[path] = fixed - step2["fast"] + step2[path] + 101 * per_component
        print(
            f"| {path} | {per_point[path]['zero']:.3f} | {per_point[path]['mean']:.3f} | {per_component:.2f} "
            f"| {step2[path]:.0f} s | {estimates[path] / 60:.1f} min |"
        )
    ratio = estimates["reference"] / estimates["fast"]
    target = "met" if estimates["fast"] < 30 * 60 else "NOT met"
    print(
        f"\nreference / fast per component: "
        f"{sum(per_point['reference'].values()) / sum(per_point['fast'].values()):.1f}x; "
        f"whole study at 100 components: {ratio:.1f}x; target (< 30 min at 100 components): {target}"
    )
    print(
        "(the old implementation outside the curves is estimated as the fast one's with the reference "
        "step 2 in place of the fast one; it also ran a few more full passes, so its estimate is a lower "
        "bound)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="?", choices=["memory", "greater-than"], default="memory")
    parser.add_argument("--studies", nargs="*", default=list(STUDIES), help="memory: which case studies")
    parser.add_argument("--n-components", type=int, default=10, help="greater-than curves: n = 0..this")
    parser.add_argument("--n-reference", type=int, default=2, help="the straightforward curves: n = 0..this")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.root, args.n_components)
    elif args.what == "memory":
        memory(args)
    else:
        greater_than(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
