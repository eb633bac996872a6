"""GPT-2's real tokenizer, built offline from its BPE ranks (transcoder_lab.sources.gpt2_tokenizer)."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from tokenizers import pre_tokenizers
from transformers import AutoTokenizer, GPT2TokenizerFast

from transcoder_lab.config import REPO_ROOT
from transcoder_lab.sources import gpt2_tokenizer as G

from helpers.gpt2_ranks import gpt2_tokenizer_or_skip, ranks_path_or_skip

# Varied text: contractions, digits, runs of spaces and newlines, punctuation runs, accented
# Latin, Greek, CJK, an emoji (4 UTF-8 bytes, split across tokens) and a control character.
VARIED = [
    "Hello world",
    "I'm sure they'll say it's 1732's war, isn't it?",
    "  two leading spaces\n\nand\ttabs\r\n   trailing   ",
    "(Smith et al., 2019; Lee and Park, 2021).",
    "naïve café, Zürich, São Paulo, Ærøskøbing",
    "Ελληνικά και русский текст",
    "漢字とかなの文章。한국어도.",
    "emoji 🙂 and 👩‍🔬 plus \u0007 bell",
    "$40,000 at an estimated cost of 3.5%!!! ...",
    "<|endoftext|>The war lasted from 1732 to 17",
]


@pytest.fixture(scope="module")
def tokenizer() -> GPT2TokenizerFast:
    return gpt2_tokenizer_or_skip()


def test_known_gpt2_ids(tokenizer: GPT2TokenizerFast) -> None:
    assert tokenizer.encode("Hello") == [15496]
    assert tokenizer.encode(" world") == [995]
    assert tokenizer.encode("<|endoftext|>") == [50256]
    assert tokenizer.encode("Hello world") == [15496, 995]
    assert tokenizer.encode(" Hello world") == [18435, 995]  # no prefix space is added
    assert len(tokenizer) == 50257


def test_special_tokens_and_length_match_the_hub_tokenizer(tokenizer: GPT2TokenizerFast) -> None:
    assert tokenizer.bos_token == tokenizer.eos_token == tokenizer.unk_token == "<|endoftext|>"
    assert tokenizer.bos_token_id == tokenizer.eos_token_id == 50256
    assert tokenizer.pad_token is None
    assert tokenizer.model_max_length == 1024
    assert tokenizer("Hello world")["input_ids"] == [15496, 995]  # no BOS or EOS added


def test_decode_round_trips_varied_text(tokenizer: GPT2TokenizerFast) -> None:
    for text in VARIED:
        ids = tokenizer.encode(text)
        assert tokenizer.decode(ids, clean_up_tokenization_spaces=False) == text


def _rank_bpe_ids(text: str, ranks: dict[bytes, int]) -> list[int]:
    """An independent encoder for comparison: GPT-2's pre-tokenization (from `tokenizers`), then
    rank-based BPE straight from the rank table: while some adjacent pair of parts concatenates to
    a token, merge the pair whose concatenation has the lowest rank."""
    decode_byte = {char: b for b, char in G.byte_to_unicode().items()}
    ids: list[int] = []
    for piece, _ in pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(text):
        parts = [bytes([decode_byte[char]]) for char in piece]
        while True:
            pairs = [(ranks.get(parts[i] + parts[i + 1]), i) for i in range(len(parts) - 1)]
            candidates = [(rank, i) for rank, i in pairs if rank is not None]
            if not candidates:
                break
            _, i = min(candidates)
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        ids += [ranks[part] for part in parts]
    return ids


def test_merges_reproduce_rank_based_bpe() -> None:
    """The recovered merge list must encode exactly as the rank table does, on ordinary text (this
    repository's README) and on the varied strings."""
    tokenizer = gpt2_tokenizer_or_skip()
    ranks = G.read_ranks(ranks_path_or_skip())
    # paragraph by paragraph, each within GPT-2's 1024-token context
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8").split("\n\n")
    texts = [*VARIED[:-1], *readme]
    assert sum(len(text) for text in readme) > 10_000
    for text in texts:
        assert tokenizer.encode(text) == _rank_bpe_ids(text, ranks)


def test_saved_files_reload_with_identical_ids(tokenizer: GPT2TokenizerFast, tmp_path: Path) -> None:
    written = G.save_gpt2_tokenizer_files(tmp_path / "gpt2", ranks_path_or_skip())
    names = {path.name for path in written}
    assert names == {"vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json"}
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "gpt2")
    assert reloaded.model_max_length == 1024 and reloaded.bos_token == "<|endoftext|>"
    assert reloaded.pad_token is None and len(reloaded) == 50257
    # vocab.json and merges.txt alone (the slow-tokenizer files) must give the same ids too.
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        (legacy / name).write_bytes((tmp_path / "gpt2" / name).read_bytes())
    from_vocab_and_merges = AutoTokenizer.from_pretrained(legacy)
    merges = (tmp_path / "gpt2" / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[:4] == ["#version: 0.2", "Ġ t", "Ġ a", "h e"] and len(merges) == 1 + 50000
    for text in VARIED:
        expected = tokenizer.encode(text)
        assert reloaded.encode(text) == expected
        assert from_vocab_and_merges.encode(text) == expected


# -- the rank file: hash, parsing and extraction (no real rank file needed) ----------------------


def test_missing_rank_file_names_make_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(G.RANKS_ENV_VAR, str(tmp_path / "absent.tiktoken"))
    assert G.default_ranks_path() == tmp_path / "absent.tiktoken"
    with pytest.raises(G.RanksFileError, match="make setup"):
        G.read_ranks()


def test_altered_rank_file_is_refused(tmp_path: Path) -> None:
    altered = tmp_path / "gpt2.tiktoken"
    altered.write_bytes(b"IQ== 0\n")
    with pytest.raises(G.RanksFileError, match="SHA-256"):
        G.read_ranks(altered)


def test_recover_merges_on_a_small_rank_table() -> None:
    ranks = {bytes([b]): b for b in range(256)}
    ranks |= {b"ab": 256, b"bc": 257, b"abc": 258, b"cab": 259}
    # "abc": "ab" (256) merges before "bc" (257), leaving "ab" + "c"; "cab": "c" + "ab".
    assert G.recover_merges(ranks) == [(b"a", b"b"), (b"b", b"c"), (b"ab", b"c"), (b"c", b"ab")]
    ranks[b"xyz"] = 260  # neither "xy" nor "yz" is a token: not one merge
    with pytest.raises(G.RanksFileError, match="not one merge"):
        G.recover_merges(ranks)


def test_parse_ranks_requires_every_rank_once() -> None:
    lines = [f"{base64.b64encode(bytes([b])).decode()} {b}" for b in range(256)]
    with pytest.raises(G.RanksFileError, match="expected ranks 0..50255"):
        G.parse_ranks("\n".join(lines).encode())


def _sdist(path: Path, member: str, data: bytes) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


def test_extract_refuses_a_member_with_the_wrong_hash(tmp_path: Path) -> None:
    sdist = _sdist(tmp_path / "w.tar.gz", "openai_whisper-0/whisper/assets/gpt2.tiktoken", b"IQ== 0\n")
    dest = tmp_path / "cache" / "gpt2.tiktoken"
    assert G.main(["extract", str(sdist), str(dest)]) == 1
    assert not dest.exists()


def test_extract_copies_the_rank_file_out_of_an_sdist(tmp_path: Path) -> None:
    data = ranks_path_or_skip().read_bytes()
    sdist = _sdist(tmp_path / "w.tar.gz", "openai_whisper-0/whisper/assets/gpt2.tiktoken", data)
    dest = G.extract_ranks_from_sdist(sdist, tmp_path / "cache" / "gpt2.tiktoken")
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == G.GPT2_RANKS_SHA256
