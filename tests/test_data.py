"""Packing documents into BOS-led contexts."""

import numpy as np
import pytest
import torch

from transcoder_lab.data import BOS_LABEL, pack_contexts, stream_contexts, tokenized_texts

BOS = 0


def test_every_context_starts_with_bos_and_keeps_token_order():
    docs = [np.arange(1, 8), np.arange(10, 13), np.arange(20, 31)]
    tokens = np.concatenate(docs)
    offsets = np.cumsum([0] + [len(d) for d in docs])
    contexts, _ = pack_contexts(tokens, offsets, n_ctx=5, bos_id=BOS)
    assert (contexts[:, 0] == BOS).all()
    # Dropping every BOS gives back the documents in order (up to the dropped ragged tail).
    body = contexts[:, 1:].reshape(-1)
    recovered = body[body != BOS]
    assert np.array_equal(recovered, tokens[: len(recovered)])
    assert len(recovered) >= len(tokens) - 4


def test_document_remainder_gets_a_fresh_bos():
    tokens = np.arange(1, 10)  # one document longer than a context
    contexts, _ = pack_contexts(tokens, np.array([0, 9]), n_ctx=4, bos_id=BOS)
    assert contexts.tolist() == [[BOS, BOS, 1, 2], [BOS, 3, 4, 5], [BOS, 6, 7, 8]]


def test_labels_travel_with_tokens():
    tokens = np.array([5, 6, 7, 8, 9, 10])
    labels = tokens % 3
    contexts, context_labels = pack_contexts(tokens, np.array([0, 2, 6]), n_ctx=4, bos_id=BOS, labels=labels)
    assert context_labels is not None
    real = contexts != BOS
    assert np.array_equal(context_labels[real], contexts[real] % 3)
    assert (context_labels[~real] == BOS_LABEL).all()


def test_rejects_context_without_room():
    with pytest.raises(ValueError, match="n_ctx"):
        pack_contexts(np.arange(3), np.array([0, 3]), n_ctx=1, bos_id=BOS)


def test_streaming_packs_exactly_like_the_array_version():
    rng = np.random.default_rng(0)
    docs = [rng.integers(1, 50, size=rng.integers(1, 30)) for _ in range(40)]
    tokens = np.concatenate(docs)
    offsets = np.cumsum([0] + [len(d) for d in docs])
    packed, _ = pack_contexts(tokens, offsets, n_ctx=9, bos_id=BOS)
    streamed = torch.cat(list(stream_contexts(docs, n_ctx=9, bos_id=BOS, batch_contexts=7)))
    assert np.array_equal(streamed.numpy(), packed)


def test_tokenized_texts_batches_without_special_tokens():
    class Tokenizer:
        def __call__(self, texts, add_special_tokens):
            assert add_special_tokens is False
            return {"input_ids": [[len(t)] for t in texts]}

    assert list(tokenized_texts(["a", "bb", "ccc"], Tokenizer(), batch_size=2)) == [[1], [2], [3]]
