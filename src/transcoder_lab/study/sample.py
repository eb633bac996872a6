"""Sampling the blind study's features: two arms at matched sparsity, live features, a fixed seed.

1. Arms (`study_arms`). The transcoder arm is `L<layer>_transcoder` at `study.transcoder_l1`. The
   SAE arm is `L<layer>_sae_mlp_in`, an SAE on the same MLP input, at the one of
   `profile.dictionaries.l1_coefficients` whose held-out L0 (`heldout_metrics.json`, written by the
   dictionaries stage) is closest to the transcoder's; both L0s and FVUs are recorded.
2. Scanned tokens (`scan_contexts`): the first BOS-led contexts of `study.split` of the corpus,
   with each token's ground-truth label (organism profiles), or of the held-out document stream
   that `evaluate` uses (pretrained profiles, no labels), up to `study.n_tokens` tokens. BOS
   tokens are not counted: they never make a feature "activating" and never centre an example.
3. Live features (`live_features`): log10 firing frequency saved with the dictionary above
   `min_log10_frequency` (the full-power rating, transcoder_lab.study.full_power, rates them all).
4. Per arm, a permutation of the live features drawn from `torch.Generator` seeded with
   `seed` (transcoder) or `seed + 1` (SAE) is walked in order: a feature is kept when it is active
   (activation > 0) on at least `min_activating_tokens` counted scanned tokens, otherwise it is
   replaced by the next one, until `n_per_arm` are kept. Fewer than that is an error naming the
   numbers and the settings to change. Both arms therefore have the same number of features.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from transcoder_lab.config import Config, DictionaryKind
from transcoder_lab.data import BOS_LABEL, load_split, pack_contexts
from transcoder_lab.dictionaries import Dictionary, load_dictionary, load_log10_frequency
from transcoder_lab.paths import HELDOUT_METRICS, corpus_dir, dictionary_dir
from transcoder_lab.sources.text_source import heldout_contexts

ARMS = ("transcoder", "sae")  # the arm names the key uses; the packet never contains them
ARM_KINDS = {"transcoder": DictionaryKind.transcoder.value, "sae": DictionaryKind.sae_mlp_in.value}


class StudyError(ValueError):
    """A study that cannot be built or analysed as configured; the message names the fix."""


@dataclass
class Arm:
    name: str  # "transcoder" | "sae"
    layer: int
    kind: str
    l1_coefficient: float
    path: str
    l0: float  # held-out L0 from heldout_metrics.json
    fvu: float | None
    d_sae: int = 0
    n_live: int = 0
    l0_candidates: dict[str, float] = field(default_factory=dict)  # SAE arm: l1 -> L0 of every one seen

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ScanSet:
    """The scanned tokens: contexts, which tokens count (not BOS), and labels where known."""

    contexts: Int[Tensor, "n n_ctx"]
    counted: Bool[Tensor, "n n_ctx"]
    labels: Int[Tensor, "n n_ctx"] | None = None
    label_names: list[str] | None = None
    source: str = ""

    @property
    def n_counted(self) -> int:
        return int(self.counted.sum())


@dataclass
class ArmSample:
    arm: Arm
    features: list[int]
    replaced: list[int]  # live features skipped for too few activating tokens
    n_activating: dict[int, int]  # kept feature -> activating counted tokens


def _heldout_metrics(path: Path) -> dict:
    metrics = path / HELDOUT_METRICS
    if not metrics.is_file():
        raise StudyError(
            f"{metrics} is missing: the study needs the dictionaries stage's outputs. Run "
            f"`dvc repro dictionaries` (the cell {path.parent.name} must be in profile.dictionaries.cells)."
        )
    return json.loads(metrics.read_text())


def study_arms(cfg: Config) -> dict[str, Arm]:
    """The transcoder arm at study.transcoder_l1 and the SAE (MLP input) arm at the matched L0."""
    study, grid = cfg.profile.study, cfg.profile.dictionaries
    cells = set(grid.cells)
    for name, kind in ARM_KINDS.items():
        if f"L{study.layer}_{kind}" not in cells:
            raise StudyError(
                f"profile.study.layer is {study.layer} but profile.dictionaries.cells has no "
                f"'L{study.layer}_{kind}' (the {name} arm); add it to the cells or change the layer."
            )
    if study.transcoder_l1 not in grid.l1_coefficients:
        raise StudyError(
            f"profile.study.transcoder_l1 ({study.transcoder_l1:g}) is not one of "
            f"profile.dictionaries.l1_coefficients {grid.l1_coefficients}; pick one of those."
        )
    tc_path = dictionary_dir(cfg, study.layer, ARM_KINDS["transcoder"], study.transcoder_l1)
    tc_metrics = _heldout_metrics(tc_path)
    transcoder = Arm(
        "transcoder", study.layer, ARM_KINDS["transcoder"], study.transcoder_l1, str(tc_path),
        float(tc_metrics["l0"]), tc_metrics.get("fvu"),
    )  # fmt: skip
    candidates = {}
    for l1 in grid.l1_coefficients:
        path = dictionary_dir(cfg, study.layer, ARM_KINDS["sae"], l1)
        candidates[l1] = (_heldout_metrics(path), path)
    best = min(candidates, key=lambda l1: (abs(float(candidates[l1][0]["l0"]) - transcoder.l0), l1))
    metrics, path = candidates[best]
    sae = Arm(
        "sae", study.layer, ARM_KINDS["sae"], best, str(path), float(metrics["l0"]), metrics.get("fvu"),
        l0_candidates={f"{l1:g}": float(m["l0"]) for l1, (m, _) in candidates.items()},
    )  # fmt: skip
    return {"transcoder": transcoder, "sae": sae}


def scan_contexts(cfg: Config, model: HookedTransformer) -> ScanSet:
    """The first contexts of the scanned text, up to study.n_tokens tokens (see the module docstring)."""
    study = cfg.profile.study
    n_ctx = cfg.profile.dictionaries.harvest.context_size
    bos = model.tokenizer.bos_token_id
    n_contexts = max(1, study.n_tokens // n_ctx)
    if cfg.profile.corpus is not None:
        directory = corpus_dir(cfg)
        split = load_split(directory, study.split)
        contexts, labels = pack_contexts(split["tokens"], split["doc_offsets"], n_ctx, bos, split["labels"])
        assert labels is not None
        names = json.loads((directory / "labels.json").read_text())
        contexts_t = torch.from_numpy(contexts[:n_contexts])
        labels_t = torch.from_numpy(labels[:n_contexts])
        counted = labels_t != BOS_LABEL
        return ScanSet(contexts_t, counted, labels_t, names, f"corpus {study.split} split")
    source = cfg.profile.text
    assert source is not None  # load_config requires a text source for pretrained profiles
    contexts_t = heldout_contexts(cfg, model.tokenizer, n_contexts, n_ctx)
    counted = contexts_t != bos
    counted[:, 0] = False
    return ScanSet(contexts_t, counted, None, None, f"{source.repo} held-out stream")


def hook_inputs(
    model: HookedTransformer, hook: str, contexts: Int[Tensor, "n n_ctx"], batch_size: int
) -> Float[Tensor, "n n_ctx d_in"]:
    """The activations at `hook` (a dictionary's input) on every context, from one model pass."""
    layer = int(hook.split(".")[1])
    chunks = []
    with torch.no_grad():
        for start in range(0, len(contexts), batch_size):
            tokens = contexts[start : start + batch_size].to(model.cfg.device)
            _, cache = model.run_with_cache(
                tokens, names_filter=lambda name: name == hook, stop_at_layer=layer + 1
            )
            chunks.append(cache[hook].float().cpu())
    return torch.cat(chunks)


def encode(
    dictionary: Dictionary, x: Float[Tensor, "n n_ctx d_in"], features: list[int] | None, batch_size: int
) -> Float[Tensor, "n n_ctx f"]:
    """`dictionary.encode(x)[..., features]` (all features when None), chunk by chunk."""
    chunks = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            acts = dictionary.encode(x[start : start + batch_size].to(dictionary.device, dictionary.dtype))
            chunks.append((acts if features is None else acts[..., features]).float().cpu())
    return torch.cat(chunks)


def activating_counts(
    dictionary: Dictionary,
    x: Float[Tensor, "n n_ctx d_in"],
    counted: Bool[Tensor, "n n_ctx"],
    batch_size: int,
) -> Int[Tensor, " d_sae"]:
    """Per feature, the number of counted scanned tokens where it is active (activation > 0)."""
    counts = torch.zeros(dictionary.spec.d_sae, dtype=torch.long)
    for start in range(0, len(x), batch_size):
        acts = encode(dictionary, x[start : start + batch_size], None, batch_size)
        counts += ((acts > 0) & counted[start : start + batch_size, :, None]).sum(dim=(0, 1))
    return counts


def live_features(path: str | Path, min_log10_frequency: float) -> Int[Tensor, " n_live"]:
    """Step 3: the features (ascending) whose saved log10 firing frequency is above the threshold."""
    return torch.nonzero(load_log10_frequency(path) > min_log10_frequency).flatten()


def sample_arm(
    arm: Arm,
    dictionary: Dictionary,
    counts: Int[Tensor, " d_sae"],
    cfg: Config,
    arm_index: int,
    n_counted: int,
) -> ArmSample:
    """Walk a seeded permutation of the live features, keeping those with enough activating tokens."""
    study = cfg.profile.study
    live = live_features(arm.path, study.min_log10_frequency)
    arm.d_sae, arm.n_live = dictionary.spec.d_sae, len(live)
    generator = torch.Generator().manual_seed(study.seed + arm_index)
    order = live[torch.randperm(len(live), generator=generator)].tolist()
    kept, replaced = [], []
    for feature in order:
        if len(kept) == study.n_per_arm:
            break
        (kept if int(counts[feature]) >= study.min_activating_tokens else replaced).append(feature)
    if len(kept) < study.n_per_arm:
        raise StudyError(
            f"the {arm.name} arm ({arm.path}) has {len(kept)} live features active on at least "
            f"{study.min_activating_tokens} of the {n_counted} scanned tokens "
            f"(of {len(live)} live); profile.study.n_per_arm asks for {study.n_per_arm}. Lower n_per_arm or "
            "min_activating_tokens, or raise profile.study.n_tokens."
        )
    return ArmSample(arm, kept, replaced, {f: int(counts[f]) for f in kept})


def sample_features(
    cfg: Config, model: HookedTransformer, scan: ScanSet
) -> tuple[dict[str, ArmSample], dict[str, Dictionary], dict[str, Float[Tensor, "n n_ctx f"]]]:
    """Both arms' samples (steps 1, 3 and 4), their dictionaries, and the sampled features'
    activations on the scanned contexts. Both arms read the same MLP input: one model pass."""
    batch_size = cfg.profile.study.batch_size
    arms = study_arms(cfg)
    inputs: dict[str, Tensor] = {}
    samples, dictionaries, activations = {}, {}, {}
    for index, (name, arm) in enumerate(arms.items()):
        dictionary = load_dictionary(arm.path, model.cfg.device)
        hook = dictionary.spec.hook_in
        if hook not in inputs:
            inputs[hook] = hook_inputs(model, hook, scan.contexts, batch_size)
        counts = activating_counts(dictionary, inputs[hook], scan.counted, batch_size)
        samples[name] = sample_arm(arm, dictionary, counts, cfg, index, scan.n_counted)
        dictionaries[name] = dictionary
        activations[name] = encode(dictionary, inputs[hook], samples[name].features, batch_size)
    return samples, dictionaries, activations
