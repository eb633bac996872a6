"""Shared fixtures: the tiny profile's pipeline, run once per test session in a temporary directory."""

import os

import pytest

from transcoder_lab.config import Config, load_profile
from transcoder_lab.stage import load_stage

from helpers.local_server import CHROMIUM, CHROMIUM_ARGS, unavailable


def tiny_config(root) -> Config:
    """The tiny profile with every output path under `root`."""
    return load_profile("tiny", root)


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> tuple[Config, object]:
    """(config, root directory) after the corpus, organism, behaviour, activations, dictionaries and
    crosslayer stages of the tiny profile have run there (checkpoints/ is relative to the working
    directory)."""
    root = tmp_path_factory.mktemp("tiny_pipeline")
    cfg = tiny_config(root)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for stage in ("corpus", "organism", "behaviour", "activations", "dictionaries", "crosslayer"):
            load_stage(stage).run(cfg)
    finally:
        os.chdir(cwd)
    return cfg, root


@pytest.fixture(scope="module")
def chromium():
    """Headless Chromium (Debian's, driven by Playwright), one per test module; the browser tests
    open their own pages in it. Skips (fails with CI=true) without Playwright or the browser."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e .)")
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (run `make browser`, i.e. apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
