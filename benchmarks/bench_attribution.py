"""Benchmark the circuit beam search against a one-candidate-at-a-time Python reference.

What is measured (CPU, one process, torch's default thread count):

- Setting: a random GPT-2-shaped processed model (default 12 layers, d_model 768, 12 heads,
  d_mlp 3072, vocab 50257, random init), a random ReLU transcoder of `--d-sae` features on every
  layer (unit-norm random encoder columns and an effective encoder bias around `--b-enc`, so only a
  few percent of features fire on a token; the measured firing rate is printed), and a random
  prompt of `--n-pos` tokens. Root: the logit difference between the two largest logits at the last
  token (`logit_diff_root`).
- Ours: `AttributionContext.from_tokens` (one cached forward pass) and `beam_search(ctx, root,
  n_iterations, n_branches)`, timed separately (best of `--repeats` runs each).
- Reference, written here: the same beam search (same ranking, same beam, same child roots) where
  every candidate contribution is its own small torch op in a Python loop: per active feature
  i of each earlier transcoder, z_i * (W_dec[i] · u); per head h of each earlier attention layer
  and source s <= t, A[h, t, s] * ((LN1(x_s) W_V^h) W_O^h) · u. It reads the same cached
  activations as ours (so it is timed against our search alone, and against search + context).
  Inactive features contribute exactly 0 and cannot enter a top-k, so the timed reference skips
  them (a stronger baseline than looping over every feature). What a loop over *all* features
  would cost is extrapolated explicitly: the per-op cost of an inactive feature is measured on the
  root's attribution alone and multiplied by the number of inactive features the search visits.
- Agreement: both searches must return the same kept paths, with equal labels and values to
  1e-4 relative (printed, and the script exits non-zero if they disagree).

No asserts on speed; targets printed beside the numbers: ours >= 10x faster than the reference,
our search < 10 s on 2 cores. Run from the repository root:
`.venv/bin/python benchmarks/bench_attribution.py` (`--quick`: 4 layers, 4096 features).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from transcoder_lab.circuits import AttributionContext, beam_search, logit_diff_root
from transcoder_lab.dictionaries import Dictionary, DictionarySpec
from transcoder_lab.sources.models import build_processed_model
from transcoder_lab.standins.gpt2 import gpt2_shaped_config

F64 = torch.float64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-layers", type=int, default=12)
    parser.add_argument("--d-model", type=int, default=768)
    parser.add_argument("--n-heads", type=int, default=12)
    parser.add_argument("--d-mlp", type=int, default=3072)
    parser.add_argument("--d-vocab", type=int, default=50257)
    parser.add_argument("--d-sae", type=int, default=24576)
    parser.add_argument("--n-pos", type=int, default=32)
    parser.add_argument("--b-enc", type=float, default=-2.0, help="mean effective encoder bias")
    parser.add_argument("--n-iterations", type=int, default=3)
    parser.add_argument("--n-branches", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of ours (best kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--full-reference", action="store_true", help="time the all-features reference loop (about a minute)"
    )
    parser.add_argument("--quick", action="store_true", help="4 layers, d_sae 4096, vocab 1000")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_layers, args.d_sae, args.d_vocab = 4, 4096, 1000
    return args


def build(args: argparse.Namespace):
    torch.manual_seed(args.seed)
    config = gpt2_shaped_config(
        seed=args.seed,
        n_layers=args.n_layers,
        d_model=args.d_model,
        n_heads=args.n_heads,
        d_head=args.d_model // args.n_heads,
        d_mlp=args.d_mlp,
        d_vocab=args.d_vocab,
    )
    model = build_processed_model(config)
    g = torch.Generator().manual_seed(args.seed + 1)
    transcoders = {}
    for layer in range(args.n_layers):
        spec = DictionarySpec(
            "transcoder", layer, args.d_model, args.d_sae, args.d_model, "relu", None, False
        )
        tc = Dictionary.initialise(spec, generator=g)
        with torch.no_grad():
            # LN2(x) has norm ~sqrt(d_model) and W_enc unit columns, so pre-activations are ~N(0, 1)
            # before the bias: b_enc ~ -2 leaves a few percent of features active
            tc.b_enc.copy_(args.b_enc + 0.3 * torch.randn(args.d_sae, generator=g))
            tc.b_dec_out.copy_(0.1 * torch.randn(args.d_model, generator=g))
        transcoders[layer] = tc
    tokens = torch.randint(0, args.d_vocab, (args.n_pos,), generator=g)
    return model, transcoders, tokens


# -- the reference: one small op per candidate ------------------------------------------------------


class Reference:
    """The beam search of `transcoder_lab.circuits.beam_search.beam_search`, one candidate at a time."""

    def __init__(self, ctx: AttributionContext, skip_inactive: bool = True) -> None:
        self.ctx = ctx
        self.skip_inactive = skip_inactive
        self.n_inactive_visited = 0
        model = ctx.model
        self.W_V = [model.blocks[ly].attn.W_V.detach().to(F64) for ly in range(ctx.n_layers)]
        self.W_O = [model.blocks[ly].attn.W_O.detach().to(F64) for ly in range(ctx.n_layers)]
        self.W_dec = {ly: tc.W_dec.detach() for ly, tc in ctx.transcoders.items()}
        self.W_enc = {ly: tc.W_enc.detach() for ly, tc in ctx.transcoders.items()}

    def frozen(self, layer: int, sublayer: str, t: int, v: torch.Tensor) -> torch.Tensor:
        scale = self.ctx.ln_pre_scale if sublayer == "resid_pre" else self.ctx.ln_mid_scale
        return (v - v.mean()) / scale[layer, t]

    def attribute(self, layer: int, sublayer: str, t: int, v: torch.Tensor):
        """[(value tensor, key)] for every expandable candidate, plus u."""
        ctx = self.ctx
        u = self.frozen(layer, sublayer, t, v)
        values: list[torch.Tensor] = []
        keys: list[tuple] = []
        n_attn = layer + (sublayer == "resid_mid")
        for ly in range(n_attn):
            for h in range(ctx.model.cfg.n_heads):
                for s in range(t + 1):
                    a = ctx.patterns[ly, h, t, s]
                    values.append(a * (((ctx.ln_pre_out[ly, s] @ self.W_V[ly][h]) @ self.W_O[ly][h]) @ u))
                    keys.append(("head", ly, h, s))
        for ly in range(layer):
            z = ctx.feature_acts[ly][t]
            if self.skip_inactive:
                active = z.nonzero()[:, 0].tolist()
                self.n_inactive_visited += z.numel() - len(active)
            else:
                active = range(z.numel())
            for i in active:
                values.append(z[i].to(F64) * (self.W_dec[ly][i].to(F64) @ u))
                keys.append(("feature", ly, i, t))
        return values, keys, u

    def ranked(self, values, keys, k: int):
        if not values:
            return []
        flat = torch.stack(values)
        key = torch.where(flat != 0, flat.abs(), torch.full_like(flat, -torch.inf))
        k = min(k, int(torch.isfinite(key).sum()))
        return [(keys[i], float(flat[i])) for i in key.topk(k).indices.tolist()]

    def child(self, key: tuple, u: torch.Tensor, t: int):
        kind, ly, index, position = key
        if kind == "feature":
            pull = self.W_dec[ly][index].to(F64) @ u
            return ly, "resid_mid", t, pull * self.W_enc[ly][:, index].to(F64)
        a = self.ctx.patterns[ly, index, t, position]
        return ly, "resid_pre", position, a * (self.W_V[ly][index] @ (self.W_O[ly][index] @ u))

    def search(self, layer, sublayer, t, v, n_iterations: int, n_branches: int):
        values, keys, u = self.attribute(layer, sublayer, t, v)
        beam = [((key,), value, u, t) for key, value in self.ranked(values, keys, n_branches)]
        found = [(nodes, value) for nodes, value, _, _ in beam]
        for _ in range(n_iterations - 1):
            candidates = []
            for nodes, _, parent_u, parent_t in beam:
                point = self.child(nodes[-1], parent_u, parent_t)
                values, keys, u = self.attribute(*point)
                candidates += [
                    ((*nodes, key), value, u, point[2])
                    for key, value in self.ranked(values, keys, n_branches)
                ]
            candidates.sort(key=lambda item: abs(item[1]), reverse=True)
            beam = candidates[:n_branches]
            if not beam:
                break
            found += [(nodes, value) for nodes, value, _, _ in beam]
        found.sort(key=lambda item: abs(item[1]), reverse=True)
        return [([label(key) for key in nodes], value) for nodes, value in found]


def label(key: tuple) -> str:
    kind, ly, index, position = key
    return f"tc{ly}[{index}]@{position}" if kind == "feature" else f"attn{ly}.{index}@{position}"


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"model: {args.n_layers} layers, d_model {args.d_model}, {args.n_heads} heads, d_mlp {args.d_mlp}, "
        f"vocab {args.d_vocab}; transcoders: {args.d_sae} features x {args.n_layers}; {args.n_pos} tokens; "
        f"beam {args.n_iterations} x {args.n_branches}; torch threads {torch.get_num_threads()}"
    )
    (model, transcoders, tokens), t_build = timed(lambda: build(args))
    print(f"built in {t_build:.1f} s")

    with torch.no_grad():
        ctx, t_ctx = timed(lambda: AttributionContext.from_tokens(model, transcoders, tokens))
        for _ in range(args.repeats - 1):
            ctx, t = timed(lambda: AttributionContext.from_tokens(model, transcoders, tokens))
            t_ctx = min(t_ctx, t)
        rate = torch.stack([(z > 0).double().mean() for z in ctx.feature_acts.values()]).mean()
        print(f"feature firing rate: {100 * float(rate):.2f}% of features per token")
        top2 = ctx.logits[-1].topk(2).indices.tolist()
        root = logit_diff_root(ctx, top2[0], top2[1], -1)
        t_search = float("inf")
        for _ in range(args.repeats):
            paths, t = timed(lambda: beam_search(ctx, root, args.n_iterations, args.n_branches))
            t_search = min(t_search, t)

        reference = Reference(ctx)
        ref_paths, t_ref = timed(
            lambda: reference.search(
                root.layer,
                root.sublayer,
                root.position,
                root.vector.to(F64),
                args.n_iterations,
                args.n_branches,
            )
        )
        # the all-features variant, on the root's attribution only, to extrapolate its cost
        v = root.vector.to(F64)
        _, t_root_active = timed(
            lambda: Reference(ctx).attribute(root.layer, root.sublayer, root.position, v)
        )
        root_ref = Reference(ctx)
        root_ref.attribute(root.layer, root.sublayer, root.position, v)
        n_inactive_root = root_ref.n_inactive_visited
        _, t_root_all = timed(
            lambda: Reference(ctx, skip_inactive=False).attribute(root.layer, root.sublayer, root.position, v)
        )
        per_inactive = max(t_root_all - t_root_active, 0.0) / max(n_inactive_root, 1)
        t_ref_all = t_ref + per_inactive * reference.n_inactive_visited
        how_all = (
            f"EXTRAPOLATED: + {reference.n_inactive_visited} inactive-feature ops "
            f"x {1e6 * per_inactive:.2f} us, "
            "the per-op cost measured on the root's attribution; --full-reference measures it"
        )
        if args.full_reference:  # the straightforward loop over every candidate, timed end to end
            full = Reference(ctx, skip_inactive=False)
            _, t_ref_all = timed(
                lambda: full.search(
                    root.layer, root.sublayer, root.position, v, args.n_iterations, args.n_branches
                )
            )
            how_all = "measured, full search"

    ours = [(path.labels, path.value) for path in paths]
    agree = len(ours) == len(ref_paths) and all(
        a_labels == b_labels and abs(a - b) <= 1e-4 * max(abs(a), abs(b), 1e-12)
        for (a_labels, a), (b_labels, b) in zip(ours, ref_paths, strict=False)
    )
    worst = max(
        (abs(a - b) / max(abs(a), abs(b), 1e-12) for (_, a), (_, b) in zip(ours, ref_paths, strict=False)),
        default=float("nan"),
    )
    print(f"root {root.label}: {len(ours)} kept paths; top: {paths[0] if paths else None}")
    print(
        f"agreement with the reference: {'OK' if agree else 'MISMATCH'} "
        f"({len(ours)} vs {len(ref_paths)} paths, worst relative value difference {worst:.2e})"
    )
    print()
    print(f"ours: AttributionContext.from_tokens     {t_ctx:8.3f} s")
    print(f"ours: beam_search                        {t_search:8.3f} s   (target < 10 s)")
    print(f"ours: context + search                   {t_ctx + t_search:8.3f} s")
    print(f"reference search, active features only   {t_ref:8.3f} s   (measured, full search)")
    print(f"reference search, all features           {t_ref_all:8.3f} s   ({how_all})")
    kind = "measured" if args.full_reference else "extrapolated"
    print(
        f"ratio all-features reference / ours (search only):      {t_ref_all / t_search:7.1f}x {kind} "
        "(target >= 10x)"
    )
    with_context = t_ref_all / (t_ctx + t_search)
    print(f"ratio all-features reference / ours (context + search): {with_context:7.1f}x {kind}")
    print(f"ratio active-only reference / ours (search only):       {t_ref / t_search:7.1f}x measured")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
