"""Why the organism's transcoders keep dead features and its SAEs do not: a measured study.

Each variant of the dictionary recipe trains the organism's dictionaries (transcoders at every
layer by default; `--kinds` adds the SAE arms) through the real trainer (`DictionaryTrainer.step`,
as `train_dictionaries` runs it), on the activations stage's shards in the pipeline's batch order.
Every `--every` steps each dictionary's dead fraction is measured on held-out rows (the project's
definition, `evaluation.reconstruction_metrics`: a feature that fires on none of the held-out
rows is dead); at the end also held-out L0 and FVU. Variants change one thing at a time against
the paper's recipe:

  baseline        the paper's recipe (random W_enc, ghost grads) with the profile's settings
  lr_2e-3         Adam at 2e-3 instead of the recipe's learning rate
  l1_warmup       the L1 coefficient ramped from 0 over the first 20% of steps
  linear_init     transcoder_init: linear (decoder rows = encoder columns through the
                  least-squares linear map from MLP input to MLP output)
  resample        dead-feature resampling every 200 steps instead of ghost grads
  no_ghost_grads  no dead-feature handling at all
  resample_250    resampling every 250 steps (silent for 100 steps = dead), none in the last 250
  linear+warmup   linear_init and l1_warmup together
  data_init       transcoder_init: data (feature i starts as token i of the first batch: encoder
                  column its centred input, decoder row its centred target)
  data+warmup, data+no_ghost   data_init with l1_warmup, or without ghost grads
  no_ghost+warmup_P   no ghost grads, the L1 coefficient ramped over the first P% of steps
                  (no_ghost+warmup_80 is the organism's recipe, conf/dictionary_recipe/live_transcoders.yaml)

Prints one markdown table (the rows of docs/dead_features.md). Needs the organism's activations
(`dvc repro activations`). Run from the repository root:
  python benchmarks/dead_features.py                 # transcoders at L0-L3, lambda 1e-3
  python benchmarks/dead_features.py --l1 2e-3 --layers 2 --kinds transcoder sae_mlp_out sae_mlp_in
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time

import torch

from transcoder_lab.config import DictionaryTrainingConfig, compose, load_config, load_profile
from transcoder_lab.dictionaries import DictionarySpec
from transcoder_lab.dictionaries.activations import read_shards, shard_training_batches
from transcoder_lab.dictionaries.evaluation import reconstruction_metrics
from transcoder_lab.dictionaries.training import DictionaryJob, DictionaryTrainer
from transcoder_lab.paths import activations_dir
from transcoder_lab.stage import pin_cpu_threads


def variants(profile: str) -> dict[str, DictionaryTrainingConfig]:
    change = dataclasses.replace
    # the paper's recipe as conf/dictionary_recipe/paper.yaml sets it on this profile
    paper = load_config(compose([f"profile={profile}", "+dictionary_recipe=paper"]))
    base = paper.profile.dictionaries.training
    warmup = 0.2  # of the steps
    return {
        "baseline": base,
        "lr_2e-3": change(base, lr=2e-3),
        "l1_warmup": change(base, l1_warmup_fraction=warmup),
        "linear_init": change(base, transcoder_init="linear"),
        "resample": change(base, dead_features="resample", resample_every=200),
        "no_ghost_grads": change(base, dead_features="none"),
        "resample_250": change(base, dead_features="resample", resample_every=250, dead_window_steps=100),
        "linear+warmup": change(base, transcoder_init="linear", l1_warmup_fraction=warmup),
        "data_init": change(base, transcoder_init="data"),
        "data+warmup": change(base, transcoder_init="data", l1_warmup_fraction=warmup),
        "data+no_ghost": change(base, transcoder_init="data", dead_features="none"),
        "no_ghost+warmup_20": change(base, dead_features="none", l1_warmup_fraction=0.2),
        "no_ghost+warmup_50": change(base, dead_features="none", l1_warmup_fraction=0.5),
        "no_ghost+warmup_80": change(base, dead_features="none", l1_warmup_fraction=0.8),
        "no_ghost+warmup_100": change(base, dead_features="none", l1_warmup_fraction=1.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="organism")
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--kinds", nargs="+", default=["transcoder"])
    parser.add_argument("--l1", type=float, default=1e-3)
    parser.add_argument("--variants", nargs="+", default=None, help="names from the module docstring")
    parser.add_argument("--every", type=int, default=250, help="steps between dead-fraction readings")
    parser.add_argument("--heldout-rows", type=int, default=32768)
    args = parser.parse_args()

    cfg = load_profile(args.profile)
    pin_cpu_threads(cfg.profile.cpu_threads)
    grid, model = cfg.profile.dictionaries, cfg.profile.model
    chosen = variants(args.profile)
    if args.variants:
        chosen = {name: chosen[name] for name in args.variants}
    specs = [
        DictionarySpec(
            kind=kind,
            layer=layer,
            d_in=model.d_model,
            d_sae=grid.expansion_factor * model.d_model,
            d_out=model.d_model,
            model_name=cfg.profile.name,
        )  # fmt: skip
        for kind, layer in itertools.product(args.kinds, args.layers)
    ]
    hooks = sorted({hook for spec in specs for hook in (spec.hook_in, spec.hook_out)})
    heldout, n_rows = [], 0
    for batch in read_shards(activations_dir(cfg, "heldout"), hooks):
        heldout.append({hook: rows.float() for hook, rows in batch.items()})
        n_rows += len(next(iter(batch.values())))
        if n_rows >= args.heldout_rows:
            break

    readings = list(range(args.every, grid.training.n_steps + 1, args.every))
    header = ["variant", "dictionary", *[f"dead@{step}" for step in readings], "L0", "FVU"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for name, training in chosen.items():
        start = time.time()
        # the seed of each dictionary: the pipeline's (its index within its own cell is 0 here)
        trainers = [
            DictionaryTrainer(DictionaryJob(spec, args.l1, out_dir=None), training, seed=training.seed * 1000)  # type: ignore[arg-type]
            for spec in specs
        ]
        stream = shard_training_batches(
            activations_dir(cfg, "train"),
            hooks,
            training.batch_size,
            grid.harvest.buffer_tokens,
            training.seed,
        )
        dead_over_steps: list[list[float]] = [[] for _ in trainers]
        for step in range(training.n_steps):
            batch = next(stream)
            for trainer, dead in zip(trainers, dead_over_steps, strict=True):
                if step == 0:
                    trainer.initialise_biases(batch)
                trainer.step(batch, step)
                if step + 1 in readings:
                    dead.append(reconstruction_metrics(trainer.dictionary, heldout)["dead_fraction"])
        for trainer, dead in zip(trainers, dead_over_steps, strict=True):
            final = reconstruction_metrics(trainer.dictionary, heldout)
            spec = trainer.job.spec
            cells = [name, f"L{spec.layer} {spec.kind}", *[f"{d:.3f}" for d in dead], f"{final['l0']:.1f}",
                     f"{final['fvu']:.4f}"]  # fmt: skip
            print("| " + " | ".join(cells) + " |", flush=True)
        print(f"<!-- {name}: {time.time() - start:.0f} s -->", flush=True)
    print(f"\nlambda {args.l1:g}; held-out rows {n_rows}; torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
