"""GPT-2's real tokenizer, built offline from its byte-pair-encoding ranks.

GPT-2's tokenizer is a byte-level BPE whose merges are fully determined by a rank table: each
token is a byte string with a rank, and encoding a pre-tokenized piece repeatedly merges the
adjacent pair of parts whose concatenation has the lowest rank. That table (tiktoken's
`r50k_base`: one line `base64(token bytes) rank` per token, ranks 0..50255) ships in
openai-whisper's source distribution as `whisper/assets/gpt2.tiktoken`; `make setup` fetches that
one file into `.cache/gpt2.tiktoken` and checks its SHA-256. `<|endoftext|>` (id 50256) is not in
the file.

Algorithm (`build_gpt2_tokenizer`)
1. Read the ranks and check the file's SHA-256 (`read_ranks`); the ranks must be exactly 0..50255,
   and every one of the 256 bytes must be a single-byte token (byte-level BPE never fails to encode).
2. Vocabulary: each token's bytes are written in GPT-2's printable byte alphabet
   (`byte_to_unicode`: printable Latin-1 bytes stand for themselves, the other 68 bytes map to
   U+0100.. in byte order), token string -> rank, plus `<|endoftext|>` -> 50256.
3. Merges (`recover_merges`): a token of two or more bytes was made by exactly one merge. Running
   rank-based BPE on the token's own bytes, allowing only tokens ranked below it, ends in the two
   parts that merge into it. Listing these pairs in the order of the merged token's rank makes a
   Hugging Face BPE (which applies the merge with the lowest list index first) apply the same
   merges in the same order as the rank table (which merges the lowest-ranked product first).
4. A `tokenizers.Tokenizer` with that BPE model, GPT-2's ByteLevel pre-tokenizer (GPT-2's regex,
   no prefix space), the ByteLevel post-processor and decoder, and `<|endoftext|>` as a special
   token, wrapped as `GPT2TokenizerFast` with `model_max_length` 1024 and `<|endoftext|>` as BOS,
   EOS and UNK, no padding token: what `AutoTokenizer.from_pretrained("gpt2")` returns.

`save_gpt2_tokenizer_files` writes the files the hub's `gpt2` repository holds for its tokenizer
(vocab.json, merges.txt, tokenizer.json, tokenizer_config.json), so `AutoTokenizer.from_pretrained`
on that folder (or on a local Hugging Face cache holding them) gives the same ids.

Run as `python -m transcoder_lab.sources.gpt2_tokenizer extract SDIST DEST` to copy the rank file out of
openai-whisper's sdist (read from the archive, never extracted to disk), check its hash and write
it atomically; the Makefile does this.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import GPT2TokenizerFast

from transcoder_lab import io
from transcoder_lab.config import REPO_ROOT

GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
RANKS_ENV_VAR = "TRANSCODER_LAB_GPT2_RANKS"
N_RANKED_TOKENS = 50256  # ranks 0..50255 in the file
END_OF_TEXT = "<|endoftext|>"
END_OF_TEXT_ID = 50256
MODEL_MAX_LENGTH = 1024  # GPT-2's context length, the hub tokenizer's model_max_length
SDIST_MEMBER_SUFFIX = "/whisper/assets/gpt2.tiktoken"
_MAX_RANKS_BYTES = 4 * 1024 * 1024  # the real file is 835,554 bytes; refuse to read a huge member
_FIX = "run `make setup` (it downloads openai-whisper's sdist and copies this one file out of it)"


class RanksFileError(RuntimeError):
    """GPT-2's rank file is missing, altered or malformed."""


def default_ranks_path() -> Path:
    """`$TRANSCODER_LAB_GPT2_RANKS` when set, else the repository's `.cache/gpt2.tiktoken`."""
    override = os.environ.get(RANKS_ENV_VAR)
    return Path(override) if override else REPO_ROOT / ".cache" / "gpt2.tiktoken"


def _check_hash(data: bytes, source: str, fix: str) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != GPT2_RANKS_SHA256:
        raise RanksFileError(
            f"{source} has SHA-256 {digest}, expected {GPT2_RANKS_SHA256} (GPT-2's r50k_base ranks); {fix}"
        )


def parse_ranks(data: bytes) -> dict[bytes, int]:
    """Token bytes -> rank from the `base64(token) rank` lines; ranks must be exactly 0..50255."""
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            encoded, rank_text = line.split()
            token, rank = base64.b64decode(encoded, validate=True), int(rank_text)
        except (ValueError, binascii.Error) as error:
            raise RanksFileError(f"line {number} is not `base64(token) rank`: {line[:60]!r}") from error
        if token in ranks:
            raise RanksFileError(f"line {number}: token {token!r} appears twice")
        ranks[token] = rank
    if sorted(ranks.values()) != list(range(N_RANKED_TOKENS)):
        raise RanksFileError(f"expected ranks 0..{N_RANKED_TOKENS - 1}, each once")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise RanksFileError(f"bytes {missing[:8]} have no single-byte token; not a byte-level BPE")
    return ranks


def read_ranks(path: str | Path | None = None) -> dict[bytes, int]:
    """GPT-2's BPE ranks (token bytes -> rank) from `path` (default `default_ranks_path()`),
    after checking the file's SHA-256."""
    path = Path(path) if path is not None else default_ranks_path()
    if not path.is_file():
        raise RanksFileError(
            f"GPT-2's BPE rank file {path} is missing; {_FIX}, or set {RANKS_ENV_VAR} to a copy of "
            f"tiktoken's r50k_base file (SHA-256 {GPT2_RANKS_SHA256})"
        )
    data = path.read_bytes()
    _check_hash(data, str(path), f"delete it and {_FIX}")
    return parse_ranks(data)


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's byte alphabet: each byte as one printable character. Printable ASCII and Latin-1
    bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the remaining 68 bytes (controls,
    space, soft hyphen, ...) take U+0100, U+0101, ... in byte order, so " " becomes "Ġ"."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shifted)
            shifted += 1
    return mapping


def _bpe_parts(token: bytes, ranks: dict[bytes, int], below: int) -> list[bytes]:
    """Rank-based BPE of `token`'s bytes using only tokens ranked below `below`: merge the adjacent
    pair whose concatenation has the lowest rank until no allowed pair is left."""
    parts = [bytes([b]) for b in token]
    while len(parts) > 1:
        best_index, best_rank = -1, below
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1], below)
            if rank < best_rank:
                best_index, best_rank = i, rank
        if best_index < 0:
            break
        parts[best_index : best_index + 2] = [parts[best_index] + parts[best_index + 1]]
    return parts


def recover_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The merge that made each multi-byte token, ordered by the merged token's rank."""
    merges: list[tuple[bytes, bytes]] = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = _bpe_parts(token, ranks, rank)
        if len(parts) != 2:
            raise RanksFileError(
                f"token {token!r} (rank {rank}) is not one merge of two lower-ranked tokens "
                f"(BPE of its bytes ends in {len(parts)} parts); not a BPE rank table"
            )
        merges.append((parts[0], parts[1]))
    return merges


def _backend(ranks: dict[bytes, int]) -> tuple[Tokenizer, dict[str, int], list[tuple[str, str]]]:
    """The `tokenizers.Tokenizer` of steps 2-4, with its vocabulary and merges in byte-alphabet strings."""
    alphabet = byte_to_unicode()

    def text(token: bytes) -> str:
        return "".join(alphabet[b] for b in token)

    vocab = {text(token): rank for token, rank in ranks.items()}
    vocab[END_OF_TEXT] = END_OF_TEXT_ID
    merges = [(text(a), text(b)) for a, b in recover_merges(ranks)]
    tokenizer = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
        )
    )
    # GPT-2's regex splits words with their leading space; no space is added before the first word.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(
        add_prefix_space=False, trim_offsets=True, use_regex=True
    )
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(END_OF_TEXT, special=True, normalized=True)])
    return tokenizer, vocab, merges


def _wrap(backend: Tokenizer) -> GPT2TokenizerFast:
    return GPT2TokenizerFast(
        tokenizer_object=backend,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        unk_token=END_OF_TEXT,
        add_prefix_space=False,
        model_max_length=MODEL_MAX_LENGTH,
    )


def build_gpt2_tokenizer(path: str | Path | None = None) -> GPT2TokenizerFast:
    """GPT-2's tokenizer (equivalent to `AutoTokenizer.from_pretrained("gpt2")`) from the rank file
    at `path` (default `default_ranks_path()`)."""
    backend, _, _ = _backend(read_ranks(path))
    tokenizer = _wrap(backend)
    if tokenizer.convert_tokens_to_ids(END_OF_TEXT) != END_OF_TEXT_ID or len(tokenizer) != END_OF_TEXT_ID + 1:
        raise RanksFileError(f"expected {END_OF_TEXT} at id {END_OF_TEXT_ID} and {END_OF_TEXT_ID + 1} tokens")
    return tokenizer


def save_gpt2_tokenizer_files(out_dir: str | Path, path: str | Path | None = None) -> list[Path]:
    """Write vocab.json, merges.txt, tokenizer.json and tokenizer_config.json (the hub `gpt2`
    repository's tokenizer files) into `out_dir`; returns their paths. `tokenizer_config.json` also
    names the tokenizer class, so the folder loads with `AutoTokenizer` even without a config.json."""
    out_dir = Path(out_dir)
    backend, vocab, merges = _backend(read_ranks(path))
    config = {
        "tokenizer_class": "GPT2Tokenizer",
        "model_max_length": MODEL_MAX_LENGTH,
        "bos_token": END_OF_TEXT,
        "eos_token": END_OF_TEXT,
        "unk_token": END_OF_TEXT,
        "add_prefix_space": False,
        "add_bos_token": False,
    }
    files = {
        "vocab.json": json.dumps(vocab, ensure_ascii=False),
        # merges.txt: the format's version header, then one "left right" pair per line.
        "merges.txt": "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
        "tokenizer.json": backend.to_str(),
        "tokenizer_config.json": json.dumps(config, indent=2) + "\n",
    }
    written = []
    for name, content in files.items():
        target = out_dir / name
        io.write_bytes(target, content.encode("utf-8"))
        written.append(target)
    return written


def extract_ranks_from_sdist(sdist: str | Path, dest: str | Path) -> Path:
    """Copy `whisper/assets/gpt2.tiktoken` out of openai-whisper's sdist into `dest`: the member is
    read from the archive (nothing else is extracted), its hash checked, then written atomically."""
    with tarfile.open(sdist, "r:gz") as archive:
        members = [m for m in archive.getmembers() if m.name.endswith(SDIST_MEMBER_SUFFIX) and m.isfile()]
        if len(members) != 1:
            raise RanksFileError(
                f"{sdist} holds {len(members)} files ending in {SDIST_MEMBER_SUFFIX}, expected 1"
            )
        if members[0].size > _MAX_RANKS_BYTES:
            raise RanksFileError(f"{members[0].name} is {members[0].size} bytes; GPT-2's rank file is < 1 MB")
        handle = archive.extractfile(members[0])
        assert handle is not None  # a regular file member always has data
        data = handle.read()
    _check_hash(
        data,
        f"{members[0].name} in {sdist}",
        "this openai-whisper release does not ship GPT-2's ranks unchanged; "
        "pin the release the Makefile names",
    )
    parse_ranks(data)
    io.write_bytes(dest, data)
    return Path(dest)


def main(argv: Sequence[str] | None = None) -> int:
    """`extract SDIST DEST` (used by the Makefile); errors print one line and exit with status 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] != "extract":
        print("usage: python -m transcoder_lab.sources.gpt2_tokenizer extract SDIST DEST", file=sys.stderr)
        return 2
    try:
        extract_ranks_from_sdist(args[1], args[2])
    except (RanksFileError, OSError, tarfile.TarError) as error:
        print(f"gpt2_tokenizer: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
