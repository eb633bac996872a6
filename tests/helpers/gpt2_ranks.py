"""GPT-2's real tokenizer for tests, built from the rank file `make setup` fetches.

When the file is missing a test is skipped with the fix (`make setup`), except under CI
(CI=true), where `make test` has fetched it, so its absence is a failure.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
from transformers import GPT2TokenizerFast

from transcoder_lab.sources.gpt2_tokenizer import build_gpt2_tokenizer, default_ranks_path


def ranks_path_or_skip() -> Path:
    path = default_ranks_path()
    if not path.is_file():
        message = f"GPT-2's BPE rank file {path} is missing; run `make setup` to fetch it"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (under CI, `make test` runs `make setup` first, so it should be there)")
        pytest.skip(message)
    return path


@functools.cache
def _build(path: Path) -> GPT2TokenizerFast:
    return build_gpt2_tokenizer(path)


def gpt2_tokenizer_or_skip() -> GPT2TokenizerFast:
    """One tokenizer per test session (building takes about a second); tests must not modify it."""
    return _build(ranks_path_or_skip())
