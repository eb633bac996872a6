"""The organism's word lists: YAML files under `lexicon/`, one per concern, read once per process.

`background.yaml` holds the background grammar's real English words by class, `pseudo_words.yaml`
the syllable parts of generated pseudo-words, and `<mechanism>.yaml` the fillers of one planted
mechanism's templates (the words its sentences vary over). Lists keep their file order, which is
part of the corpus: the Zipf-weighted draws make early words common, and `random.choice` indexes
into them, so reordering a list changes every document.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml


def _frozen(value: Any) -> Any:
    """Lists become tuples (recursively), so a cached list cannot be changed by a caller."""
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, dict):
        return {key: _frozen(item) for key, item in value.items()}
    return value


@functools.cache
def lexicon(name: str) -> dict[str, Any]:
    """The word lists of `lexicon/<name>.yaml` (lists as tuples, mappings in file order)."""
    path = resources.files("transcoder_lab.organism").joinpath("lexicon", f"{name}.yaml")
    if not path.is_file():
        raise FileNotFoundError(f"no word lists named {name!r}: expected {path}")
    return _frozen(yaml.safe_load(path.read_text(encoding="utf-8")))
