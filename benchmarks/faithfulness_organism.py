"""Faithfulness of transcoder attribution on the trained organism: ablations vs attributions.

What is measured: for ~20 held-out prompts (greater-than and citation-semicolon prompts from the
`transcoder_lab.organism.corpus` generators, drawn with a seed the corpus and behaviour stages do
not use), the root is the most active layer-2 transcoder feature at the last token (a feature root
at resid_mid 2). Every layer-1 transcoder feature active at that token is then zero-ablated there,
and the actual change of the root's value v·LN(x) is compared with its attribution:

- attribution: the feature's total first-order effect on the root through a graph (`build_graph`)
  that keeps its direct edge to the root and its edges through every head of attention layer 2
  reading that token (the only routes from an ablation at token t of MLP 1 to resid_mid 2 at t:
  MLP 2 writes after resid_mid 2, and attention 2 at t reads the changed residual only at source
  t). With attention patterns and LayerNorm scales frozen this is exact to float error;
- actual change: `verify_graph` (one batched run per chunk of ablations), once with patterns and
  LN scales frozen, once with neither frozen (the real model).

Printed per prompt: the root, the number of ablated features, Spearman(predicted, actual) frozen
and unfrozen; then the means over prompts (prompts with fewer than 3 active features are skipped,
as Spearman is not meaningful there). Inputs: models/organism and
dictionaries/organism/L{1,2}_transcoder/l1_0.001 (from `dvc repro`). Run from the repository root:
`.venv/bin/python benchmarks/faithfulness_organism.py`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch

from transcoder_lab.circuits import (
    AttributionContext,
    feature_root,
    source_layer_graph,
    verify_graph,
)
from transcoder_lab.config import compose, load_config
from transcoder_lab.dictionaries import load_dictionary
from transcoder_lab.organism.mechanisms.citation import citation_semicolon_prompts
from transcoder_lab.organism.mechanisms.greater_than import greater_than_prompts
from transcoder_lab.paths import dictionary_dir
from transcoder_lab.sources.models import load_model


def measure(model, transcoders, tokens, root_layer: int, lower: int, position: int = -1):
    """(root label, n features, Spearman frozen, Spearman unfrozen) for the most active feature."""
    ctx = AttributionContext.from_tokens(model, transcoders, tokens)
    t = ctx.position(position)
    feature = int(ctx.feature_acts[root_layer][t].argmax())
    root = feature_root(ctx, root_layer, feature, t)
    graph, n = source_layer_graph(ctx, root, lower)
    if n < 3:
        return root.label, n, math.nan, math.nan
    frozen = verify_graph(model, transcoders, tokens, root, graph, freeze_attention=True, freeze_ln=True)
    unfrozen = verify_graph(model, transcoders, tokens, root, graph, freeze_attention=False, freeze_ln=False)
    return root.label, n, frozen["spearman"], unfrozen["spearman"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-prompts", type=int, default=20, help="half greater-than, half citation")
    parser.add_argument("--l1", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=12345, help="prompt seed (held out)")
    args = parser.parse_args(argv)

    cfg = load_config(compose())
    model = load_model(cfg.profile, cfg.paths.models)
    transcoders = {
        layer: load_dictionary(dictionary_dir(cfg, layer, "transcoder", args.l1)) for layer in (1, 2)
    }
    corpus = cfg.profile.corpus
    n_gt = args.n_prompts // 2
    gt = greater_than_prompts(corpus, args.seed)
    rng = np.random.default_rng(args.seed)
    texts = [("greater_than", gt[i].text) for i in sorted(rng.choice(len(gt), n_gt, replace=False))]
    texts += [
        ("citation", p.text) for p in citation_semicolon_prompts(corpus, args.seed, args.n_prompts - n_gt)
    ]

    start = time.perf_counter()
    rows = []
    with torch.no_grad():
        for kind, text in texts:
            tokens = model.to_tokens(text)[0]
            label, n, rho_frozen, rho_unfrozen = measure(model, transcoders, tokens, root_layer=2, lower=1)
            rows.append((kind, rho_frozen, rho_unfrozen))
            print(
                f"{kind:12s} {label:18s} {n:4d} features  "
                f"frozen {rho_frozen:+.4f}  unfrozen {rho_unfrozen:+.4f}"
            )
    print()
    for kind in ("greater_than", "citation", "all"):
        chosen = [r for r in rows if kind in ("all", r[0]) and not math.isnan(r[1])]
        frozen = np.mean([r[1] for r in chosen]) if chosen else math.nan
        unfrozen = np.mean([r[2] for r in chosen if not math.isnan(r[2])]) if chosen else math.nan
        print(
            f"mean Spearman over {len(chosen):2d} {kind:12s} prompts: frozen (patterns + LN scales) "
            f"{frozen:+.4f}, unfrozen {unfrozen:+.4f}"
        )
    print(f"({time.perf_counter() - start:.1f} s; transcoders L1, L2 at l1 {args.l1:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
