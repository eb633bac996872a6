"""Harvest token-aligned (MLP input, MLP output) activations, and stream them in shuffled batches.

Algorithm:
1. Tokens: BOS-led contexts of n_ctx tokens (transcoder_lab.data.pack_contexts) from the organism
   corpus, or, for a pretrained profile, text streamed with `datasets` and packed the same way.
2. Model pass (`harvest_batches`): `run_with_cache` with a names filter of just the needed hooks
   and `stop_at_layer = max(layer) + 1`, so no layer after the last needed one is computed.
   Each hook's activations are flattened over (batch, position) into [tokens, d], so row i of
   every hook refers to the same token. One pass serves every configured layer and dictionary.
   On a GPU the pass may run under `torch.autocast` (`harvest.autocast_dtype: bfloat16`); the
   rows are returned as float32 either way, and dictionaries always train in float32.
3. Shuffle buffer (`ShuffleBuffer`): keeps up to `capacity` rows; when full it shuffles the whole
   buffer, yields the first half as training batches and keeps the second half, which then mixes
   with the next incoming rows. Memory is bounded by the capacity, never by the token budget.
   Incoming batches are only listed until the buffer is full and then concatenated once, so each
   row is copied a bounded number of times (concatenating every batch onto the buffer as it came
   would copy the whole buffer per batch: terabytes over the paper's 60M tokens).
   All randomness comes from one seeded torch.Generator, so the batch sequence is a function of
   the seed: a resumed run replays it exactly (training.py skips the batches already used).
4. Shards (`write_shards` / `read_shards`): harvested rows saved as safetensors files of
   `shard_tokens` rows per hook (fp16 or fp32) with a manifest.json; reading yields them shard by
   shard in file order, so memory again depends only on the shard and buffer sizes.
5. Devices (`to_device`): rows and tokens go from host to a CUDA device through pinned
   (page-locked) memory with a non-blocking copy, so the transfer overlaps the GPU's work; on the
   CPU nothing is copied. Nothing here assumes a GPU.
6. The DVC stage `activations` (`harvest_activations`): in shards mode, one model pass (step 2)
   over the first training contexts of the organism corpus, written as shards (step 4) to
   `activations/<profile>/train/`, and the same over the held-out split to `heldout/`
   (`harvest_split`); in stream mode (pretrained profiles, harvested while training) only a
   manifest naming the text source.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from jaxtyping import Float, Int
from safetensors import safe_open
from transformer_lens import HookedTransformer

from transcoder_lab import io
from transcoder_lab.config import Config, HarvestMode
from transcoder_lab.data import split_contexts
from transcoder_lab.paths import activations_dir, corpus_dir
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook
from transcoder_lab.sources.models import load_model

Batch = dict[str, Float[torch.Tensor, "tokens d"]]

SHARD_MANIFEST = "manifest.json"


def needed_hooks(layers: Iterable[int]) -> list[str]:
    return [hook for layer in sorted(set(layers)) for hook in (mlp_in_hook(layer), mlp_out_hook(layer))]


def harvested_layers(cfg: Config) -> list[int]:
    """The layers whose MLP input and output the activations stage harvests: the grid's, and every
    layer when the profile lists cross-layer transcoders (`profile.crosslayer.l1_coefficients`;
    they read them all). Where the grid already covers every layer, the shards are unchanged."""
    layers = set(cfg.profile.dictionaries.layers)
    if cfg.profile.crosslayer.get("l1_coefficients"):
        layers |= set(range(cfg.profile.model.n_layers))
    return sorted(layers)


AUTOCAST_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def autocast_dtype(name: str | None) -> torch.dtype | None:
    """`harvest.autocast_dtype` as a torch dtype: None (or "none") runs the model pass in float32."""
    if name is None or name == "none":
        return None
    if name not in AUTOCAST_DTYPES:
        raise ValueError(
            f"profile.dictionaries.harvest.autocast_dtype is '{name}'; use null (float32), "
            f"{' or '.join(AUTOCAST_DTYPES)}."
        )
    return AUTOCAST_DTYPES[name]


def to_device(tensor: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """`tensor` on `device`: from host to CUDA through pinned memory, non-blocking; else `.to`."""
    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)  # the same tensor when it is already there (the CPU path)


def batch_to_device(batch: Batch, device: str | torch.device) -> Batch:
    return {hook: to_device(rows, device) for hook, rows in batch.items()}


@torch.no_grad()
def harvest_batches(
    model: HookedTransformer,
    contexts: Iterable[Int[torch.Tensor, "batch n_ctx"]],
    hooks: Sequence[str],
    autocast: torch.dtype | None = None,
) -> Iterator[Batch]:
    """Per batch of contexts: {hook: [batch * n_ctx, d]} float32 rows on the CPU, aligned across
    hooks. `autocast` (e.g. torch.bfloat16) runs the model pass under torch.autocast."""
    last_layer = max(int(hook.split(".")[1]) for hook in hooks)
    names = set(hooks)
    device = torch.device(model.cfg.device)
    for tokens in contexts:
        precision = (
            torch.autocast(device.type, dtype=autocast) if autocast is not None else contextlib.nullcontext()
        )
        with precision:
            _, cache = model.run_with_cache(
                to_device(tokens, device),
                names_filter=lambda name: name in names,
                stop_at_layer=last_layer + 1,
            )
        yield {hook: cache[hook].reshape(-1, cache[hook].shape[-1]).float().cpu() for hook in hooks}


def context_batches(contexts: Int[torch.Tensor, "n n_ctx"], batch_size: int) -> Iterator[torch.Tensor]:
    for start in range(0, len(contexts), batch_size):
        yield contexts[start : start + batch_size]


class ShuffleBuffer:
    """Mix incoming activation rows; yield shuffled batches of `batch_size` rows of every hook."""

    def __init__(self, capacity: int, batch_size: int, seed: int) -> None:
        if capacity < 2 * batch_size:
            raise ValueError(f"buffer capacity {capacity} must hold at least two batches of {batch_size}")
        self.capacity, self.batch_size = capacity, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.rows: Batch = {}  # the rows kept after the last drain, then (after _gather) all of them
        self.pending: list[Batch] = []  # batches received since, not yet concatenated
        self.n_pending = 0

    def _size(self) -> int:
        return (len(next(iter(self.rows.values()))) if self.rows else 0) + self.n_pending

    def _gather(self) -> None:
        """Concatenate the kept rows and the pending batches, in arrival order (one copy)."""
        if self.pending:
            parts = [self.rows, *self.pending] if self.rows else self.pending
            self.rows = {hook: torch.cat([part[hook] for part in parts]) for hook in parts[0]}
            self.pending, self.n_pending = [], 0

    def _drain_half(self) -> Iterator[Batch]:
        self._gather()
        order = torch.randperm(self._size(), generator=self.generator)
        self.rows = {hook: rows[order] for hook, rows in self.rows.items()}
        half = (self._size() // 2 // self.batch_size) * self.batch_size
        for start in range(0, half, self.batch_size):
            yield {hook: rows[start : start + self.batch_size] for hook, rows in self.rows.items()}
        self.rows = {hook: rows[half:] for hook, rows in self.rows.items()}

    def __call__(self, incoming: Iterable[Batch]) -> Iterator[Batch]:
        for batch in incoming:
            self.pending.append(dict(batch))
            self.n_pending += len(next(iter(batch.values())))
            while self._size() >= self.capacity:
                yield from self._drain_half()
        # The stream has ended: shuffle and yield what is left in whole batches.
        self._gather()
        while self._size() >= self.batch_size:
            order = torch.randperm(self._size(), generator=self.generator)
            n = (self._size() // self.batch_size) * self.batch_size
            for start in range(0, n, self.batch_size):
                index = order[start : start + self.batch_size]
                yield {hook: rows[index] for hook, rows in self.rows.items()}
            self.rows = {hook: rows[order[n:]] for hook, rows in self.rows.items()}


def write_shards(
    batches: Iterable[Batch], out_dir: Path, shard_tokens: int, dtype: torch.dtype = torch.float32
) -> dict:
    """Save harvested rows as shard_00000.safetensors, ... (shard_tokens rows each) + manifest."""
    out_dir = Path(out_dir)
    pending: Batch = {}
    n_shards, n_tokens = 0, 0

    def flush(rows: Batch) -> None:
        nonlocal n_shards, n_tokens
        io.write_safetensors(
            out_dir / f"shard_{n_shards:05d}.safetensors", {h: r.to(dtype) for h, r in rows.items()}
        )
        n_shards += 1
        n_tokens += len(next(iter(rows.values())))

    for batch in batches:
        pending = {h: torch.cat([pending[h], r]) for h, r in batch.items()} if pending else dict(batch)
        while len(next(iter(pending.values()))) >= shard_tokens:
            flush({h: r[:shard_tokens] for h, r in pending.items()})
            pending = {h: r[shard_tokens:] for h, r in pending.items()}
    if pending and len(next(iter(pending.values()))) > 0:
        flush(pending)
    hooks = sorted(pending) if pending else []
    manifest = {
        "n_shards": n_shards,
        "n_tokens": n_tokens,
        "dtype": str(dtype).removeprefix("torch."),
        "hooks": hooks,
    }
    io.write_json(out_dir / SHARD_MANIFEST, manifest)
    return manifest


def read_shards(shard_dir: Path, hooks: Sequence[str] | None = None) -> Iterator[Batch]:
    """Yield each shard's rows (as float32) in file order; only the requested hooks are read."""
    shard_dir = Path(shard_dir)
    if not (shard_dir / SHARD_MANIFEST).exists():
        raise FileNotFoundError(f"{shard_dir} has no {SHARD_MANIFEST}: harvest the activations first")
    for path in sorted(shard_dir.glob("shard_*.safetensors")):
        with safe_open(path, framework="pt") as shard:
            names = [h for h in shard.keys() if hooks is None or h in hooks]
            missing = set(hooks or []) - set(names)
            if missing:
                raise KeyError(f"{path} lacks activations of {sorted(missing)}: re-run the stage activations")
            yield {h: shard.get_tensor(h).float() for h in names}


def shard_training_batches(
    shard_dir: Path, hooks: Sequence[str], batch_size: int, buffer_tokens: int, seed: int
) -> Iterator[Batch]:
    """Endless shuffled batches from shards: epoch e streams every shard through a buffer seeded
    by (seed, e). Deterministic: the same arguments give the same sequence of batches."""
    for epoch in itertools.count():
        buffer = ShuffleBuffer(buffer_tokens, batch_size, seed=seed * 1_000_003 + epoch)
        yield from buffer(read_shards(shard_dir, hooks))


def harvest_split(cfg: Config, model: HookedTransformer, split: str, n_tokens: int) -> dict:
    """Harvest `n_tokens` tokens of the corpus split `split` ("train" or "heldout") as shards:
    1. pack the split's documents into BOS-led contexts of `harvest.context_size` tokens;
    2. keep the first ceil(n_tokens / context_size) of them (a ValueError if the corpus has fewer);
    3. run the model over them in batches of `harvest.batch_contexts` contexts, under autocast when
       `harvest.autocast_dtype` is set, capturing the MLP input and output of every grid layer
       (and of every layer when the profile lists cross-layer transcoders: `harvested_layers`);
    4. write the rows as shards of `harvest.shard_tokens` rows in `harvest.dtype` to
       `activations_dir(cfg, split)`, and return the shard manifest."""
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
    batches = harvest_batches(model, contexts, needed_hooks(harvested_layers(cfg)), precision)
    dtype = getattr(torch, grid.harvest.dtype)
    return write_shards(batches, activations_dir(cfg, split), grid.harvest.shard_tokens, dtype)


def harvest_activations(cfg: Config) -> dict:
    """Step 6 of the module docstring; returns the manifest written to `activations/<profile>/`:
    1. stream mode: the manifest is {"mode": "stream", "text": the profile's text source}; no model
       runs (the dictionaries stage harvests while it trains);
    2. shards mode: load the model, harvest `harvest.n_tokens` training tokens and
       `harvest.heldout_tokens` held-out tokens (`harvest_split`), write the manifest
       {"mode": "shards", "train": ..., "heldout": ...} of both shard manifests and print one line
       with the token counts and the number of hooks."""
    harvest = cfg.profile.dictionaries.harvest
    if harvest.mode == HarvestMode.stream:  # harvested while training (pretrained profiles)
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
