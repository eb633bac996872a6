"""Stage entry points: every stage pins torch's CPU threads, so the organism's numbers are the same
whatever the machine's default thread count."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from transcoder_lab.config import OUTPUT_KEYS, REPO_ROOT, compose
from transcoder_lab.stage import pin_cpu_threads

STAGES = ("corpus", "organism", "activations", "dictionaries")
# Runs one stage script as DVC would, then reports the thread count torch ran with.
RUN_STAGE = (
    "import runpy, sys, torch; script = sys.argv[1]; sys.argv = [script]; "
    "runpy.run_path(script, run_name='__main__'); print('threads', torch.get_num_threads())"
)


# What each stage writes that must not depend on the thread count, in pipeline order (JSON files
# with wall-clock seconds are left out): a mismatch names the first stage whose output differs.
ARTEFACTS = {
    "data": ("tokenizer.json", "*.safetensors"),
    "models": ("*.safetensors",),
    "activations": ("*.safetensors",),
    "dictionaries": ("*.safetensors",),
}


def run_tiny_pipeline(directory: Path, default_threads: int) -> dict[str, str]:
    """The tiny profile's first stages in `directory` (its own params.yaml) with torch's default
    thread count set to `default_threads`; returns the MD5 of every artefact (`ARTEFACTS`) in
    pipeline order."""
    directory.mkdir()
    rooted = [f"paths.{key}={directory / key}" for key in OUTPUT_KEYS]
    OmegaConf.save(compose(["profile=tiny", *rooted]), directory / "params.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": str(default_threads), "MKL_NUM_THREADS": str(default_threads)}
    for stage in STAGES:
        script = str(REPO_ROOT / "experiments" / f"{stage}.py")
        done = subprocess.run(
            [sys.executable, "-c", RUN_STAGE, script], cwd=directory, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.splitlines()[-1] == "threads 2"  # the profile's cpu_threads, not the default
    hashes = {}
    for key, patterns in ARTEFACTS.items():
        files = sorted(p for pattern in patterns for p in (directory / key).rglob(pattern))
        assert files, f"no {patterns} under {key}/"
        hashes |= {str(p.relative_to(directory)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}
    return hashes


def test_one_and_four_default_threads_give_identical_weights(tmp_path) -> None:
    one, four = run_tiny_pipeline(tmp_path / "one", 1), run_tiny_pipeline(tmp_path / "four", 4)
    assert list(one) == list(four)
    differing = [name for name in one if one[name] != four[name]]
    assert not differing, f"differ with 1 and 4 default threads (first in pipeline order first): {differing}"


def test_negative_thread_count_is_refused() -> None:
    with pytest.raises(ValueError, match="cpu_threads"):
        pin_cpu_threads(-1)
