"""DVC stage `activations`: one model pass over training tokens, all configured layers' MLP
inputs and outputs saved as safetensors shards (the organism default, `harvest.mode: shards`)."""

from pathlib import Path

import torch

from transcoder_lab import io
from transcoder_lab.activations import context_batches, harvest_batches, needed_hooks, write_shards
from transcoder_lab.config import Config
from transcoder_lab.models import load_model
from transcoder_lab.organism.train import split_contexts
from transcoder_lab.stage import stage_main


def activations_dir(cfg: Config) -> Path:
    return Path(cfg.paths.activations) / cfg.profile.name


def run(cfg: Config) -> dict:
    grid = cfg.profile.dictionaries
    out_dir = activations_dir(cfg)
    if grid.harvest.mode == "stream":  # harvested while training (pretrained profiles)
        manifest = {"mode": "stream", "dataset": grid.harvest.dataset, "n_tokens": 0}
        io.write_json(out_dir / "manifest.json", manifest)
        return manifest
    model = load_model(cfg.profile, cfg.paths.models)
    corpus = Path(cfg.paths.data) / cfg.profile.name / "corpus"
    contexts = split_contexts(corpus, "train", model.cfg.n_ctx, model.tokenizer.bos_token_id)
    n_contexts = -(-grid.harvest.n_tokens // model.cfg.n_ctx)
    if n_contexts > len(contexts):
        raise ValueError(
            f"harvest.n_tokens={grid.harvest.n_tokens} needs {n_contexts} contexts; the corpus has "
            f"{len(contexts)}. Lower profile.dictionaries.harvest.n_tokens or enlarge the corpus."
        )
    batches = harvest_batches(
        model, context_batches(contexts[:n_contexts], grid.harvest.batch_contexts), needed_hooks(grid.layers)
    )
    dtype = getattr(torch, grid.harvest.dtype)
    manifest = write_shards(batches, out_dir, grid.harvest.shard_tokens, dtype)
    print(f"activations: {manifest['n_tokens']:,} tokens x {len(manifest['hooks'])} hooks in {out_dir}")
    return manifest


if __name__ == "__main__":
    stage_main(run)()
