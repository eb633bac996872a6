"""Atomic file writes: write to a temporary file in the target's directory, then rename.

A crash or an interrupt mid-write leaves the previous file (or none) in place, never a torn one,
so every stage output and every checkpoint is either complete or absent.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it over `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _write_with(target: str | Path, write: Callable[[Path], None]) -> None:
    with atomic_path(target) as tmp:
        write(tmp)


def write_bytes(target: str | Path, data: bytes) -> None:
    _write_with(target, lambda tmp: tmp.write_bytes(data))


def write_text(target: str | Path, text: str) -> None:
    _write_with(target, lambda tmp: tmp.write_text(text))


def write_json(target: str | Path, data: Any) -> None:
    write_text(target, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_safetensors(
    target: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    contiguous = {name: tensor.detach().contiguous() for name, tensor in tensors.items()}
    _write_with(target, lambda tmp: save_file(contiguous, str(tmp), metadata=metadata))


def write_torch(target: str | Path, obj: Any) -> None:
    """For checkpoints of tensors, numbers and dicts only: read back with weights_only=True."""
    _write_with(target, lambda tmp: torch.save(obj, tmp))


def read_torch(path: str | Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def sha256_file(path: str | Path) -> str:
    """Content hash of a file (checkpoint fingerprints use it for the training code and the data)."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
