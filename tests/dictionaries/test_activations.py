"""Harvesting, the shuffle buffer, on-disk shards and the activations stage (`harvest_activations`)."""

import json

import pytest
import torch
from transformer_lens import HookedTransformer

from transcoder_lab.config import load_profile
from transcoder_lab.dictionaries.activations import (
    ShuffleBuffer,
    context_batches,
    harvest_activations,
    harvest_batches,
    harvest_split,
    harvested_layers,
    needed_hooks,
    read_shards,
    write_shards,
)
from transcoder_lab.paths import activations_dir
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook
from transcoder_lab.sources.models import build_processed_model, load_model
from transcoder_lab.standins.gpt2 import gpt2_shaped_config


@pytest.fixture(scope="module")
def small_model() -> HookedTransformer:
    config = gpt2_shaped_config(seed=0, n_layers=3, d_model=32, d_head=8, n_heads=4, d_mlp=64, d_vocab=100)
    return build_processed_model(config)


def test_harvest_matches_a_full_forward_pass_row_for_row(small_model):
    tokens = torch.randint(0, 100, (6, 10), generator=torch.Generator().manual_seed(0))
    hooks = needed_hooks([0, 1])
    batches = list(harvest_batches(small_model, context_batches(tokens, 4), hooks))
    assert [len(b[hooks[0]]) for b in batches] == [40, 20]
    _, cache = small_model.run_with_cache(tokens)
    for hook in hooks:
        harvested = torch.cat([b[hook] for b in batches])
        torch.testing.assert_close(harvested, cache[hook].reshape(-1, 32))


def test_harvest_stops_after_the_last_needed_layer(small_model):
    seen = []
    small_model.blocks[2].hook_resid_pre.add_hook(lambda act, hook: seen.append(hook.name))
    try:
        list(harvest_batches(small_model, [torch.zeros(1, 4, dtype=torch.long)], needed_hooks([1])))
    finally:
        small_model.reset_hooks()
    assert seen == []


def test_needed_hooks_pairs_mlp_input_and_output():
    assert needed_hooks([2, 0, 2]) == [mlp_in_hook(0), mlp_out_hook(0), mlp_in_hook(2), mlp_out_hook(2)]


def rows(n: int, start: int = 0) -> dict[str, torch.Tensor]:
    ids = torch.arange(start, start + n, dtype=torch.float32)[:, None]
    return {"a": ids.repeat(1, 3), "b": -ids}


@pytest.mark.parametrize(
    "overrides, layers",
    [
        ([], [0, 1, 2, 3]),  # the organism's grid has a transcoder at every layer: CLTs change nothing
        (["profile.dictionaries.cells=[L2_transcoder]"], [0, 1, 2, 3]),  # the CLTs need every layer
        (["profile.dictionaries.cells=[L2_transcoder]", "profile.crosslayer.l1_coefficients=[]"], [2]),
    ],
)
def test_the_harvest_covers_every_layer_when_the_profile_lists_crosslayer_transcoders(overrides, layers):
    cfg = load_profile("organism", overrides=overrides)
    assert harvested_layers(cfg) == layers


def test_shuffle_buffer_yields_every_row_once_aligned_and_mixed():
    incoming = [rows(10, start) for start in range(0, 100, 10)]
    out = list(ShuffleBuffer(capacity=40, batch_size=8, seed=0)(incoming))
    assert all(len(batch["a"]) == 8 for batch in out)
    seen = torch.cat([batch["a"][:, 0] for batch in out])
    assert len(seen) == len(set(seen.tolist())) and len(seen) >= 100 - 8
    for batch in out:  # rows stay aligned across hooks
        assert torch.equal(batch["a"][:, 0], -batch["b"][:, 0])
    assert not torch.equal(seen, seen.sort().values)  # shuffled


def test_shuffle_buffer_is_deterministic_for_a_seed():
    incoming = [rows(10, start) for start in range(0, 60, 10)]
    first = [b["a"] for b in ShuffleBuffer(20, 4, seed=3)(incoming)]
    again = [b["a"] for b in ShuffleBuffer(20, 4, seed=3)(incoming)]
    other = [b["a"] for b in ShuffleBuffer(20, 4, seed=4)(incoming)]
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(first, other, strict=True))


def test_shuffle_buffer_memory_is_bounded_by_capacity():
    buffer = ShuffleBuffer(capacity=32, batch_size=4, seed=0)
    largest = 0
    for _ in buffer(rows(8, start) for start in range(0, 4000, 8)):
        largest = max(largest, len(buffer.rows["a"]))
    assert largest <= 32 + 8  # capacity plus at most one incoming batch


def test_shards_round_trip(tmp_path):
    incoming = [rows(10, start) for start in range(0, 35, 10)]  # 40 rows
    manifest = write_shards(incoming, tmp_path, shard_tokens=16, dtype=torch.float16)
    assert manifest["n_shards"] == 3 and manifest["n_tokens"] == 40
    back = list(read_shards(tmp_path))
    assert [len(b["a"]) for b in back] == [16, 16, 8]
    assert torch.equal(torch.cat([b["a"] for b in back]), torch.cat([r["a"] for r in incoming]))
    assert list(read_shards(tmp_path, hooks=["b"]))[0].keys() == {"b"}


def test_reading_missing_shards_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="harvest"):
        next(read_shards(tmp_path))


def reference_shuffle(incoming, capacity: int, batch_size: int, seed: int):
    """The shuffle buffer written plainly: every batch concatenated onto the buffer as it comes."""
    generator, rows = torch.Generator().manual_seed(seed), None
    for batch in incoming:
        rows = batch["a"] if rows is None else torch.cat([rows, batch["a"]])
        while len(rows) >= capacity:
            rows = rows[torch.randperm(len(rows), generator=generator)]
            half = (len(rows) // 2 // batch_size) * batch_size
            yield from (rows[start : start + batch_size] for start in range(0, half, batch_size))
            rows = rows[half:]
    while rows is not None and len(rows) >= batch_size:
        order = torch.randperm(len(rows), generator=generator)
        n = (len(rows) // batch_size) * batch_size
        yield from (rows[order[start : start + batch_size]] for start in range(0, n, batch_size))
        rows = rows[order[n:]]


@pytest.mark.parametrize("incoming_rows", [3, 8, 24, 70])  # batches smaller and larger than the buffer
def test_shuffle_buffer_gives_the_batches_of_the_plain_algorithm(incoming_rows):
    """Concatenating once per fill (not once per batch) changes no batch, bit for bit."""
    stream = [{"a": torch.randn(incoming_rows, 3)} for _ in range(25)]
    got = [batch["a"] for batch in ShuffleBuffer(40, 8, seed=5)(iter(stream))]
    expected = list(reference_shuffle(iter(stream), 40, 8, seed=5))
    assert len(got) == len(expected) > 0
    assert all(torch.equal(g, e) for g, e in zip(got, expected, strict=True))


# -- the activations stage (`harvest_activations`) --------------------------------------------------


def test_harvest_activations_in_stream_mode_writes_only_a_manifest(tmp_path):
    cfg = load_profile("gpt2_small", tmp_path)  # a pretrained profile: harvested while training
    manifest = harvest_activations(cfg)  # no model is loaded (none is on this machine)
    assert manifest == {"mode": "stream", "text": vars(cfg.profile.text)}
    assert [path.name for path in activations_dir(cfg).iterdir()] == ["manifest.json"]
    assert json.loads((activations_dir(cfg) / "manifest.json").read_text()) == manifest


def test_the_activations_stage_shards_the_tokens_of_each_split(tiny_pipeline):
    cfg, _ = tiny_pipeline  # its activations stage ran harvest_activations
    harvest = cfg.profile.dictionaries.harvest
    manifest = json.loads((activations_dir(cfg) / "manifest.json").read_text())
    hooks = sorted(needed_hooks(cfg.profile.dictionaries.layers))
    assert manifest["mode"] == "shards"
    for split, n_tokens in (("train", harvest.n_tokens), ("heldout", harvest.heldout_tokens)):
        whole_contexts = -(-n_tokens // harvest.context_size) * harvest.context_size
        assert manifest[split] == json.loads((activations_dir(cfg, split) / "manifest.json").read_text())
        assert manifest[split]["n_tokens"] == whole_contexts
        assert manifest[split]["hooks"] == hooks and manifest[split]["dtype"] == harvest.dtype
        shards = read_shards(activations_dir(cfg, split))
        assert sum(len(shard[hooks[0]]) for shard in shards) == whole_contexts


def test_harvest_split_refuses_more_tokens_than_the_split_holds(tiny_pipeline):
    cfg, _ = tiny_pipeline
    model = load_model(cfg.profile, cfg.paths.models)
    with pytest.raises(ValueError, match="of the heldout split needs .* contexts; the corpus has"):
        harvest_split(cfg, model, "heldout", 10**9)
