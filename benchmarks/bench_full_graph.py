"""Benchmark full attribution graphs (`circuits.full_graph` + `prune_graph`) against circuit-tracer
0.5.0's `attribute()` + `prune_graph`, on the same model, transcoders, prompt and options.

What is measured (CPU, wall time, one process per side, the same torch thread count in both):

- Cases: (1) the organism (`models/organism` and its circuit transcoders, layers 0-3: the
  `organism` profile's `circuit_transcoders`) on the prompt of a case study's graph (token ids from
  results/organism/case_studies/<name>.json; `--organism-case`, skipped with a note when absent);
  (2) a random GPT-2-shaped model (12 layers, d_model 768, 12 heads, d_mlp 3072, vocab 50257,
  n_ctx 1024; `gpt2_shaped_config(seed)`, processed like every model here) with 12 random ReLU
  transcoders of `--d-sae` features (default 6,144 = 8 x d_model; unit-norm random encoder columns
  and an encoder bias set so that about `--l0` features fire per token and layer, default 8, i.e.
  ~96 per token over the 12 layers: pre-activations are ~N(0, 1), so b_enc = -Phi^-1(1 - l0 /
  d_sae) with a little noise; the measured count is printed) and a random prompt of `--n-pos`
  tokens (default 24) led by a BOS (50256). d_sae only changes the encoders' cost: the graph's
  size is set by the number of active features;
  (3) the same model and prompt with one random cross-layer transcoder (CLT,
  dictionaries/crosslayer.py) in place of the 12 transcoders: `--clt-d-sae` features per layer
  (default 2,048: its decoders into every later MLP make it (n_layers + 1) / 2 = 6.5x a per-layer
  set's decoder weights per feature), unit-norm random encoder columns and the same encoder-bias
  rule (~`--l0` active per token and layer), random unit-norm concatenated decoders, small random
  pre- and output biases. Each feature of layer l writes into MLPs l..n_layers-1, so ours records its
  decoders into every MLP the pull-back passes and circuit-tracer injects one decoder vector per
  (feature, output layer). `--skip-clt` leaves it out.
- Ours: `AttributionContext.from_tokens` (the one forward pass) + `full_graph(ctx, batch_size,
  max_n_logits, desired_logit_prob)` ("attribution"), then `prune_graph(node_threshold,
  edge_threshold)` ("prune"). float64 throughout (the lab's attribution dtype).
- Theirs (in circuit-tracer's own Python, `--circuit-tracer-python` or the environment variable
  TRANSCODER_LAB_CIRCUIT_TRACER_PYTHON, running benchmarks/bench_full_graph_worker.py): the same
  processed weights (written as safetensors, loaded into a TransformerLensReplacementModel) and the
  same transcoders (written by `circuits.circuit_tracer.export.export_dictionaries`, loaded by
  `load_transcoder_set` fully in memory: lazy_encoder=lazy_decoder=False; the CLT written by
  `circuits.circuit_tracer.export_crosslayer`, loaded by `load_clt`, also in memory), `attribute(tokens,
  max_n_logits, desired_logit_prob, batch_size, max_feature_nodes=None)` ("attribution": its
  forward pass included) and its `prune_graph` ("prune"). float32 (its default).
- Equal work. Both compute the full graph: one row per active feature and per logit target over
  every source column (features, errors per layer and position, embeddings); error and embedding
  rows are zero in both. max_feature_nodes=None makes circuit-tracer visit every active feature
  (no influence-ordered queue); both use the same batch size (rows per backward pass / pull-back),
  the same salient-logit rule (max_n_logits, desired_logit_prob) and pruning thresholds.
  Differences by design (see full_graph.py's docstring): circuit-tracer drops every feature and
  the error at position 0 (BOS), so it has fewer rows (both counts are printed: ours do the extra
  rows), and its embedding node lacks W_pos. Its forward pass is run on `batch_size` copies of the
  prompt (the backward passes then carry a batch of rows); ours runs the prompt once.
- Agreement (so that the times are of the same graph): the logit targets must be the same tokens;
  over the nodes both have (features and errors at positions > 0, the logit targets), the
  relative difference max |A_ours - A_theirs| / max |A| is printed for feature -> logit edges and
  for all edges into feature and logit rows; the script exits non-zero above 1e-3.
- Timing (wall time; the table adds each side's process CPU time, all threads, over attribution
  and prune, and its ratio): `--warmup` untimed runs on the prompt's first `--warmup-tokens`
  tokens (first-call costs without a third full run), then the median of `--repeats` runs on the
  whole prompt, each side in turn (ours first, then the worker's), `--threads` torch threads on
  both sides (default: torch's default here). Machine load: the load average before and after
  and, per side, the largest share of the CPU other processes used during a timed run
  (/proc/stat); a warning above 5%. With other processes on the cores, torch's threads wait on
  each other and both sides slow down, by different factors (ours runs many more small ops):
  time on an idle machine.

No asserts on speed; the target is theirs / ours >= 1x. Run from the repository root:
    TRANSCODER_LAB_CIRCUIT_TRACER_PYTHON=/tmp/ctvenv/bin/python \
        .venv/bin/python benchmarks/bench_full_graph.py
An estimated 3-5 minutes on 2 idle cores. `--quick`: a 4-layer GPT-2-wide model, d_sae 2,048,
8 tokens, one repeat (about 1 minute). Without circuit-tracer's Python: our timings only, and a
line on how to get the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from transcoder_lab.circuits import AttributionContext, full_graph, prune_graph
from transcoder_lab.circuits.circuit_tracer.export import export_dictionaries
from transcoder_lab.circuits.circuit_tracer.export_crosslayer import export_crosslayer
from transcoder_lab.dictionaries import Dictionary, DictionarySpec
from transcoder_lab.dictionaries.crosslayer import CrossLayerSpec, CrossLayerTranscoder
from transcoder_lab.sources.models import build_processed_model, parameter_state_dict
from transcoder_lab.standins.gpt2 import gpt2_shaped_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_full_graph_worker import OtherCpu  # noqa: E402

WORKER = Path(__file__).resolve().parent / "bench_full_graph_worker.py"
ENV_PYTHON = "TRANSCODER_LAB_CIRCUIT_TRACER_PYTHON"
CONTENDED_SHARE = 0.05
AGREEMENT_TOLERANCE = 1e-3
CONFIG_FIELDS = (
    "n_layers",
    "d_model",
    "d_head",
    "n_heads",
    "d_mlp",
    "n_ctx",
    "d_vocab",
    "act_fn",
    "normalization_type",
    "positional_embedding_type",
    "default_prepend_bos",
    "seed",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--circuit-tracer-python",
        default=os.environ.get(ENV_PYTHON),
        help=f"circuit-tracer's Python (default: ${ENV_PYTHON})",
    )
    parser.add_argument("--organism-case", default="walkthrough", help="case study whose prompt is used")
    parser.add_argument("--skip-organism", action="store_true")
    parser.add_argument("--skip-gpt2", action="store_true")
    parser.add_argument("--skip-clt", action="store_true", help="leave out the cross-layer transcoder case")
    parser.add_argument("--clt-d-sae", type=int, default=2048, help="CLT features per layer")
    parser.add_argument("--n-layers", type=int, default=12)
    parser.add_argument("--d-sae", type=int, default=6144)
    parser.add_argument("--l0", type=float, default=8.0, help="target active features per token and layer")
    parser.add_argument("--n-pos", type=int, default=24, help="prompt length (BOS included)")
    parser.add_argument("--batch-size", type=int, default=256, help="rows per batch, both sides")
    parser.add_argument("--max-n-logits", type=int, default=10)
    parser.add_argument("--desired-logit-prob", type=float, default=0.95)
    parser.add_argument("--node-threshold", type=float, default=0.8)
    parser.add_argument("--edge-threshold", type=float, default=0.98)
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed runs on the prompt's first --warmup-tokens"
    )
    parser.add_argument("--warmup-tokens", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch threads, both sides"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="4 layers, d_sae 2048, 8 tokens, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_layers, args.d_sae, args.n_pos, args.repeats = 4, 2048, 8, 1
    return args


@dataclass
class Case:
    name: str
    model: object
    transcoders: dict[int, Dictionary] | CrossLayerTranscoder
    tokens: torch.Tensor
    ours: dict = field(default_factory=dict)
    theirs: dict | None = None
    note: str = ""


# -- cases ------------------------------------------------------------------------------------------


def organism_case(args: argparse.Namespace) -> Case | None:
    from transcoder_lab.case_studies import graph_of
    from transcoder_lab.case_studies.common import circuit_transcoders
    from transcoder_lab.config import load_profile
    from transcoder_lab.paths import results_dir
    from transcoder_lab.sources.models import load_model

    cfg = load_profile("organism")
    path = results_dir(cfg) / "case_studies" / f"{args.organism_case}.json"
    if not path.exists() or not Path(cfg.paths.models, "organism").exists():
        print(f"organism: skipped ({path} or the model is missing: `dvc repro` makes them)")
        return None
    graph = graph_of(json.loads(path.read_text()))
    if graph is None:
        print(f"organism: skipped ({path} has no graph)")
        return None
    tokens = torch.tensor(graph[0]["metadata"]["token_ids"])
    model = load_model(cfg.profile, cfg.paths.models)
    return Case(f"organism ({args.organism_case})", model, circuit_transcoders(cfg), tokens)


def encoder_bias(l0: float, d_sae: int) -> float:
    """The encoder bias at which ~l0 of d_sae features fire on N(0, 1) pre-activations."""
    return -float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(1.0 - l0 / d_sae)))


def gpt2_case(args: argparse.Namespace) -> Case:
    config = gpt2_shaped_config(seed=args.seed, n_layers=args.n_layers)
    torch.manual_seed(args.seed)
    model = build_processed_model(config)
    g = torch.Generator().manual_seed(args.seed + 1)
    d_model = config.d_model
    bias = encoder_bias(args.l0, args.d_sae)
    transcoders = {}
    for layer in range(args.n_layers):
        spec = DictionarySpec("transcoder", layer, d_model, args.d_sae, d_model, "relu", None, False)
        tc = Dictionary.initialise(spec, generator=g)
        with torch.no_grad():
            # LN2(x) has norm ~sqrt(d_model) and W_enc unit columns: pre-activations ~N(0, 1) + b_enc
            tc.b_enc.copy_(bias + 0.1 * torch.randn(args.d_sae, generator=g))
            tc.b_dec_out.copy_(0.1 * torch.randn(d_model, generator=g))
        transcoders[layer] = tc
    tokens = torch.randint(0, config.d_vocab - 1, (args.n_pos,), generator=g)
    tokens[0] = config.d_vocab - 1  # GPT-2's BOS
    name = f"GPT-2-shaped random ({args.n_layers} layers, d_sae {args.d_sae})"
    return Case(name, model, transcoders, tokens)


def clt_case(args: argparse.Namespace, base: Case | None) -> Case:
    """Case (3): a random CLT on the GPT-2-shaped case's model and prompt (built here if it was skipped)."""
    base = base or gpt2_case(args)
    cfg = base.model.cfg
    g = torch.Generator().manual_seed(args.seed + 2)
    spec = CrossLayerSpec(cfg.n_layers, cfg.d_model, cfg.d_model, args.clt_d_sae, model_name="bench")
    clt = CrossLayerTranscoder.initialise(spec, generator=g)
    with torch.no_grad():
        # as gpt2_case: unit encoder columns on LN2(x) of norm ~sqrt(d_model), so p ~ N(0, 1) + b_enc
        clt.b_enc.copy_(
            encoder_bias(args.l0, args.clt_d_sae) + 0.1 * torch.randn(clt.b_enc.shape, generator=g)
        )
        clt.b_dec.copy_(0.1 * torch.randn(clt.b_dec.shape, generator=g))
        clt.b_dec_out.copy_(0.1 * torch.randn(clt.b_dec_out.shape, generator=g))
    name = f"GPT-2-shaped random CLT ({cfg.n_layers} layers, d_sae {args.clt_d_sae} per layer)"
    return Case(name, base.model, clt, base.tokens)


# -- our side ---------------------------------------------------------------------------------------


def run_ours(case: Case, args: argparse.Namespace, tokens: torch.Tensor):
    with torch.no_grad():
        cpu = time.process_time()
        start = time.perf_counter()
        ctx = AttributionContext.from_tokens(case.model, case.transcoders, tokens)
        graph = full_graph(
            ctx,
            batch_size=args.batch_size,
            max_n_logits=args.max_n_logits,
            desired_logit_prob=args.desired_logit_prob,
        )
        mid = time.perf_counter()
        pruned = prune_graph(graph, args.node_threshold, args.edge_threshold)
        end = time.perf_counter()
    return graph, pruned, mid - start, end - mid, time.process_time() - cpu


def time_ours(case: Case, args: argparse.Namespace):
    for _ in range(args.warmup):
        run_ours(case, args, case.tokens[: args.warmup_tokens])
    attribution, prune, cpu, other = [], [], [], []
    for _ in range(args.repeats):
        meter = OtherCpu()
        graph, pruned, t_attr, t_prune, t_cpu = run_ours(case, args, case.tokens)
        other.append(meter.share())
        attribution.append(t_attr)
        prune.append(t_prune)
        cpu.append(t_cpu)
    case.ours = {
        "attribution_s": statistics.median(attribution),
        "prune_s": statistics.median(prune),
        "cpu_s": statistics.median(cpu),
        "other_cpu": max((s for s in other if s is not None), default=None),
        "n_features": graph.n_features,
        "n_nodes_kept": int(pruned.node_mask.sum()),
        "n_edges_kept": int(pruned.edge_mask.sum()),
    }
    return graph


# -- their side -------------------------------------------------------------------------------------


def write_case(case: Case, args: argparse.Namespace, folder: Path) -> None:
    """What the worker loads: the processed model's config and parameters, the exported transcoders."""
    cfg = case.model.cfg
    model_config = {name: getattr(cfg, name) for name in CONFIG_FIELDS}
    save_file(
        {k: v.contiguous() for k, v in parameter_state_dict(case.model).items()}, folder / "model.safetensors"
    )
    if isinstance(case.transcoders, CrossLayerTranscoder):
        export_crosslayer(case.transcoders, folder / "transcoders", model_name="bench")
    else:
        export_dictionaries(case.transcoders, folder / "transcoders", model_name="bench")
    case_json = {
        "transcoder_kind": "clt" if isinstance(case.transcoders, CrossLayerTranscoder) else "per_layer",
        "model_config": model_config,
        "token_ids": case.tokens.tolist(),
        "warmup_token_ids": case.tokens[: args.warmup_tokens].tolist(),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "max_n_logits": args.max_n_logits,
        "desired_logit_prob": args.desired_logit_prob,
        "node_threshold": args.node_threshold,
        "edge_threshold": args.edge_threshold,
        "warmup": args.warmup,
        "repeats": args.repeats,
    }
    (folder / "case.json").write_text(json.dumps(case_json, indent=1))


def run_theirs(case: Case, args: argparse.Namespace, python: str) -> dict[str, torch.Tensor]:
    with tempfile.TemporaryDirectory(prefix="bench-full-graph-") as tmp:
        folder = Path(tmp)
        write_case(case, args, folder)
        done = subprocess.run([python, str(WORKER), str(folder), str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"circuit-tracer's worker failed:\n{done.stderr[-4000:]}")
        info = json.loads((folder / "timings.json").read_text())
        tensors = load_file(folder / "graph.safetensors")
    timed = info["timings"]
    shares = [t["other_cpu"] for t in timed if t["other_cpu"] is not None]
    case.theirs = {
        "attribution_s": statistics.median(t["attribute_s"] for t in timed),
        "prune_s": statistics.median(t["prune_s"] for t in timed),
        "cpu_s": statistics.median(t["cpu_s"] for t in timed),
        "other_cpu": max(shares, default=None),
        "n_features": int(tensors["active_features"].shape[0]),
        "n_nodes_kept": int(tensors["node_mask"].sum()),
        "n_edges_kept": info["n_edges_kept"],
        "version": f"circuit-tracer {info['circuit_tracer']}, torch {info['torch']}, "
        f"{info['threads']} threads",
    }
    return tensors


def agreement(graph, theirs: dict[str, torch.Tensor]) -> dict[str, float | bool]:
    """Relative differences over the nodes both graphs have (module docstring, 'Agreement')."""
    tokens_ours = [t.token for t in graph.targets]
    tokens_theirs = theirs["logit_tokens"].tolist()
    if tokens_ours != tokens_theirs:
        return {"same_targets": False}
    A_theirs = theirs["adjacency"].to(torch.float64)
    active = theirs["active_features"][theirs["selected_features"]]
    n_pos, n_layers = graph.n_pos, graph.n_layers
    n_theirs = active.shape[0]
    # our index of each of their features (they have a subset: position 0 is dropped)
    key = lambda t: ((t[:, 0] * n_pos + t[:, 1]) * 10**7 + t[:, 2]).tolist()  # noqa: E731
    ours_at = {k: i for i, k in enumerate(key(graph.active_features))}
    missing = [k for k in key(active) if k not in ours_at]
    if missing:
        return {"same_targets": True, "missing_features": len(missing)}
    feat_ours = torch.tensor([ours_at[k] for k in key(active)], dtype=torch.long)
    err_ours, err_theirs = [], []
    for layer in range(n_layers):
        for p in range(1, n_pos):
            err_ours.append(graph.error_index(layer, p))
            err_theirs.append(n_theirs + layer * n_pos + p)
    n_t = graph.n_targets
    tgt_ours = torch.arange(graph.n_nodes - n_t, graph.n_nodes)
    tgt_theirs = torch.arange(A_theirs.shape[0] - n_t, A_theirs.shape[0])
    cols_ours = torch.cat([feat_ours, torch.tensor(err_ours, dtype=torch.long)])
    cols_theirs = torch.cat([torch.arange(n_theirs), torch.tensor(err_theirs, dtype=torch.long)])
    rows_ours, rows_theirs = torch.cat([feat_ours, tgt_ours]), torch.cat([torch.arange(n_theirs), tgt_theirs])
    A_ours = graph.adjacency.cpu()

    def rel(rows_o, cols_o, rows_t, cols_t) -> float:
        a, b = A_ours[rows_o][:, cols_o], A_theirs[rows_t][:, cols_t]
        return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))

    to_logits = rel(tgt_ours, feat_ours, tgt_theirs, torch.arange(n_theirs))
    all_edges = rel(rows_ours, cols_ours, rows_theirs, cols_theirs)
    return {
        "same_targets": True,
        "feature_to_logit": to_logits,
        "all_shared": all_edges,
        "ok": max(to_logits, all_edges) <= AGREEMENT_TOLERANCE,
    }


# -- report -----------------------------------------------------------------------------------------


def share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%" + (" !" if value > CONTENDED_SHARE else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    python = args.circuit_tracer_python
    load_before = os.getloadavg()
    print(
        f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs; "
        f"load average before: {load_before[0]:.2f}"
    )
    print(
        f"options (both sides): batch_size {args.batch_size}, max_n_logits {args.max_n_logits}, "
        f"desired_logit_prob {args.desired_logit_prob}, node/edge thresholds {args.node_threshold}/"
        f"{args.edge_threshold}; warm-up {args.warmup}, median of {args.repeats}"
    )
    cases = []
    if not args.skip_organism and (case := organism_case(args)) is not None:
        cases.append(case)
    gpt2 = None if args.skip_gpt2 else gpt2_case(args)
    if gpt2 is not None:
        cases.append(gpt2)
    if not args.skip_clt:
        cases.append(clt_case(args, gpt2))
    failed = False
    for case in cases:
        print(f"\n== {case.name}: {case.tokens.numel()} tokens")
        graph = time_ours(case, args)
        per_token = graph.n_features / (graph.n_pos * graph.n_layers)
        print(
            f"ours: {graph.n_features} active features ({per_token:.1f} per token and layer, "
            f"{per_token * graph.n_layers:.0f} per token), "
            f"{graph.n_targets} logit targets, {graph.n_nodes} nodes; "
            f"attribution {case.ours['attribution_s']:.2f} s, prune {case.ours['prune_s']:.2f} s"
        )
        if isinstance(case.transcoders, CrossLayerTranscoder) and gpt2 is not None and gpt2.ours:
            print(
                "ours, CLT / per-layer transcoders on the same model and prompt: "
                f"{case.ours['attribution_s'] / gpt2.ours['attribution_s']:.2f}x the attribution time"
            )
        if python is None:
            continue
        theirs = run_theirs(case, args, python)
        print(
            f"theirs ({case.theirs['version']}): {case.theirs['n_features']} active features "
            f"(position 0 dropped); attribution {case.theirs['attribution_s']:.2f} s, "
            f"prune {case.theirs['prune_s']:.2f} s"
        )
        check = agreement(graph, theirs)
        del theirs
        if not check["same_targets"] or "missing_features" in check:
            case.note = f"MISMATCH: {check}"
            failed = True
        else:
            case.note = (
                f"{'OK' if check['ok'] else 'MISMATCH'}: rel. diff feature->logit "
                f"{check['feature_to_logit']:.1e}, all shared edges {check['all_shared']:.1e}"
            )
            failed |= not check["ok"]
        print(f"agreement: {case.note}")

    load_after = os.getloadavg()
    print(f"\nload average after: {load_after[0]:.2f} (1 min), {load_after[1]:.2f} (5 min)")
    header = [
        "case",
        "features ours/theirs",
        "ours attr + prune",
        "theirs attr + prune",
        "ratio theirs/ours (total)",
        "ratio (attribution)",
        "CPU time ours/theirs (ratio)",
        "other CPU ours/theirs",
        "agreement",
    ]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    contended = False
    for case in cases:
        o, t = case.ours, case.theirs
        ours_total = o["attribution_s"] + o["prune_s"]
        ours_cell = f"{o['attribution_s']:.2f} + {o['prune_s']:.2f} s"
        if t is None:
            row = [
                case.name,
                str(o["n_features"]),
                ours_cell,
                "n/a",
                "n/a",
                "n/a",
                f"{o['cpu_s']:.1f} s",
                share(o["other_cpu"]),
                "n/a",
            ]
        else:
            total = (t["attribution_s"] + t["prune_s"]) / ours_total
            row = [
                case.name,
                f"{o['n_features']}/{t['n_features']}",
                ours_cell,
                f"{t['attribution_s']:.2f} + {t['prune_s']:.2f} s",
                f"**{total:.2f}x** (target >= 1x)",
                f"{t['attribution_s'] / o['attribution_s']:.2f}x",
                f"{o['cpu_s']:.1f}/{t['cpu_s']:.1f} s ({t['cpu_s'] / o['cpu_s']:.2f}x)",
                f"{share(o['other_cpu'])}/{share(t['other_cpu'])}",
                case.note,
            ]
        contended |= any(
            s is not None and s > CONTENDED_SHARE for s in (o["other_cpu"], (t or {}).get("other_cpu"))
        )
        print("| " + " | ".join(row) + " |")
    if contended or max(load_before[0], load_after[0]) > 0.5:
        print(
            "\nWARNING: the machine was not idle (other processes' CPU share above "
            f"{100 * CONTENDED_SHARE:.0f}% marked '!', or a load average above 0.5): "
            "rerun on a quiet machine."
        )
    if python is None:
        print(
            f"\nNo circuit-tracer Python given: ours only. For the ratio, set {ENV_PYTHON} or pass "
            "--circuit-tracer-python (a venv with circuit-tracer==0.5.0, 'transformers<=4.57.3', "
            "'huggingface-hub<1.0' and torch)."
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
