"""Token streams packed into fixed-length contexts that each start with BOS.

Algorithm (docs/design.md §4.4: a document that runs past a context goes on after a fresh BOS):
1. Lay the documents end to end, each preceded by one BOS: `BOS d1 BOS d2 BOS d3 ...`.
2. Cut that stream into consecutive chunks of `n_ctx - 1` tokens (the ragged tail is dropped).
3. Prepend BOS to every chunk. A chunk that starts inside a document thus continues it after a
   fresh BOS, and documents inside a chunk stay separated by their own BOS. (A chunk that starts
   exactly on a document's BOS begins with two BOS tokens; that is rare and harmless.)
Labels, when given, travel with their tokens; every inserted BOS gets `BOS_LABEL`.
`stream_contexts` does the same for documents that arrive one at a time (a streamed dataset), and
`split_contexts` for a split the corpus stage wrote (`load_split`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Int
from safetensors.torch import load_file

BOS_LABEL = 255  # label id of inserted BOS tokens (real label ids are small, see organism.corpus)


def pack_contexts(
    tokens: Int[np.ndarray, " n_tokens"],
    doc_offsets: Int[np.ndarray, " n_docs_plus_1"],
    n_ctx: int,
    bos_id: int,
    labels: Int[np.ndarray, " n_tokens"] | None = None,
) -> tuple[Int[np.ndarray, "n_contexts n_ctx"], Int[np.ndarray, "n_contexts n_ctx"] | None]:
    """Pack documents (flat `tokens`, split at `doc_offsets`) into BOS-led contexts of `n_ctx`."""
    if n_ctx < 2:
        raise ValueError(f"n_ctx must be at least 2 (BOS plus one token), got {n_ctx}")
    doc_starts = np.asarray(doc_offsets[:-1], dtype=np.int64)
    # Step 1: one BOS before every document (np.insert puts them before the given indices).
    stream = np.insert(np.asarray(tokens, dtype=np.int64), doc_starts, bos_id)
    label_stream = None
    if labels is not None:
        label_stream = np.insert(np.asarray(labels, dtype=np.int64), doc_starts, BOS_LABEL)
    # Steps 2 and 3: chunks of n_ctx - 1, each led by BOS.
    chunk = n_ctx - 1
    n_contexts = len(stream) // chunk

    def lead_with(fill: int, values: np.ndarray) -> np.ndarray:
        body = values[: n_contexts * chunk].reshape(n_contexts, chunk)
        return np.concatenate([np.full((n_contexts, 1), fill, dtype=np.int64), body], axis=1)

    contexts = lead_with(bos_id, stream)
    context_labels = lead_with(BOS_LABEL, label_stream) if label_stream is not None else None
    return contexts, context_labels


def stream_contexts(
    token_lists: Iterable[Sequence[int]], n_ctx: int, bos_id: int, batch_contexts: int
) -> Iterator[Int[torch.Tensor, "batch n_ctx"]]:
    """The streaming form of `pack_contexts`: the same contexts, from documents arriving one by one
    (e.g. OpenWebText through `datasets` streaming), in batches of `batch_contexts`."""
    chunk = n_ctx - 1
    pending: list[int] = []
    batch: list[list[int]] = []
    for tokens in token_lists:
        pending.append(bos_id)
        pending.extend(int(t) for t in tokens)
        while len(pending) >= chunk:
            batch.append([bos_id, *pending[:chunk]])
            del pending[:chunk]
            if len(batch) == batch_contexts:
                yield torch.tensor(batch, dtype=torch.long)
                batch = []
    if batch:
        yield torch.tensor(batch, dtype=torch.long)


def tokenized_texts(texts: Iterable[str], tokenizer: Any, batch_size: int = 256) -> Iterator[list[int]]:
    """Token ids of each text (no special tokens), tokenized in batches for speed."""
    pending: list[str] = []
    for text in texts:
        pending.append(text)
        if len(pending) == batch_size:
            yield from tokenizer(pending, add_special_tokens=False)["input_ids"]
            pending = []
    if pending:
        yield from tokenizer(pending, add_special_tokens=False)["input_ids"]


# The corpus stage's token splits, read by every stage of an organism profile that needs text (the
# organism's training, the activations, the held-out set, the case studies and the study).
def load_split(corpus_dir: Path, split: str) -> dict[str, np.ndarray]:
    tensors = load_file(Path(corpus_dir) / f"{split}.safetensors")
    return {name: tensor.numpy() for name, tensor in tensors.items()}


def split_contexts(corpus_dir: Path, split: str, n_ctx: int, bos_id: int) -> torch.Tensor:
    data = load_split(corpus_dir, split)
    contexts, _ = pack_contexts(data["tokens"], data["doc_offsets"], n_ctx, bos_id)
    return torch.from_numpy(contexts)
