"""Train the configured grid of dictionaries: every cell ("L<layer>_<arm>") at every sparsity.

Algorithm (`train_grid`, the body of the DVC stage `dictionaries`):
1. The jobs: every listed cell x every sparsity of its arm (`jobs`; L1 coefficients, or TopK k),
   grouped by seed: a seed replica "L2_transcoder_seed<n>" trains as if training.seed were
   training.seed + n, which changes its initialisation (training.job_seeds) and its batch order,
   so each seed is its own pass (steps 2-3), seed 0 first. A recipe replica "L2_transcoder_paper"
   trains with `dictionaries.recipes.paper`'s settings over `training` (`seed_training`): the same
   seed's initialisation and batches, its own pass after the seed's plain cells (`passes`).
2. One batch stream per seed for all of its jobs (`batch_stream`): the activations stage's shards, or (stream
   mode, the paper profile) one model pass over streamed text that harvests every needed hook at
   once, so the forward cost is paid once however many dictionaries train.
3. `train_dictionaries` trains them side by side on `profile.device` ("auto": CUDA when present)
   and saves each; the checkpoints go to a folder named after the grid (`checkpoint_name`).
4. Held-out FVU and L0 are written beside each dictionary (`heldout_metrics.json`, which the blind
   study reads to match the arms' sparsity): on the held-out shards, or in stream mode on the
   held-out contexts that `evaluate` uses (one model pass, shared by every dictionary;
   `heldout_batches`).

Each dictionary's weights do not depend on which other cells share its pass (training.job_seeds),
so one pass over every cell trains what the per-cell DVC stage instances train.
"""

import dataclasses
import hashlib
from collections.abc import Callable, Iterator

from transformer_lens import HookedTransformer

from transcoder_lab import io
from transcoder_lab.config import ARMS, Architecture, Config, DictionaryTrainingConfig, HarvestMode
from transcoder_lab.data import stream_contexts, tokenized_texts
from transcoder_lab.dictionaries.activations import (
    Batch,
    ShuffleBuffer,
    autocast_dtype,
    batch_to_device,
    context_batches,
    harvest_batches,
    read_shards,
    shard_training_batches,
)
from transcoder_lab.dictionaries.dictionary import DictionarySpec, load_dictionary
from transcoder_lab.dictionaries.evaluation import reconstruction_metrics
from transcoder_lab.dictionaries.training import DictionaryJob, JobResult, train_dictionaries
from transcoder_lab.paths import HELDOUT_METRICS, activations_dir, checkpoint_dir, dictionary_dir
from transcoder_lab.sources.models import load_model, resolve_device
from transcoder_lab.sources.text_source import heldout_contexts, text_documents


def passes(cfg: Config) -> list[tuple[int, str | None]]:
    """The (seed, recipe) replicas the cells name, each one training pass: seeds ascending, each
    seed's plain cells (recipe None) before its recipe replicas."""
    named = {(seed, recipe) for *_, seed, recipe in cfg.profile.dictionaries.seeded_cells}
    return sorted(named, key=lambda seed_recipe: (seed_recipe[0], seed_recipe[1] or ""))


def jobs(cfg: Config, seed: int = 0, recipe: str | None = None) -> list[DictionaryJob]:
    """Step 1: one job per cell of seed replica `seed` and recipe `recipe` (None: the profile's own)
    and sparsity of its arm's sweep, cell by cell, each saving to its dictionary_dir."""
    grid, model = cfg.profile.dictionaries, cfg.profile.model
    out = []
    for layer, arm_name, cell_seed, cell_recipe in grid.seeded_cells:
        if (cell_seed, cell_recipe) != (seed, recipe):
            continue
        arm = ARMS[arm_name]
        for sparsity in grid.sweep(arm_name):
            spec = DictionarySpec(
                kind=arm.kind,
                layer=layer,
                d_in=model.d_model,
                d_sae=grid.expansion_factor * model.d_model,
                d_out=model.d_model,
                architecture=arm.architecture,
                k=sparsity.k,
                skip=arm.skip,
                model_name=model.pretrained_name or cfg.profile.name,
            )
            out_dir = dictionary_dir(cfg, layer, arm_name, sparsity, seed, recipe)
            out.append(DictionaryJob(spec, sparsity.l1_coefficient, out_dir))
    return out


def seed_training(cfg: Config, seed: int, recipe: str | None = None) -> DictionaryTrainingConfig:
    """The trainer's settings for seed replica `seed` of recipe `recipe`: training.seed shifted by
    the seed, and the recipe's settings (dictionaries.recipes; None: none), nothing else."""
    training = cfg.profile.dictionaries.with_recipe(recipe)
    return dataclasses.replace(training, seed=training.seed + seed)


def batch_stream(
    cfg: Config,
    hooks: list[str],
    model: HookedTransformer | None = None,
    seed: int = 0,
    recipe: str | None = None,
) -> tuple[Callable[[], Iterator[Batch]], str]:
    """Step 2: a factory of the (deterministic) batch stream of seed replica `seed` (of `recipe`: the
    same stream unless the recipe sets the batch size), and a name for it.

    shards: the activations stage's files, re-read epoch after epoch. stream: `model` (loaded here
    if not given) runs on documents read from the hub (the paper profiles), feeding every dictionary.
    """
    harvest, training = cfg.profile.dictionaries.harvest, seed_training(cfg, seed, recipe)
    if harvest.mode == HarvestMode.shards:
        shard_dir = activations_dir(cfg, "train")

        def from_shards() -> Iterator[Batch]:
            return shard_training_batches(
                shard_dir, hooks, training.batch_size, harvest.buffer_tokens, training.seed
            )

        # the first shard's content stands for the harvest (same model, corpus and hooks, or not)
        first_shard = min(shard_dir.glob("shard_*.safetensors"), default=None)
        content = io.sha256_file(first_shard) if first_shard else "no shards"
        return from_shards, f"shards:{shard_dir}:{content}"
    source = cfg.profile.text
    if harvest.mode != HarvestMode.stream or source is None:
        raise ValueError(
            "profile.dictionaries.harvest: use mode 'shards' (organism profiles), or mode 'stream' "
            "with a profile.text source (pretrained profiles)"
        )
    model = model or load_model(cfg.profile, cfg.paths.models)
    bos = model.tokenizer.bos_token_id

    def from_hub() -> Iterator[Batch]:
        tokens = tokenized_texts(text_documents(source), model.tokenizer)
        contexts = stream_contexts(tokens, harvest.context_size, bos, harvest.batch_contexts)
        buffer = ShuffleBuffer(harvest.buffer_tokens, training.batch_size, training.seed)
        return buffer(harvest_batches(model, contexts, hooks, autocast_dtype(harvest.autocast_dtype)))

    return from_hub, f"stream:{source.repo}@{source.revision}:{source.files}:{harvest.context_size}"


def heldout_batches(cfg: Config, hooks: list[str], model: HookedTransformer | None = None) -> list[Batch]:
    """Step 4's rows, which every dictionary is measured on: the activations stage's held-out shards,
    or (stream mode) one model pass over the held-out contexts that `evaluate` splices on."""
    harvest = cfg.profile.dictionaries.harvest
    if harvest.mode == HarvestMode.shards:
        return list(read_shards(activations_dir(cfg, "heldout"), hooks))
    model = model or load_model(cfg.profile, cfg.paths.models)
    n_contexts = cfg.profile.evaluation.n_contexts
    contexts = context_batches(
        heldout_contexts(cfg, model.tokenizer, n_contexts, harvest.context_size), harvest.batch_contexts
    )
    return list(harvest_batches(model, contexts, hooks, autocast_dtype(harvest.autocast_dtype)))


def checkpoint_name(cfg: Config) -> str:
    """The checkpoint folder of this grid: its cells and L1 values, so concurrent sweep jobs (one
    L1 value each) never share a checkpoint; a long name is replaced by its hash."""
    grid = cfg.profile.dictionaries
    name = "-".join(grid.cells) + "__l1_" + "-".join(f"{l1:g}" for l1 in grid.l1_coefficients)
    if any(ARMS[arm].architecture == Architecture.topk for _, arm in grid.parsed_cells):
        name += "__k_" + "-".join(str(k) for k in grid.topk_k)
    return name if len(name) <= 120 else "grid_" + hashlib.sha256(name.encode()).hexdigest()[:16]


def train_grid(cfg: Config) -> list[JobResult]:
    """Steps 1-4: train every job of the grid on one shared stream per seed, save each dictionary
    with its held-out metrics, and print one line per dictionary."""
    grid = cfg.profile.dictionaries
    # stream mode: one model for the training streams and the held-out rows (shards need none)
    model = load_model(cfg.profile, cfg.paths.models) if grid.harvest.mode == HarvestMode.stream else None
    device = resolve_device(cfg.profile.device)
    results = []
    for seed, recipe in passes(cfg):
        results += _train_seed(cfg, seed, model, device, recipe)
    return results


def _train_seed(
    cfg: Config, seed: int, model: HookedTransformer | None, device: str, recipe: str | None = None
) -> list[JobResult]:
    """Steps 2-4 for the cells of one seed replica of one recipe."""
    grid = cfg.profile.dictionaries
    todo = jobs(cfg, seed, recipe)
    hooks = sorted({hook for job in todo for hook in (job.spec.hook_in, job.spec.hook_out)})
    batches, data_id = batch_stream(cfg, hooks, model, seed, recipe)
    # seed 0 keeps the folder it always had; each replica resumes from its own
    name = checkpoint_name(cfg) + (f"__seed{seed}" if seed else "") + (f"__{recipe}" if recipe else "")
    checkpoints = checkpoint_dir(cfg, "dictionaries", name)
    n_cells = sum(
        1 for *_, cell_seed, cell_recipe in grid.seeded_cells if (cell_seed, cell_recipe) == (seed, recipe)
    )
    label = f"seed {seed}" + (f", recipe {recipe}" if recipe else "")
    print(f"training {len(todo)} dictionaries of {n_cells} cells ({label}) on one pass, on {device}")
    training = seed_training(cfg, seed, recipe)
    results = train_dictionaries(todo, batches, training, checkpoints, data_id=data_id, device=device)
    heldout = heldout_batches(cfg, hooks, model)  # held-out FVU and L0 beside each saved dictionary
    for job in todo:
        on_device = (batch_to_device(batch, device) for batch in heldout)
        metrics = reconstruction_metrics(load_dictionary(job.out_dir, device), on_device)
        io.write_json(job.out_dir / HELDOUT_METRICS, {"name": job.name, **metrics})
        print(f"{job.name}: held-out FVU {metrics['fvu']:.4f}, L0 {metrics['l0']:.1f}")
    for r in results:
        print(f"{r.name}: mse {r.final_mse_loss:.4f}, L0 {r.final_l0:.1f}, dead {r.dead_fraction:.2f}")
    return results
