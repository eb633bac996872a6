"""Tokenizer files and the token ids the behavioural metrics read, for any model's tokenizer.

The organism's tokenizer (transcoder_lab.organism.tokenizer) is trained by the organism stage and
saved as one `tokenizer.json`; `load_tokenizer` reads it back wrapped as a Hugging Face fast
tokenizer, which is how the model loaders (transcoder_lab.sources.models) hand it to
TransformerLens. `two_digit_token_ids` and `first_token_ids` look up the answer tokens of the
greater-than and probability-mass metrics in any tokenizer (the organism's, GPT-2's, Pythia's).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

from transcoder_lab import io

SPECIAL_TOKEN = "<|endoftext|>"
TWO_DIGIT_STRINGS: tuple[str, ...] = tuple(f"{n:02d}" for n in range(100))


class TokenizerError(RuntimeError):
    """The tokenizer does not meet a guarantee the organism or a metric relies on."""


def wrap_tokenizer(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """`tokenizer` as a Hugging Face fast tokenizer with "<|endoftext|>" as BOS, EOS and padding."""
    # clean_up_tokenization_spaces would turn " ," into "," on decode and break round trips.
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=SPECIAL_TOKEN,
        eos_token=SPECIAL_TOKEN,
        pad_token=SPECIAL_TOKEN,
        clean_up_tokenization_spaces=False,
    )
    # TransformerLens's set_tokenizer reloads a tokenizer by `name_or_path` unless its init kwargs
    # say BOS is handled; ours never adds BOS itself, so TransformerLens prepends it (it checks
    # `encode("")`), and the reload, which would need a hub or a directory, is skipped.
    wrapped.init_kwargs.update(name_or_path="transcoder-lab-organism", add_bos_token=True)
    return wrapped


def save_tokenizer(tok: PreTrainedTokenizerFast, path: str | Path) -> None:
    """Write tokenizer.json atomically (a temporary file in the same folder, then os.replace)."""
    io.write_text(path, tok.backend_tokenizer.to_str(pretty=True))


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    return wrap_tokenizer(Tokenizer.from_file(str(path)))


def two_digit_token_ids(tok: PreTrainedTokenizerFast) -> list[int]:
    """Ids of "00".."99" in order (the greater-than metric's answer tokens)."""
    ids = []
    for two in TWO_DIGIT_STRINGS:
        encoded = tok.encode(two, add_special_tokens=False)
        if len(encoded) != 1:
            raise TokenizerError(f"{two!r} is not a single token")
        ids.append(encoded[0])
    return ids


def first_token_ids(tok: PreTrainedTokenizerFast, strings: Iterable[str]) -> list[int]:
    """Sorted distinct ids of the first token of each string (e.g. " Tavish" -> " T..."-token)."""
    return sorted({tok.encode(s, add_special_tokens=False)[0] for s in strings})
