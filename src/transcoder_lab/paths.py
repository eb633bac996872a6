"""Where each stage's outputs live: one function per artifact, mirroring dvc.yaml's `outs`."""

from __future__ import annotations

from pathlib import Path

from transcoder_lab.config import Config, Sparsity, cell_name

# Names inside the folders below, kept here so that the module writing a file and the modules
# reading it share one constant without importing each other.
HELDOUT_METRICS = "heldout_metrics.json"  # a grid dictionary's held-out metrics, beside its weights
GRAPH_FOLDER = "attribution_graph"  # a case study's graph files, in its figures folder


def corpus_dir(cfg: Config) -> Path:
    return Path(cfg.paths.data) / cfg.profile.name / "corpus"


def model_dir(cfg: Config) -> Path:
    return Path(cfg.paths.models) / cfg.profile.name


def activations_dir(cfg: Config, split: str | None = None) -> Path:
    """The harvested shards; `split` is "train" or "heldout"."""
    root = Path(cfg.paths.activations) / cfg.profile.name
    return root / split if split else root


def dictionary_dir(
    cfg: Config, layer: int, arm: str, sparsity: float | Sparsity, seed: int = 0, recipe: str | None = None
) -> Path:
    """A grid dictionary's folder: its cell ("L2_transcoder", a seed replica "L2_transcoder_seed1", a
    recipe's "L2_transcoder_paper"), then its sparsity ("l1_0.001", or "k_16" for TopK); a plain
    float is an L1 coefficient."""
    if not isinstance(sparsity, Sparsity):
        sparsity = Sparsity(l1_coefficient=sparsity)
    cell = cell_name(layer, arm, seed, recipe)
    return Path(cfg.paths.dictionaries) / cfg.profile.name / cell / sparsity.label


def crosslayer_dir(cfg: Config, l1_coefficient: float) -> Path:
    """A cross-layer transcoder's folder: "clt/l1_0.001" beside the grid's cells."""
    return (
        Path(cfg.paths.dictionaries)
        / cfg.profile.name
        / "clt"
        / Sparsity(l1_coefficient=l1_coefficient).label
    )


def published_dir(cfg: Config, layer: int) -> Path:
    return Path(cfg.paths.dictionaries) / cfg.profile.name / "published" / f"L{layer}_transcoder"


def results_dir(cfg: Config) -> Path:
    return Path(cfg.paths.results) / cfg.profile.name


def figures_dir(cfg: Config) -> Path:
    return Path(cfg.paths.figures) / cfg.profile.name


def checkpoint_dir(cfg: Config, *parts: str) -> Path:
    """Resumable training state: outside DVC's outputs, which DVC deletes before a stage runs."""
    return Path("checkpoints", cfg.profile.name, *parts)


# The blind study (transcoder_lab.study). Its packet, key and ratings sit beside results/ (at the
# repository root by default): study/<profile>/ is a DVC output, ratings/<profile>/ is committed.


def study_dir(cfg: Config) -> Path:
    return Path(cfg.paths.results).parent / "study" / cfg.profile.name


def study_packet_dir(cfg: Config) -> Path:
    """What raters see: anonymised cards and a manifest, never the key."""
    return study_dir(cfg) / "packet"


def study_key_file(cfg: Config) -> Path:
    """Card -> arm and feature; outside the packet, its SHA-256 recorded in the packet."""
    return study_dir(cfg) / "key.json"


def study_scan_file(cfg: Config) -> Path:
    """Scanned tokens, labels and each card's activations, for the ground-truth rater."""
    return study_dir(cfg) / "scan.safetensors"


def ratings_dir(cfg: Config) -> Path:
    """Human ratings, one `<rater>.json` each, committed to git (not a DVC output)."""
    return Path(cfg.paths.results).parent / "ratings" / cfg.profile.name


def study_results_dir(cfg: Config) -> Path:
    return results_dir(cfg) / "study"


def study_figures_dir(cfg: Config) -> Path:
    return figures_dir(cfg) / "study"
