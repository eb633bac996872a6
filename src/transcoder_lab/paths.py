"""Where each stage's outputs live: one function per artifact, mirroring dvc.yaml's `outs`."""

from __future__ import annotations

from pathlib import Path

from transcoder_lab.config import Config


def corpus_dir(cfg: Config) -> Path:
    return Path(cfg.paths.data) / cfg.profile.name / "corpus"


def model_dir(cfg: Config) -> Path:
    return Path(cfg.paths.models) / cfg.profile.name


def activations_dir(cfg: Config, split: str | None = None) -> Path:
    """The harvested shards; `split` is "train" or "heldout"."""
    root = Path(cfg.paths.activations) / cfg.profile.name
    return root / split if split else root


def dictionary_dir(cfg: Config, layer: int, kind: str, l1_coefficient: float) -> Path:
    return Path(cfg.paths.dictionaries) / cfg.profile.name / f"L{layer}_{kind}" / f"l1_{l1_coefficient:g}"


def published_dir(cfg: Config, layer: int) -> Path:
    return Path(cfg.paths.dictionaries) / cfg.profile.name / "published" / f"L{layer}_transcoder"


def results_dir(cfg: Config) -> Path:
    return Path(cfg.paths.results) / cfg.profile.name


def figures_dir(cfg: Config) -> Path:
    return Path(cfg.paths.figures) / cfg.profile.name


def checkpoint_dir(cfg: Config, *parts: str) -> Path:
    """Resumable training state: outside DVC's outputs, which DVC deletes before a stage runs."""
    return Path("checkpoints", cfg.profile.name, *parts)
