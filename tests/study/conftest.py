"""The blind study's stages run once per session on the tiny pipeline."""

import os

import pytest

from transcoder_lab.stage import load_stage


@pytest.fixture(scope="session")
def tiny_study(tiny_pipeline):
    """(config, root, summary) after study_packet and study_analysis ran on the tiny pipeline."""
    cfg, root = tiny_pipeline
    cwd = os.getcwd()
    os.chdir(root)
    try:
        load_stage("study_packet").run(cfg)
        summary = load_stage("study_analysis").run(cfg)
    finally:
        os.chdir(cwd)
    return cfg, root, summary
