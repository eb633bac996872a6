"""Behaviour helpers: batching prompts by token length without padding."""

import torch

from transcoder_lab.behaviour import batches_by_length, last_token_logits
from transcoder_lab.sources.models import load_model


def test_batches_by_length_cover_every_prompt_once_without_padding(tiny_pipeline):
    cfg, _ = tiny_pipeline
    model = load_model(cfg.profile, cfg.paths.models)
    texts = ["The war lasted", "A", "The war lasted from the year 1732", "B c", "The war ended", "Z"]
    seen = []
    for chunk, batch in batches_by_length(model, texts, batch_size=2):
        assert len(chunk) == batch.shape[0] <= 2
        for row, index in enumerate(chunk):
            assert torch.equal(batch[row].cpu(), model.to_tokens(texts[index])[0].cpu())
        seen += chunk
    assert sorted(seen) == list(range(len(texts)))


def test_last_token_logits_match_one_prompt_at_a_time(tiny_pipeline):
    cfg, _ = tiny_pipeline
    model = load_model(cfg.profile, cfg.paths.models)
    texts = ["The war lasted from the year 1732 to the year 17", "He was caught", "He was", "She ran"]
    batched = last_token_logits(model, texts, batch_size=3)
    for row, text in enumerate(texts):
        alone = model(model.to_tokens(text))[0, -1].float().cpu()
        # same float32 computation, batched or not; only the summation order of matmuls may differ
        torch.testing.assert_close(batched[row], alone, rtol=1e-5, atol=1e-5)
