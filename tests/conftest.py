"""Shared fixtures: the tiny profile's pipeline, run once per test session in a temporary directory."""

import os

import pytest

from transcoder_lab.config import Config, load_profile
from transcoder_lab.stage import load_stage


def tiny_config(root) -> Config:
    """The tiny profile with every output path under `root`."""
    return load_profile("tiny", root)


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> tuple[Config, object]:
    """(config, root directory) after the corpus, organism, behaviour, activations and dictionaries
    stages of the tiny profile have run there (checkpoints/ is relative to the working directory)."""
    root = tmp_path_factory.mktemp("tiny_pipeline")
    cfg = tiny_config(root)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for stage in ("corpus", "organism", "behaviour", "activations", "dictionaries"):
            load_stage(stage).run(cfg)
    finally:
        os.chdir(cwd)
    return cfg, root
