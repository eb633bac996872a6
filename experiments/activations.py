"""DVC stage `activations`: one model pass over corpus tokens, all configured layers' MLP inputs
and outputs saved as safetensors shards (the organism default, `harvest.mode: shards`):
`train/` from the training split for the trainer, `heldout/` from the held-out split for evaluation.
The model runs on `profile.device` ("auto": CUDA when present), under autocast when
`harvest.autocast_dtype` is set; shards are written from float32 rows either way."""

import torch
from transformer_lens import HookedTransformer

from transcoder_lab import io
from transcoder_lab.activations import (
    autocast_dtype,
    context_batches,
    harvest_batches,
    needed_hooks,
    write_shards,
)
from transcoder_lab.config import Config
from transcoder_lab.models import load_model
from transcoder_lab.organism.train import split_contexts
from transcoder_lab.paths import activations_dir, corpus_dir
from transcoder_lab.stage import stage_main


def harvest_split(cfg: Config, model: HookedTransformer, split: str, n_tokens: int) -> dict:
    grid = cfg.profile.dictionaries
    context_size = grid.harvest.context_size
    contexts = split_contexts(corpus_dir(cfg), split, context_size, model.tokenizer.bos_token_id)
    n_contexts = -(-n_tokens // context_size)
    if n_contexts > len(contexts):
        raise ValueError(
            f"harvesting {n_tokens} tokens of the {split} split needs {n_contexts} contexts; the corpus has "
            f"{len(contexts)}. Lower profile.dictionaries.harvest token counts or enlarge the corpus."
        )
    contexts = context_batches(contexts[:n_contexts], grid.harvest.batch_contexts)
    precision = autocast_dtype(grid.harvest.autocast_dtype)
    batches = harvest_batches(model, contexts, needed_hooks(grid.layers), precision)
    dtype = getattr(torch, grid.harvest.dtype)
    return write_shards(batches, activations_dir(cfg, split), grid.harvest.shard_tokens, dtype)


def run(cfg: Config) -> dict:
    harvest = cfg.profile.dictionaries.harvest
    if harvest.mode == "stream":  # harvested while training (pretrained profiles)
        source = cfg.profile.text
        manifest = {"mode": "stream", "text": vars(source) if source is not None else None}
        io.write_json(activations_dir(cfg) / "manifest.json", manifest)
        return manifest
    model = load_model(cfg.profile, cfg.paths.models)
    manifest = {
        "mode": "shards",
        "train": harvest_split(cfg, model, "train", harvest.n_tokens),
        "heldout": harvest_split(cfg, model, "heldout", harvest.heldout_tokens),
    }
    io.write_json(activations_dir(cfg) / "manifest.json", manifest)
    print(
        f"activations: {manifest['train']['n_tokens']:,} training and {manifest['heldout']['n_tokens']:,} "
        f"held-out tokens x {len(manifest['train']['hooks'])} hooks"
    )
    return manifest


if __name__ == "__main__":
    stage_main(run)()
