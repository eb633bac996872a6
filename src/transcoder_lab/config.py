"""Typed configuration: the schema every composed Hydra config is checked against.

`conf/` holds the YAML (a `profile` group: organism, tiny, gpt2_small); `params.yaml` is its
composition, written by DVC. Every stage reads params.yaml through `load_config`, which merges
it into these dataclasses, so an unknown key or a value of the wrong type stops the run with an
error that names the key, before any work is done.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = REPO_ROOT / "conf"
PARAMS_FILE = REPO_ROOT / "params.yaml"


class ConfigError(ValueError):
    """A config that does not match the schema; the message names the key and the fix."""


class ModelSource(StrEnum):
    """Where the transformer comes from. Members are named as their values, as are all this module's
    StrEnums: OmegaConf reads a YAML value by member name."""

    organism = "organism"  # trained here on the organism's corpus
    pretrained = "pretrained"  # a hub model (pretrained_name)


@dataclass
class ModelConfig:
    """The transformer. `source: organism` trains it here; `source: pretrained` loads a hub model."""

    source: ModelSource = ModelSource.organism
    pretrained_name: str | None = None  # e.g. "gpt2" when source == pretrained
    n_layers: int = 4
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    n_ctx: int = 128  # the vocabulary size comes from the tokenizer
    act_fn: str = "gelu_new"

    def check(self) -> None:
        """The checks across its fields, run by load_config (not __post_init__: code builds other
        shapes on purpose, e.g. square MLP weights in tests/sources/test_models.py)."""
        if self.d_model != self.n_heads * self.d_head:
            raise ConfigError(
                f"profile.model: d_model ({self.d_model}) must equal n_heads * d_head "
                f"({self.n_heads} * {self.d_head})."
            )
        if self.d_mlp == self.d_model:
            # TransformerLens's fold_ln changes what a model with square MLP weights computes (a trained
            # organism with d_mlp = d_model = 128 failed the processing check at 6.6 nats): fail first
            raise ConfigError(
                f"profile.model: d_mlp equals d_model ({self.d_model}); TransformerLens's weight "
                "processing (fold_ln) is wrong for square MLP weights. Use a d_mlp other than d_model."
            )
        if self.source == ModelSource.pretrained and not self.pretrained_name:
            raise ConfigError(
                "profile.model.source is 'pretrained' but profile.model.pretrained_name is not set; "
                "name the hub model to load (e.g. pretrained_name: gpt2)."
            )


@dataclass
class CorpusConfig:
    """The organism's procedurally generated corpus (see transcoder_lab.organism.corpus)."""

    seed: int = 0
    n_train_documents: int = 60_000
    n_heldout_documents: int = 2_000
    sentences_per_document: list[int] = field(default_factory=lambda: [4, 12])
    # Share of sentences drawn from each planted mechanism (a module of
    # transcoder_lab.organism.mechanisms, or an importable module path), in draw order; the
    # rest is background grammar. The order also fixes the label ids.
    shares: dict[str, float] = field(
        default_factory=lambda: {
            "greater_than": 0.25,
            "citation": 0.08,
            "prose_semicolon": 0.06,
            "caught": 0.06,
            "estimate": 0.05,
        }
    )
    n_nouns: int = 2000
    n_verbs: int = 700
    n_adjectives: int = 600
    n_surnames: int = 400
    vocab_size: int = 4096  # tokenizer vocabulary (BPE merges stop there)


@dataclass
class TextSourceConfig:
    """Where a pretrained profile's text comes from: parquet files of a hub dataset repo, read in
    the sorted order of their names (transcoder_lab.data.text_documents). Each file is fetched into
    the Hugging Face cache once, so later runs work offline (HF_HUB_OFFLINE=1)."""

    repo: str = "Skylion007/openwebtext"
    # The hub's parquet conversion branch: script-only dataset repos have parquet files only there.
    revision: str = "refs/convert/parquet"
    files: str = "plain_text/*train/*.parquet"  # glob over the repo's paths at `revision`
    text_field: str = "text"
    heldout_skip_documents: int = 200_000  # documents skipped before the held-out set


@dataclass
class TrainingConfig:
    """Next-token training of the organism."""

    seed: int = 0
    batch_size: int = 32  # contexts per step
    lr: float = 2e-3
    min_lr_fraction: float = 0.05  # cosine decay ends at lr * min_lr_fraction
    warmup_steps: int = 100
    weight_decay: float = 0.01
    max_steps: int = 1500
    checkpoint_every: int = 200


@dataclass
class BehaviourConfig:
    """Held-out behavioural checks of the planted mechanisms."""

    seed: int = 1
    n_prompts: int = 200  # per mechanism
    batch_size: int = 64


class HarvestMode(StrEnum):
    shards = "shards"  # written once, DVC-tracked
    stream = "stream"  # harvested while training


class ShardDtype(StrEnum):
    """The dtype of harvested rows on disk (a torch dtype's name); training reads float32."""

    float16 = "float16"
    float32 = "float32"


class AutocastDtype(StrEnum):
    """The torch.autocast dtype of the harvesting model pass (a torch dtype's name)."""

    bfloat16 = "bfloat16"
    float16 = "float16"


@dataclass
class HarvestConfig:
    """Which tokens feed the dictionaries and how their activations are stored."""

    mode: HarvestMode = HarvestMode.shards
    n_tokens: int = 500_000  # activations harvested per hook (shards mode)
    heldout_tokens: int = 65_536  # from the held-out split, for evaluation
    context_size: int = 128  # tokens per BOS-led context
    batch_contexts: int = 32  # contexts per model pass
    shard_tokens: int = 65_536
    dtype: ShardDtype = ShardDtype.float16  # shards on disk; training reads float32
    buffer_tokens: int = 65_536  # shuffle buffer capacity
    # Precision of the model pass while harvesting: null (float32) | bfloat16 | float16, under
    # torch.autocast (meant for GPUs); harvested rows and the dictionaries stay float32.
    autocast_dtype: AutocastDtype | None = None


class MatmulPrecision(StrEnum):
    """The precision of the dictionaries' float32 matrix products (torch.set_float32_matmul_precision).
    Members are named as their values: OmegaConf reads a YAML value by member name."""

    highest = "highest"  # float32 throughout (the default: the committed numbers)
    high = "high"  # TF32 on CUDA GPUs from Ampere on (10-bit mantissa products); float32 on CPUs
    medium = "medium"  # bfloat16 products where the hardware has them (GPUs; CPUs with AMX or AVX512-BF16)


class DeadFeatures(StrEnum):
    """What the trainer does about dead features (dictionaries/training.py's docstring)."""

    ghost_grads = "ghost_grads"
    resample = "resample"
    none = "none"


class TranscoderInit(StrEnum):
    """How transcoder weights start (dictionaries/training.py's docstring)."""

    random = "random"
    linear = "linear"
    data = "data"


@dataclass
class DictionaryTrainingConfig:
    """The trainer (transcoder_lab.dictionaries.training); the same for every arm so comparisons are fair."""

    seed: int = 42
    lr: float = 4e-4
    batch_size: int = 4096  # activation rows (tokens) per step
    n_steps: int = 120
    warmup_steps: int = 20
    dead_features: DeadFeatures = DeadFeatures.ghost_grads
    dead_window_steps: int = 50  # a feature silent this long counts as dead
    resample_every: int = 100
    frequency_window_steps: int = 50  # steps at the end over which firing frequency is measured
    checkpoint_every: int = 50
    # Against dead transcoder features (docs/dead_features.md); the defaults: the paper's recipe.
    transcoder_init: TranscoderInit = TranscoderInit.random
    l1_warmup_fraction: float = 0.0  # the L1 coefficient ramps linearly from 0 over this share of n_steps
    # Tensor-core speed on a GPU (docs/paper_on_gpu.md): "high" (TF32) or "medium" (bfloat16) matrix
    # products while training; weights, optimiser state and sums stay float32.
    matmul_precision: MatmulPrecision = MatmulPrecision.highest

    def __post_init__(self) -> None:
        # a config built in code (tests, benchmarks) may name its choices as plain strings
        for key, choice in (("dead_features", DeadFeatures), ("transcoder_init", TranscoderInit)):
            if (value := getattr(self, key)) not in {member.value for member in choice}:
                options = ", ".join(repr(member.value) for member in choice)  # the first: the paper's recipe
                raise ConfigError(f"profile.dictionaries.training.{key} is {value!r}; use {options}")
            setattr(self, key, choice(value))
        if not 0.0 <= self.l1_warmup_fraction <= 1.0:
            raise ConfigError(
                f"profile.dictionaries.training.l1_warmup_fraction is {self.l1_warmup_fraction}; "
                "a share of n_steps, between 0 (the paper's recipe: the full L1 from step 0) and 1"
            )

    @property
    def l1_warmup_steps(self) -> int:
        return round(self.l1_warmup_fraction * self.n_steps)


@dataclass
class DictionariesConfig:
    """The dictionaries to train: each cell "L<layer>_<arm>" at every sparsity of its arm's sweep.

    Cells name exactly what to train (a transcoder at every layer for circuits, SAEs only where a
    comparison needs them), so no layer x arm product is paid for. An arm (`ARMS`) is a kind of
    dictionary (what it reads and predicts) with an architecture: ReLU arms sweep
    `l1_coefficients`, the TopK arm sweeps `topk_k` (features kept per token; no L1 term).
    """

    # A cell named "L<layer>_<arm>_seed<n>" (n >= 1) is a replica of "L<layer>_<arm>" that trains as
    # if training.seed were training.seed + n (initialisation and batch order), in its own folder;
    # one ending "_<recipe>" (e.g. "L2_transcoder_paper") trains with that recipe over `training`.
    cells: list[str] = field(default_factory=lambda: ["L1_transcoder", "L1_sae_mlp_out"])
    l1_coefficients: list[float] = field(default_factory=lambda: [1e-3])
    topk_k: list[int] = field(default_factory=list)  # the sweep of topk_* cells
    expansion_factor: int = 8  # d_sae = expansion_factor * d_model
    harvest: HarvestConfig = field(default_factory=HarvestConfig)
    training: DictionaryTrainingConfig = field(default_factory=DictionaryTrainingConfig)
    # name -> training settings, composed from conf/dictionary_recipe/ (conf/config.yaml)
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parsed = self.parsed_cells  # a malformed cell is named here
        _ = self.recipe  # every recipe sets training keys (a TypeError names any other)
        if len(set(self.cells)) != len(self.cells):
            raise ConfigError("profile.dictionaries.cells lists a cell twice; keep each once.")
        if any(ARMS[arm].architecture == Architecture.topk for _, arm in parsed) and not self.topk_k:
            raise ConfigError(
                "profile.dictionaries.cells has a topk_* cell but profile.dictionaries.topk_k is "
                "empty; list the k values to train (features kept per token), e.g. [4, 8, 16]."
            )

    @property
    def parsed_cells(self) -> list[tuple[int, str]]:
        """(layer, arm) of every cell, in config order (a seed or recipe replica repeats its cell's pair)."""
        return [(layer, arm) for layer, arm, *_ in self.seeded_cells]

    @property
    def seeded_cells(self) -> list[tuple[int, str, int, str | None]]:
        """(layer, arm, seed, recipe) of every cell, in config order; the plain cell: seed 0, recipe None."""
        return [parse_seeded_cell(cell, self.recipes) for cell in self.cells]

    @property
    def recipe(self) -> str:
        """The name of the recipe `training` holds (the first in `recipes` whose settings it has)."""
        own = (name for name in self.recipes if self.with_recipe(name) == self.training)
        return next(own, "custom")

    def with_recipe(self, recipe: str | None) -> DictionaryTrainingConfig:
        """`training` with a named recipe's settings (None: as it is)."""
        return replace(self.training, **(self.recipes[recipe] if recipe else {}))

    @property
    def layers(self) -> list[int]:
        """Every layer some cell trains on (the activations stage harvests these)."""
        return sorted({layer for layer, _ in self.parsed_cells})

    def layers_of(self, arm: str) -> list[int]:
        return sorted({layer for layer, cell_arm in self.parsed_cells if cell_arm == arm})

    def sweep(self, arm: str) -> list[Sparsity]:
        """The sparsity settings an arm's cell trains at: one per L1 coefficient, or per TopK k."""
        if ARMS[arm].architecture == Architecture.topk:
            return [Sparsity(k=k) for k in self.topk_k]
        return [Sparsity(l1_coefficient=l1) for l1 in self.l1_coefficients]


class DictionaryKind(StrEnum):
    transcoder = "transcoder"  # MLP input -> MLP output
    sae_mlp_out = "sae_mlp_out"  # MLP output -> MLP output
    sae_mlp_in = "sae_mlp_in"  # MLP input -> MLP input


class Architecture(StrEnum):
    relu = "relu"  # ReLU features, sparsity from an L1 term
    topk = "topk"  # the k largest pre-activations kept per token (no L1 term)


@dataclass(frozen=True)
class Arm:
    """What a cell trains: a kind of dictionary with an architecture (and a skip term or not)."""

    kind: DictionaryKind
    architecture: Architecture = Architecture.relu
    skip: bool = False  # skip-transcoder: y_hat += x W_skip


ARMS: dict[str, Arm] = {
    "transcoder": Arm(DictionaryKind.transcoder),
    "sae_mlp_out": Arm(DictionaryKind.sae_mlp_out),
    "sae_mlp_in": Arm(DictionaryKind.sae_mlp_in),
    # the arms the 2025 follow-up (Paulo, Shabalin and Belrose) adds to the comparison
    "skip_transcoder": Arm(DictionaryKind.transcoder, skip=True),
    "topk_transcoder": Arm(DictionaryKind.transcoder, architecture=Architecture.topk),
}


def arm_name(kind: str, architecture: str, skip: bool) -> str:
    """The arm of a dictionary's spec: its kind, prefixed "skip_" or "topk_" for those variants."""
    return ("skip_" if skip else "") + ("topk_" if architecture == Architecture.topk else "") + str(kind)


@dataclass(frozen=True)
class Sparsity:
    """One point of an arm's sweep: an L1 coefficient (ReLU arms) or a TopK k."""

    l1_coefficient: float = 0.0
    k: int | None = None

    @property
    def label(self) -> str:
        """Its directory name: "l1_0.001" or "k_16"."""
        return self.setting.replace("=", "_")

    @property
    def setting(self) -> str:
        """Its part of a dictionary's name ("transcoder@L2 l1=0.001"): "l1=0.001" or "k=16"."""
        return f"k={self.k}" if self.k is not None else f"l1={self.l1_coefficient:g}"


_ARM_NAMES = "|".join(sorted(ARMS, key=len, reverse=True))  # the longest first: "sae_mlp_out" not "sae"
_CELL = re.compile(rf"L(\d+)_({_ARM_NAMES})(?:_seed([1-9]\d*))?(?:_(?!seed)(\w+))?")


def parse_seeded_cell(cell: str, recipes: Collection[str] | None = None) -> tuple[int, str, int, str | None]:
    """ "L2_sae_mlp_in" -> (2, "sae_mlp_in", 0, None); "L2_transcoder_seed1" -> (2, "transcoder", 1, None);
    "L2_transcoder_paper" -> (2, "transcoder", 0, "paper") if in `recipes` (None: any).
    `cell_name` inverts it."""
    match = _CELL.fullmatch(cell)
    if not match or (recipes is not None and match.group(4) not in (None, *recipes)):
        raise ConfigError(
            f"profile.dictionaries.cells: '{cell}' is not 'L<layer>_<arm>', with '_seed<n>' (n >= 1; seed 0 "
            f"is the plain name) and/or '_<recipe>' (one of {', '.join(recipes or [])}), arm one of "
            f"{', '.join(ARMS)} (e.g. 'L2_transcoder', 'L2_transcoder_seed1', 'L2_transcoder_paper')."
        )
    return int(match.group(1)), match.group(2), int(match.group(3) or 0), match.group(4)


def parse_cell(cell: str) -> tuple[int, str]:
    """ "L2_sae_mlp_in" -> (2, "sae_mlp_in"); a replica ("L2_sae_mlp_in_seed1") gives its cell's pair."""
    return parse_seeded_cell(cell)[:2]


def cell_name(layer: int, arm: str, seed: int = 0, recipe: str | None = None) -> str:
    """(2, "transcoder") -> "L2_transcoder"; seed 1: "L2_transcoder_seed1"; recipe paper: "..._paper"."""
    return f"L{layer}_{arm}" + (f"_seed{seed}" if seed else "") + (f"_{recipe}" if recipe else "")


class Comparison(StrEnum):
    """How a result is judged against an Expectation (report.verdict)."""

    approx = "approx"  # within tolerance of value
    at_least = "at_least"
    at_most = "at_most"
    reference = "reference"  # shown beside the result, no verdict


@dataclass
class Expectation:
    """A published or required number: `approx` within `tolerance`, `at_least` or `at_most` value,
    or a `reference` value shown without a verdict."""

    value: float
    tolerance: float = 0.0
    comparison: Comparison = Comparison.approx
    source: str = ""


@dataclass
class ReferencePoint:
    """A published point of a sparsity-fidelity sweep, shown beside the grid's dictionary trained at
    the same (layer, kind, l1_coefficient) as a reference value (no verdict: the L0 a coefficient
    gives depends on the training run)."""

    kind: DictionaryKind
    layer: int
    l1_coefficient: float
    l0: float
    ce_spliced: float
    source: str = ""


class SpliceAllSource(StrEnum):
    """Which transcoders the evaluation splices in at every layer together."""

    grid = "grid"  # the grid's transcoders at splice_all_l1
    published = "published"  # the published transcoders (profile.published_transcoder_layers)


@dataclass
class EvaluationConfig:
    """Splicing evaluation on a fixed held-out token set (transcoder_lab.dictionaries.evaluation)."""

    n_contexts: int = 256  # held-out contexts of harvest.context_size tokens
    batch_size: int = 32
    splice_all_source: SpliceAllSource = SpliceAllSource.grid
    splice_all_l1: float | None = None
    splice_all_layers: list[int] = field(default_factory=list)  # empty: every grid layer
    # further sets spliced together on the same tokens, by name (e.g. the paper's layers 1-9)
    splice_subsets: dict[str, list[int]] = field(default_factory=dict)
    expected: dict[str, Expectation] = field(default_factory=dict)  # dotted result key -> expectation
    reference_points: list[ReferencePoint] = field(default_factory=list)  # a published sweep, for comparison
    # Matched-L0 gaps (dictionaries.matched_gaps): resamples of the held-out contexts, and the
    # two-sided confidence of the context-bootstrap and seed intervals.
    n_bootstrap: int = 2000
    bootstrap_seed: int = 0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.n_bootstrap < 100:
            raise ConfigError(
                f"profile.evaluation.n_bootstrap is {self.n_bootstrap}; use at least 100 resamples (the "
                "2.5% and 97.5% percentiles of fewer rest on two or three draws)."
            )
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"profile.evaluation.confidence is {self.confidence}: a probability (0.95)")


@dataclass
class GroundTruthRaterConfig:
    """The organism's automatic rater (transcoder_lab.study.rater): F1 of "feature active" against
    each ground-truth label and each single token identity, over the scanned tokens."""

    active_fraction: float = 0.1  # a token counts as active above this fraction of the feature's max
    yes_f1: float = 0.6  # best F1 >= yes_f1: "yes"
    maybe_f1: float = 0.3  # best F1 >= maybe_f1: "maybe"; below: "no"
    context_free_margin: float = 0.05  # token identity's F1 >= best label's F1 - margin: context-free
    exclude_labels: list[str] = field(default_factory=lambda: ["background"])  # not explanations


class CorpusSplit(StrEnum):
    """A split of the organism's corpus (organism/build.py's SPLITS)."""

    train = "train"
    heldout = "heldout"


class PrimaryTest(StrEnum):
    """The full-power study's one primary test (transcoder_lab.study.full_power), named before the
    run: a transcoder-minus-SAE difference over every live feature's ground-truth rating."""

    yes_share_difference = "yes_share_difference"  # share of features rated "yes"
    mean_f1_difference = "mean_f1_difference"  # mean best F1 (the rater's score behind the rating)


@dataclass
class StudyConfig:
    """The blind interpretability study (transcoder_lab.study): a transcoder against an SAE on the
    same MLP input (kind sae_mlp_in) at the l1 whose held-out L0 is closest to the transcoder's."""

    seed: int = 0
    layer: int = 2
    transcoder_l1: float = 1e-3  # one of profile.dictionaries.l1_coefficients
    n_per_arm: int = 50
    min_log10_frequency: float = -4.0  # live features only (log10 firing frequency above this)
    min_activating_tokens: int = 10  # fewer activating scanned tokens: replaced by another feature
    split: CorpusSplit = CorpusSplit.heldout  # organism profiles: the corpus split scanned
    n_tokens: int = 100_000  # tokens scanned for dashboards and the ground-truth rater
    batch_size: int = 64  # contexts per model pass
    n_examples: int = 8  # examples per dashboard band
    window: int = 8  # tokens either side of an example's centre
    n_quantile_bands: int = 3
    show_de_embedding: bool = True  # both arms read the MLP input, so both have one
    n_bootstrap: int = 10_000
    ground_truth: GroundTruthRaterConfig = field(default_factory=GroundTruthRaterConfig)
    # Organism profiles: the ground-truth rater also rates every live feature of both arms; this
    # difference's 95% bootstrap interval gives the verdict ("ok" when its lower bound is > 0).
    primary_test: PrimaryTest = PrimaryTest.yes_share_difference


@dataclass
class ProfileConfig:
    name: str = "organism"
    device: str = "cpu"
    # torch's CPU thread count, pinned by every stage (stage.stage_main). On CPU the numbers depend
    # on it (it sets how a matmul splits its sums), so a profile whose results are committed pins
    # the count they came from; 0 keeps torch's default (the machine's cores).
    cpu_threads: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    corpus: CorpusConfig | None = None  # None for pretrained models (they bring their own text)
    text: TextSourceConfig | None = None  # pretrained models: their text (None for the organism)
    training: TrainingConfig | None = None
    behaviour: BehaviourConfig = field(default_factory=BehaviourConfig)
    dictionaries: DictionariesConfig = field(default_factory=DictionariesConfig)
    published_transcoder_layers: list[int] = field(default_factory=list)  # gpt2_small: 0..11
    graph_screenshots: list[str] = field(default_factory=list)  # case studies drawn in the graph viewer
    crosslayer: dict[str, Any] = field(default_factory=dict)  # CLTs, checked by crosslayer.crosslayer_config
    families: dict[str, Any] = field(default_factory=dict)  # checked by case_studies.families.families_config
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    study: StudyConfig = field(default_factory=StudyConfig)

    def check(self) -> None:
        """The checks across its sections (load_config runs them on the composed profile; not
        __post_init__, since the schema's default profile has no corpus or training section)."""
        self.model.check()
        if self.model.source == ModelSource.organism and (self.corpus is None or self.training is None):
            raise ConfigError(
                f"profile '{self.name}' trains an organism and needs profile.corpus and "
                "profile.training sections."
            )
        if self.model.source == ModelSource.pretrained and self.text is None:
            raise ConfigError(
                f"profile '{self.name}' loads a pretrained model and needs profile.text (the hub dataset "
                "it reads); see conf/profile/gpt2_small.yaml."
            )
        for layer, _ in self.dictionaries.parsed_cells:
            if not 0 <= layer < self.model.n_layers:
                raise ConfigError(
                    f"profile.dictionaries.cells: layer {layer} does not exist in a "
                    f"{self.model.n_layers}-layer model; use layers 0..{self.model.n_layers - 1}."
                )


@dataclass
class PathsConfig:
    data: str = "data"
    models: str = "models"
    activations: str = "activations"
    dictionaries: str = "dictionaries"
    results: str = "results"
    figures: str = "figures"


@dataclass
class SearchConfig:
    """Beam search from a case study's root (transcoder_lab.circuits.beam_search)."""

    n_iterations: int = 3
    n_branches: int = 10
    per_node: int | None = None


class AblationProtocol(StrEnum):
    """The greater-than study's ablation protocols (case_studies/greater_than.py, step 2)."""

    zero = "zero"  # the paper's: layer by zeroing its MLP, the rest zeroed everywhere
    mean = "mean"  # layer by mean-ablating its MLP's last-token output, the rest mean-ablated there


@dataclass
class CaseStudyProfile:
    """One profile's settings of a case study. Organism-source profiles without their own entry
    (tiny) use the `organism` entry: its roots are chosen from ground-truth labels, not indices."""

    layer: int | None = None  # the root's transcoder layer (None: chosen by the analysis)
    feature: int | None = None  # the root feature (None: the one most selective for target_labels)
    candidate_layers: list[int] = field(default_factory=list)  # where to look; empty: every layer
    target_labels: list[str] = field(default_factory=list)  # ground truth the root should track
    contrast_labels: list[str] = field(default_factory=list)  # what it must be told apart from
    prompts: list[str] = field(default_factory=list)  # literal prompts; the root is at the last token
    contrast_prompts: list[str] = field(default_factory=list)
    n_prompts: int = 20
    replace_earlier: list[str] = field(default_factory=list)  # [old, new]: the token-swap intervention
    logit_root: list[int] = field(default_factory=list)  # greater-than: [prompt YY, late YY, early YY]
    n_components: int = 100  # greater-than: the features-vs-neurons curve runs n = 0..n_components
    # greater-than: the headline protocol of the features-vs-neurons comparison (both are reported)
    protocol: AblationProtocol = AblationProtocol.zero
    # greater-than: redo the headline curves on this many fresh prompt draws (organism prompts vary in
    # noun and century) to show how much the feature and neuron counts depend on the draw
    n_prompt_resamples: int = 0
    expected_features: list[int] = field(default_factory=list)  # published indices to look for
    expected_heads: list[str] = field(default_factory=list)  # e.g. "attn9.1": heads expected on paths
    expected: dict[str, Expectation] = field(default_factory=dict)  # dotted result key -> expectation
    # organism feature studies: the planted context the root should read through attention and the
    # neutral token it is swapped for (case_studies.faithfulness.ground_truth_check)
    context_labels: list[str] = field(default_factory=list)
    neutral_token: str | None = None


@dataclass
class FaithfulnessConfig:
    """Faithfulness of a case study's circuit by intervention (case_studies.faithfulness) and the
    bars its verdicts are held to, fixed here before any run."""

    n_random_sets: int = 20  # size-matched random feature sets in each random baseline
    seed: int = 0  # draws the random sets
    n_prompts: int = 20  # the study's first n prompts, each with its own circuit (median, IQR); 0: none
    n_per_node_prompts: int = 5  # of those, also ablate every active feature alone (the costly part)
    max_per_node_features: int = 8192  # above this many active features, per-node rows are skipped
    min_sufficiency: float = 0.8  # live: the circuit alone recovers at least this share of the root
    min_necessity: float = 0.5  # live: ablating the circuit loses at least this share
    min_percentile: float = 95.0  # ... and beats this percentile of the random sets
    min_spearman: float = 0.5  # live: attribution ranks every active feature's ablation effect
    min_context_share: float = 0.5  # ground truth: planted context's share of attention-borne input
    min_context_loss: float = 0.5  # ground truth: share of the root lost without that attention

    def __post_init__(self) -> None:
        if self.n_random_sets < 1 or self.n_prompts < 0:
            raise ConfigError("faithfulness.n_random_sets must be at least 1 and n_prompts at least 0.")
        if not 0 <= self.min_percentile <= 100:
            raise ConfigError("faithfulness.min_percentile is a percentile: between 0 and 100.")


class Analysis(StrEnum):
    """A case study's analysis (transcoder_lab.case_studies.ANALYSES)."""

    feature = "feature"
    greater_than = "greater_than"


@dataclass
class CaseStudyConfig:
    """A case study (conf/case_study/<name>.yaml): a question, its root, how to search, per profile."""

    analysis: Analysis = Analysis.feature
    title: str = ""
    question: str = ""
    notebook: str = ""  # the notebook that narrates it, under notebooks/
    blind: bool = False  # hypothesis from circuit evidence first, the dashboard only afterwards
    # the full graph of the study's prompt is skipped (with the reason recorded) above this many
    # active features: its dense float64 adjacency takes 8 (n_nodes)^2 bytes (16384: ~2.2 GB)
    full_graph_max_features: int = 16384
    # tokens the blind probe tries (case_studies.feature.blind_hypothesis): None, the whole vocabulary;
    # a number, a fixed random sample of that many (the smoke budget's, for GPT-2's 50,257 tokens)
    probe_tokens: int | None = None
    search: SearchConfig = field(default_factory=SearchConfig)
    faithfulness: FaithfulnessConfig = field(default_factory=FaithfulnessConfig)
    profiles: dict[str, CaseStudyProfile] = field(default_factory=dict)


@dataclass
class Config:
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    case_study: dict[str, CaseStudyConfig] = field(default_factory=dict)  # conf/case_study/*.yaml


def load_config(raw: DictConfig | dict[str, Any]) -> Config:
    """Check a composed config against the schema and return it as typed dataclasses."""
    schema = OmegaConf.structured(Config)
    try:
        merged = OmegaConf.merge(schema, raw)
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        reason = str(getattr(error, "msg", error)).splitlines()[0]
        raise ConfigError(
            f"invalid config at key '{key}': {reason}. "
            "Compare with the dataclasses in transcoder_lab/config.py and the files in conf/."
        ) from error
    assert isinstance(config, Config)
    config.profile.check()
    return config


def compose(overrides: list[str] | None = None) -> DictConfig:
    """Compose conf/ with Hydra (as DVC does for params.yaml), e.g. overrides=["profile=tiny"]."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides or [])


OUTPUT_KEYS = ("data", "models", "activations", "dictionaries", "results", "figures")


def load_profile(profile: str, root: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """A profile's config with every output path under `root` (None: as configured, relative to
    the working directory). Notebooks and tests read another checkout's or a temp dir's outputs so."""
    rooted = [f"paths.{key}={Path(root) / key}" for key in OUTPUT_KEYS] if root is not None else []
    return load_config(compose([f"profile={profile}", *rooted, *(overrides or [])]))
