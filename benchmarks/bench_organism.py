"""Benchmark the organism's training step: ours against TransformerLens's, and against the matmul roofline.

Both sides run the organism profile's model and batch (`conf/profile/organism.yaml`) on random
tokens, with the training stage's settings: the profile's pinned threads, deterministic kernels,
AdamW with gradient clipping (`organism.train.make_optimizer`). Measured in the same run:

1. ours: `OrganismModel.next_token_loss` (fused LayerNorm, GELU-new, attention; organism/model.py);
2. the baseline: TransformerLens's `HookedTransformer(tokens, return_type="loss")` on the same
   config and initial weights (what the organism stage trained with before);
3. the roofline: the matrix products a step cannot avoid, each timed alone at the step's shapes
   and threads: every linear map's forward, input gradient and weight gradient (Q/K/V as one
   [d_model, 3 d_model] map, W_O, W_in, W_out, the unembedding over the scored positions), and
   attention's six batched products (q k^T and p v forward; dp, dv, dq, dk backward) counted at
   half their dense time, since causal attention needs only the lower triangle.

Printed: seconds per step of each side (median over rounds that alternate between the sides), the
speed-up ours / TransformerLens, and each side's roofline fraction (roofline time / step time; the
lab's target for ours is >= 0.5). No stored timings, no asserts. Timings need an otherwise idle
machine: the share of the CPU other processes took is printed and flagged above 5%.

Run from the repository root: `python benchmarks/bench_organism.py` (about a minute on two cores).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from bench_training import OtherCpu, contention, verdict
from transformer_lens import HookedTransformer

from transcoder_lab.config import ModelConfig, TrainingConfig, compose, load_config
from transcoder_lab.organism.model import build_organism_model
from transcoder_lab.organism.train import deterministic_algorithms, make_optimizer
from transcoder_lab.sources.models import hooked_config
from transcoder_lab.stage import pin_cpu_threads

ROOFLINE_TARGET = 0.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--profile", default="organism", help="the profile whose model and batch are timed")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side, alternating")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each side's first round")
    return parser.parse_args(argv)


def step_function(model: torch.nn.Module, loss: Callable, cfg: TrainingConfig, tokens: torch.Tensor):
    optimizer = make_optimizer(model, cfg)

    def step() -> None:
        value = loss(tokens)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def roofline_seconds(model_cfg: ModelConfig, d_vocab: int, batch: int, rounds: int = 5) -> float:
    """Time of the products one step cannot avoid (see the module docstring), median of `rounds`."""
    generator = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    n_ctx, d_model = model_cfg.n_ctx, model_cfg.d_model
    tokens = batch * n_ctx
    linear = [(tokens, d_model, 3 * model_cfg.n_heads * model_cfg.d_head)] * model_cfg.n_layers
    linear += [(tokens, model_cfg.n_heads * model_cfg.d_head, d_model)] * model_cfg.n_layers
    linear += [(tokens, d_model, model_cfg.d_mlp), (tokens, model_cfg.d_mlp, d_model)] * model_cfg.n_layers
    linear += [(batch * (n_ctx - 1), d_model, d_vocab)]
    operands = [(randn(n, i), randn(i, o), randn(n, o)) for n, i, o in linear]
    heads = batch * model_cfg.n_heads
    q, k, v, d_out = (randn(heads, n_ctx, model_cfg.d_head) for _ in range(4))
    pattern, d_scores = randn(heads, n_ctx, n_ctx), randn(heads, n_ctx, n_ctx)

    def linear_products() -> None:
        for x, W, grad in operands:
            x @ W, grad @ W.T, x.T @ grad

    def attention_products() -> None:
        for _ in range(model_cfg.n_layers):
            q @ k.transpose(1, 2), pattern @ v  # forward
            d_out @ v.transpose(1, 2), pattern.transpose(1, 2) @ d_out  # dp, dv
            d_scores @ k, d_scores.transpose(1, 2) @ q  # dq, dk

    linear_products(), attention_products()  # warm-up
    linear_time = statistics.median(seconds_per_call(linear_products, 1) for _ in range(rounds))
    attention_time = statistics.median(seconds_per_call(attention_products, 1) for _ in range(rounds))
    return linear_time + attention_time / 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = load_config(compose([f"profile={args.profile}"])).profile
    pin_cpu_threads(profile.cpu_threads)
    model_cfg, cfg = profile.model, profile.training
    d_vocab = profile.corpus.vocab_size
    tokens = torch.randint(
        0, d_vocab, (cfg.batch_size, model_cfg.n_ctx), generator=torch.Generator().manual_seed(1)
    )
    ours = build_organism_model(model_cfg, d_vocab, cfg.seed)
    lens = HookedTransformer(hooked_config(model_cfg, d_vocab, cfg.seed))
    sides = {
        "ours": step_function(ours, ours.next_token_loss, cfg, tokens),
        "TransformerLens": step_function(lens, lambda t: lens(t, return_type="loss"), cfg, tokens),
    }
    shape = f"batch {cfg.batch_size} x {model_cfg.n_ctx} tokens"
    print(f"profile {args.profile}: {shape}, {torch.get_num_threads()} threads")
    other = OtherCpu()
    times: dict[str, list[float]] = {name: [] for name in sides}
    with deterministic_algorithms():
        for step in sides.values():
            seconds_per_call(step, args.warmup)
        for _ in range(args.rounds):
            for name, step in sides.items():
                times[name].append(seconds_per_call(step, args.steps))
        roofline = roofline_seconds(model_cfg, d_vocab, cfg.batch_size)
    share = other.share()
    step_time = {name: statistics.median(values) for name, values in times.items()}
    print(f"roofline (unavoidable products): {1e3 * roofline:.1f} ms a step")
    for name, seconds in step_time.items():
        rate = f"{1e3 * seconds:.1f} ms a step ({1 / seconds:.2f} steps/s)"
        print(f"{name:>16}: {rate}, roofline fraction {roofline / seconds:.2f}")
    fraction = roofline / step_time["ours"]
    print(f"speed-up ours / TransformerLens: {step_time['TransformerLens'] / step_time['ours']:.2f}x")
    met = verdict(fraction, ROOFLINE_TARGET, at_least=True)
    print(f"ours at >= {ROOFLINE_TARGET} of the roofline: {met} ({fraction:.2f})")
    print(f"other CPU use: {contention(share)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
