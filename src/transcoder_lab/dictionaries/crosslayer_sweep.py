"""Train a profile's cross-layer transcoders: one CLT over every layer per L1 coefficient.

Algorithm (`train_crosslayer_sweep`, the body of the DVC stage `crosslayer`, one instance per
coefficient):
1. Settings (`crosslayer_config`, crosslayer.py): the profile's `crosslayer:` block. Each CLT has
   `expansion_factor * d_model` features per layer (the per-layer transcoders' width at the
   organism's expansion factors), the block's recipe and training settings, and its own lambda
   (`jobs`).
2. Batches: the per-layer transcoders' stream (`grid.batch_stream`: the activations stage's shards
   re-read epoch after epoch through the shuffle buffer seeded with
   profile.dictionaries.training's seed, in its batch_size), restricted to every layer's MLP input
   and output. The buffer's order depends only on the row count and the seed, so a CLT sees the
   same tokens in the same order as every per-layer transcoder. The activations stage harvests
   every layer when the profile lists CLTs (activations.harvested_layers).
3. `crosslayer_training.train_crosslayer` trains and saves each CLT to
   `dictionaries/<profile>/clt/l1_<lambda>/` (crosslayer.py's format), checkpointing to
   `checkpoints/<profile>/crosslayer/l1_<lambda>/`. Several coefficients in one run train one after
   the other, each on its own pass.
4. Held-out metrics beside each CLT (`heldout_metrics.json`, `heldout_metrics`): per layer, the FVU
   of that MLP output's reconstruction, the L0 of that layer's features and their dead, live and
   dense fractions, on the held-out rows (`grid.heldout_batches`); with the total L0 (features
   active per token summed over layers) and the mean FVU over layers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from transcoder_lab import io
from transcoder_lab.config import Config
from transcoder_lab.dictionaries.activations import Batch, batch_to_device
from transcoder_lab.dictionaries.crosslayer import (
    CrossLayerSpec,
    CrossLayerTrainingConfig,
    CrossLayerTranscoder,
    crosslayer_config,
    load_crosslayer,
)
from transcoder_lab.dictionaries.crosslayer_training import CrossLayerResult, stack_layers, train_crosslayer
from transcoder_lab.dictionaries.evaluation import ReconstructionStats
from transcoder_lab.dictionaries.grid import batch_stream, heldout_batches
from transcoder_lab.paths import HELDOUT_METRICS, checkpoint_dir, crosslayer_dir
from transcoder_lab.sources.models import resolve_device

HELDOUT_CHUNK_ROWS = 4096  # rows per held-out forward pass: [n_layers, rows, d_sae] stays small


@dataclass
class CrossLayerJob:
    spec: CrossLayerSpec
    training: CrossLayerTrainingConfig  # sparsity_coefficient: this CLT's lambda
    out_dir: Path

    @property
    def name(self) -> str:
        return f"clt l1={self.training.sparsity_coefficient:g}"


def jobs(cfg: Config) -> list[CrossLayerJob]:
    """Step 1: one job per `profile.crosslayer.l1_coefficients` value, in that order."""
    block, model = crosslayer_config(cfg), cfg.profile.model
    spec = CrossLayerSpec(
        n_layers=model.n_layers,
        d_in=model.d_model,
        d_out=model.d_model,
        d_sae=block.expansion_factor * model.d_model,
        recipe=block.recipe,
        model_name=model.pretrained_name or cfg.profile.name,
    )
    return [
        CrossLayerJob(
            spec, dataclasses.replace(block.training, sparsity_coefficient=l1), crosslayer_dir(cfg, l1)
        )
        for l1 in block.l1_coefficients
    ]


@torch.no_grad()
def heldout_metrics(clt: CrossLayerTranscoder, batches: Iterable[Batch]) -> dict:
    """Step 4: per-layer reconstruction metrics (evaluation.ReconstructionStats) of `clt` on the
    held-out rows, read in chunks of HELDOUT_CHUNK_ROWS, and their total L0 and mean FVU."""
    spec = clt.spec
    stats = [ReconstructionStats(spec.d_sae, spec.d_out) for _ in range(spec.n_layers)]
    for batch in batches:
        x, y = stack_layers(batch, spec)
        for start in range(0, x.shape[1], HELDOUT_CHUNK_ROWS):
            rows = slice(start, start + HELDOUT_CHUNK_ROWS)
            y_hat, z = clt(x[:, rows])
            for layer, layer_stats in enumerate(stats):
                layer_stats.update(y[layer, rows], y_hat[layer], z[layer])
    by_layer = [layer_stats.result() for layer_stats in stats]
    return {
        "l0": sum(layer["l0"] for layer in by_layer),
        "fvu_mean": sum(layer["fvu"] for layer in by_layer) / len(by_layer),
        "dead_fraction": sum(layer["dead_fraction"] for layer in by_layer) / len(by_layer),
        "by_layer": by_layer,
    }


def train_crosslayer_sweep(cfg: Config) -> list[CrossLayerResult]:
    """Steps 1-4 for every CLT of the profile; prints one line per CLT."""
    todo = jobs(cfg)
    if not todo:
        print("profile.crosslayer.l1_coefficients is empty: no cross-layer transcoder to train")
        return []
    spec, device = todo[0].spec, resolve_device(cfg.profile.device)
    hooks = spec.hooks_in + spec.hooks_out
    batches, data_id = batch_stream(cfg, hooks)
    results = []
    for job in todo:
        print(f"training {job.name} ({spec.n_layers} layers x {spec.d_sae} features) on {device}")
        checkpoints = checkpoint_dir(cfg, "crosslayer", job.out_dir.name)
        result = train_crosslayer(
            job.spec, batches, job.training, job.out_dir, checkpoints, data_id, device=device
        )
        results.append(result)
        heldout = (batch_to_device(batch, device) for batch in heldout_batches(cfg, hooks))
        metrics = heldout_metrics(load_crosslayer(job.out_dir, device), heldout)
        io.write_json(job.out_dir / HELDOUT_METRICS, {"name": job.name, **metrics})
        per_layer = ", ".join(f"{layer['fvu']:.3f}" for layer in metrics["by_layer"])
        print(
            f"{job.name}: {result.steps} steps in {result.seconds:.0f} s; held-out L0 {metrics['l0']:.1f} "
            f"in total, FVU by layer {per_layer}, dead {metrics['dead_fraction']:.3f}"
        )
    return results
