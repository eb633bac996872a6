"""Build the organism's corpus on disk: documents, tokenizer, token and label arrays, manifest.

Algorithm
1. Generate `cfg.n_train_documents` training documents with seed `cfg.seed` and
   `cfg.n_heldout_documents` held-out documents with a seed derived from it (`heldout_seed`).
   Both use the vocabulary of `cfg.seed`, so held-out text is in-distribution but unseen.
2. Train the tokenizer on the training texts only and write `tokenizer.json`.
3. Encode both splits (tokens and per-token ground-truth labels) and write
   `train.safetensors` / `heldout.safetensors` with tensors "tokens" (int32), "labels" (uint8)
   and "doc_offsets" (int64), plus `labels.json` (the label names; index = label id).
4. Write `manifest.json` last: per split the numbers of documents and tokens, label counts and a
   SHA-256 over the token and label bytes, plus the vocabulary size and the config. It holds no
   timestamps, so the same config gives a byte-identical manifest.
Every file is written to a temporary file in `out_dir` and moved into place with os.replace,
so an interrupted build never leaves a truncated file under a final name.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
from safetensors.numpy import save

from transcoder_lab import io
from transcoder_lab.config import CorpusConfig
from transcoder_lab.organism.corpus import generate_documents, labels
from transcoder_lab.organism.mechanisms import build_vocabulary
from transcoder_lab.organism.tokenizer import EncodedCorpus, encode_documents, train_tokenizer
from transcoder_lab.organism.vocabulary import derive_seed
from transcoder_lab.sources.tokens import save_tokenizer

log = logging.getLogger(__name__)

SPLITS = ("train", "heldout")
MANIFEST_VERSION = 1


def heldout_seed(cfg: CorpusConfig) -> int:
    return derive_seed(cfg.seed, "heldout")


def corpus_hash(tokens: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 over the int32 little-endian tokens followed by the uint8 labels."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(tokens, dtype="<i4").tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def manifest_config(cfg: CorpusConfig) -> dict:
    """The config as the manifest records it: flat, with one `share_<mechanism>` key per share."""
    flat = {}
    for key, value in asdict(cfg).items():
        if key == "shares":
            flat |= {f"share_{name}": share for name, share in value.items()}
        else:
            flat[key] = value
    return flat


def _split_summary(encoded: EncodedCorpus, names: tuple[str, ...]) -> dict:
    counts = np.bincount(encoded.labels, minlength=len(names))
    return {
        "n_documents": encoded.n_documents,
        "n_tokens": len(encoded.tokens),
        "label_counts": {name: int(count) for name, count in zip(names, counts, strict=True)},
        "sha256": corpus_hash(encoded.tokens, encoded.labels),
    }


def build_corpus(cfg: CorpusConfig, out_dir: Path) -> dict:
    """Generate, tokenize and write the corpus of `cfg` into `out_dir`; return the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = {"train": cfg.seed, "heldout": heldout_seed(cfg)}
    sizes = {"train": cfg.n_train_documents, "heldout": cfg.n_heldout_documents}
    documents = {split: generate_documents(cfg, sizes[split], seeds[split]) for split in SPLITS}
    names = labels(cfg)

    log.info("training the tokenizer on %d documents", len(documents["train"]))
    tok = train_tokenizer([d.text for d in documents["train"]], cfg.vocab_size)
    save_tokenizer(tok, out_dir / "tokenizer.json")

    splits = {}
    for split in SPLITS:
        encoded = encode_documents(tok, documents[split])
        tensors = {"tokens": encoded.tokens, "labels": encoded.labels, "doc_offsets": encoded.doc_offsets}
        io.write_bytes(out_dir / f"{split}.safetensors", save(tensors))
        splits[split] = {"seed": seeds[split], **_split_summary(encoded, names)}
        log.info("%s: %d documents, %d tokens", split, encoded.n_documents, len(encoded.tokens))
    io.write_json(out_dir / "labels.json", list(names))

    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "vocab_size": len(tok),
        "n_distinct_words": len(build_vocabulary(cfg).distinct_words()),
        "labels": list(names),
        "splits": splits,
        "config": manifest_config(cfg),
    }
    io.write_json(out_dir / "manifest.json", manifest)  # last: its presence means the build finished
    return manifest
