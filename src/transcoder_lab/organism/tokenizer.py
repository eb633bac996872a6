"""The organism's tokenizer: an offline byte-level BPE with GPT-2-like pieces and two-digit years.

Algorithm
1. Pre-tokenization (`PRETOKENIZE_PATTERN`) cuts text into GPT-2-like pieces with the leading
   space attached (" caught", " the"), one punctuation character per piece, and digits in groups
   of two with the space on the first group: " 1732" -> " 17" + "32". GPT-2 itself usually
   splits years into two two-digit tokens; we make it a rule, so the greater-than task reads a
   century token and a two-digit year token. Differences from GPT-2's pattern: no contraction
   alternatives (the corpus has no apostrophes) and one punctuation character per piece (GPT-2
   glues runs such as ")."), so every label boundary of the corpus is a token boundary.
2. The pieces are mapped to GPT-2's byte alphabet (ByteLevel, no prefix space, no second regex)
   and a BPE model is trained with the `tokenizers` library up to `vocab_size` entries, with
   "<|endoftext|>" as id 0 (BOS, EOS and padding).
3. Year guarantee: "00".."99" and " 11".." 19" must each encode to one token. A large corpus
   learns them anyway; a small one (tests, tiny vocabularies) may not. Missing ones are added as
   extra merges at the end of the merge list (both merge orders for " 1d", so they apply whatever
   the trained ranks of " 1" and "1d"), and the latest trained merges that no kept merge depends
   on are dropped to stay within `vocab_size`. The result is checked by encoding and a
   `TokenizerError` is raised if the guarantee fails.
4. The `tokenizers.Tokenizer` is wrapped as a Hugging Face fast tokenizer with no post-processor,
   so encoding never adds special tokens (TransformerLens prepends BOS itself); saving, loading and
   the token-id lookups the metrics use live in transcoder_lab.sources.tokens, below the organism.
5. `encode_documents` batch-encodes documents and labels each token with the label of the span
   that contains its first character (from the tokenizer's character offsets). It also checks
   that no token straddles two spans, which would mean a label boundary inside a token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerFast

from transcoder_lab.organism.corpus import Document
from transcoder_lab.sources.tokens import SPECIAL_TOKEN, TWO_DIGIT_STRINGS, TokenizerError, wrap_tokenizer

# Letters, two-digit groups, single digits, single punctuation characters; a leading space stays
# with the piece that follows it. Runs of whitespace follow GPT-2 (the last space joins the next word).
PRETOKENIZE_PATTERN = r" ?\p{L}+| ?\p{N}{2}| ?\p{N}| ?[^\s\p{L}\p{N}]|\s+(?!\S)|\s+"
CENTURY_STRINGS: tuple[str, ...] = tuple(f" {n}" for n in range(11, 20))
_SPACE = "Ġ"  # GPT-2's byte-level symbol for " "


def _split() -> pre_tokenizers.Split:
    return pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated")


def pretokenize(text: str) -> list[str]:
    """The pieces the tokenizer sees before BPE (in plain characters, not byte symbols)."""
    return [piece for piece, _ in _split().pre_tokenize_str(text)]


def _new_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [_split(), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _single_token_failures(tokenizer: Tokenizer) -> list[str]:
    return [
        s
        for s in TWO_DIGIT_STRINGS + CENTURY_STRINGS
        if len(tokenizer.encode(s, add_special_tokens=False).ids) != 1
    ]


def _add_year_merges(tokenizer: Tokenizer, vocab_size: int) -> Tokenizer:
    """Append the merges that make every year piece one token, staying within vocab_size."""
    state = json.loads(tokenizer.to_str())
    model = state["model"]
    vocab: dict[str, int] = model["vocab"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    merge_set = set(merges)
    extra: list[tuple[str, str]] = []
    for two in TWO_DIGIT_STRINGS:
        extra.append((two[0], two[1]))
    for century in CENTURY_STRINGS:  # " 17" is "Ġ" "1" "7" before merging
        extra.append((_SPACE, century[1:]))  # the path when "1" + "7" has the better rank
        if (_SPACE, "1") in merge_set:
            extra.append((_SPACE + "1", century[2]))  # the path when "Ġ" + "1" has the better rank
    extra = [pair for pair in dict.fromkeys(extra) if pair not in merge_set]

    trained_products = [a + b for a, b in merges]
    if len(set(trained_products)) != len(trained_products):
        raise TokenizerError("the trained BPE has two merges with the same product; cannot edit it safely")
    base = [
        token
        for token, _ in sorted(vocab.items(), key=lambda kv: kv[1])
        if token not in set(trained_products)
    ]
    new_products = {a + b for a, b in extra} - set(trained_products)
    budget = vocab_size - len(base) - len(new_products)
    # Tokens that must survive: the year pieces and every part an appended merge consumes.
    protected = {a + b for a, b in extra} | {a for pair in extra for a in pair}
    protected |= set(TWO_DIGIT_STRINGS) | {_SPACE + c[1:] for c in CENTURY_STRINGS}
    keep = [True] * len(merges)
    n_products = len(merges)
    # Walk from the latest merge back: a merge's product is only consumed by later merges, so
    # once those are decided we know whether this one is still needed.
    for i in range(len(merges) - 1, -1, -1):
        a, b = merges[i]
        if n_products > budget and a + b not in protected:
            keep[i] = False
            n_products -= 1
        else:
            protected |= {a, b}
    if n_products > budget:
        raise TokenizerError(
            f"vocab_size {vocab_size} is too small to hold the byte alphabet and the "
            f"{len(TWO_DIGIT_STRINGS) + len(CENTURY_STRINGS)} year tokens"
        )
    final_merges = [m for m, k in zip(merges, keep, strict=True) if k] + extra
    new_vocab: dict[str, int] = {}
    for token in base + [a + b for a, b in final_merges]:
        new_vocab.setdefault(token, len(new_vocab))
    model["vocab"] = new_vocab
    model["merges"] = [[a, b] for a, b in final_merges]
    return Tokenizer.from_str(json.dumps(state))


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train the byte-level BPE on `texts` and guarantee single-token year pieces."""
    minimum = 1 + 256 + len(TWO_DIGIT_STRINGS) + 2 * len(CENTURY_STRINGS) + 1
    if vocab_size < minimum:
        raise ValueError(f"vocab_size must be at least {minimum} (special token, 256 bytes, year pieces)")
    tokenizer = _new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SPECIAL_TOKEN],  # first, so it gets id 0
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodes, no unknowns
        show_progress=False,
    )
    length = len(texts) if isinstance(texts, Sequence) else None
    tokenizer.train_from_iterator(texts, trainer=trainer, length=length)
    if _single_token_failures(tokenizer):
        tokenizer = _add_year_merges(tokenizer, vocab_size)
    failures = _single_token_failures(tokenizer)
    if failures:
        raise TokenizerError(f"these year pieces are not single tokens: {failures}")
    if tokenizer.token_to_id(SPECIAL_TOKEN) != 0 or tokenizer.get_vocab_size() > vocab_size:
        raise TokenizerError("expected <|endoftext|> at id 0 and at most vocab_size tokens")
    return wrap_tokenizer(tokenizer)


@dataclass
class EncodedCorpus:
    """Documents as flat arrays; document d is tokens[doc_offsets[d]:doc_offsets[d + 1]]."""

    tokens: np.ndarray  # int32 token ids, documents concatenated without BOS
    labels: np.ndarray  # uint8 label id per token (index into the corpus labels, corpus.labels)
    doc_offsets: np.ndarray  # int64, length n_documents + 1

    @property
    def n_documents(self) -> int:
        return len(self.doc_offsets) - 1


def encode_documents(
    tok: PreTrainedTokenizerFast,
    documents: Sequence[Document],
    batch_size: int = 4096,
    progress: bool | None = None,
) -> EncodedCorpus:
    """Tokenize documents and label every token with the span holding its first character."""
    backend = tok.backend_tokenizer
    token_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    lengths = np.zeros(len(documents), dtype=np.int64)
    show = len(documents) >= 5000 if progress is None else progress
    starts = range(0, len(documents), batch_size)
    for batch_start in tqdm(starts, desc="encoding documents", disable=not show):
        batch = documents[batch_start : batch_start + batch_size]
        encodings = backend.encode_batch([d.text for d in batch], add_special_tokens=False)
        for i, (document, encoding) in enumerate(zip(batch, encodings, strict=True)):
            offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
            spans = np.asarray(document.spans, dtype=np.int64).reshape(-1, 3)
            # Index of the span containing each token's first and last character.
            first = np.searchsorted(spans[:, 0], offsets[:, 0], side="right") - 1
            last = np.searchsorted(spans[:, 0], offsets[:, 1] - 1, side="right") - 1
            if (first != last).any():
                k = int(np.flatnonzero(first != last)[0])
                s, e = offsets[k]
                raise ValueError(
                    f"token {document.text[s:e]!r} at {s} straddles two labelled spans; "
                    "a label boundary must fall on a pre-token boundary"
                )
            token_parts.append(np.asarray(encoding.ids, dtype=np.int32))
            label_parts.append(spans[first, 2].astype(np.uint8))
            lengths[batch_start + i] = len(encoding.ids)
    doc_offsets = np.zeros(len(documents) + 1, dtype=np.int64)
    np.cumsum(lengths, out=doc_offsets[1:])
    empty_i = np.zeros(0, dtype=np.int32)
    empty_u = np.zeros(0, dtype=np.uint8)
    return EncodedCorpus(
        tokens=np.concatenate(token_parts) if token_parts else empty_i,
        labels=np.concatenate(label_parts) if label_parts else empty_u,
        doc_offsets=doc_offsets,
    )
