"""What a run ran on: the processor, torch's threads and kernels, the library versions, the commit.

CPU results depend on all of them (README, "Reproducibility"): torch picks kernels per instruction
set, the thread count sets how a matrix product splits its sums, and only torch is pinned exactly.
The `report` stage writes this beside REPORT.md (`results/<profile>/environment.json`), so a run
elsewhere can tell which of these differ before comparing numbers.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

# The distributions whose versions change numbers or formats (pip resolves all but torch freely).
KEY_DISTRIBUTIONS = (
    "torch",
    "transformer-lens",
    "sae-lens",
    "numpy",
    "scipy",
    "pandas",
    "tokenizers",
    "transformers",
    "safetensors",
    "huggingface-hub",
    "hydra-core",
    "dvc",
)


def cpu_model() -> str:
    """The processor's name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# What decides a run's numbers; the pipeline's own outputs (results/, figures/, dvc.lock, ...) are
# tracked in git too and change during a run, so they do not count as changes.
CODE_PATHS = ("src", "experiments", "conf", "notebooks", "dvc.yaml", "params.yaml", "pyproject.toml")


def git_commit(repo: Path) -> dict[str, Any]:
    """HEAD's hash and whether the code (CODE_PATHS) differs from it; None where git or the
    repository is missing."""

    def git(*args: str) -> str | None:
        try:
            run = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return run.stdout.strip() if run.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    return {"commit": git("rev-parse", "HEAD"), "code_changes": bool(status) if status is not None else None}


def distribution_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def describe_environment(repo: Path) -> dict[str, Any]:
    """This process's environment, as the JSON the report stage writes."""
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {name: distribution_version(name) for name in KEY_DISTRIBUTIONS},
        **git_commit(repo),
    }
