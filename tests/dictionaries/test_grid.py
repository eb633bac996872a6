"""The grid of dictionaries (transcoder_lab.dictionaries.grid): jobs, checkpoint folder, stream name.
Training the grid end to end: test_pipeline.py and test_scale_out.py (through the stage script)."""

import pytest

from transcoder_lab.config import ConfigError, Sparsity, load_profile
from transcoder_lab.dictionaries.grid import batch_stream, checkpoint_name, jobs
from transcoder_lab.paths import dictionary_dir


def test_jobs_are_every_cell_at_every_sparsity_of_its_arm_in_config_order(tmp_path):
    cells = "[L1_transcoder,L0_sae_mlp_out,L1_skip_transcoder,L1_topk_transcoder]"
    cfg = load_profile(
        "tiny", tmp_path, [f"profile.dictionaries.cells={cells}", "profile.dictionaries.topk_k=[4,8]"]
    )
    grid, d_model = cfg.profile.dictionaries, cfg.profile.model.d_model
    todo = jobs(cfg)
    l1s = grid.l1_coefficients
    expected = (
        [("transcoder", 1, l1, None) for l1 in l1s]
        + [("sae_mlp_out", 0, l1, None) for l1 in l1s]
        + [("skip_transcoder", 1, l1, None) for l1 in l1s]
        + [("topk_transcoder", 1, 0.0, 4), ("topk_transcoder", 1, 0.0, 8)]
    )
    assert [(job.spec.arm, job.spec.layer, job.l1_coefficient, job.spec.k) for job in todo] == expected
    for job in todo:
        sparsity = Sparsity(job.l1_coefficient, job.spec.k)
        assert job.out_dir == dictionary_dir(cfg, job.spec.layer, job.spec.arm, sparsity)
        assert (job.spec.d_in, job.spec.d_sae, job.spec.d_out) == (
            d_model,
            grid.expansion_factor * d_model,
            d_model,
        )
    assert [job.out_dir.name for job in todo[-2:]] == ["k_4", "k_8"]
    assert {job.spec.skip for job in todo} == {False, True}
    assert all(job.spec.skip == (job.spec.arm == "skip_transcoder") for job in todo)
    # the same arm at the same layer is one cell: its seeds do not depend on the other cells
    assert len({job.name for job in todo}) == len(todo)


def test_a_topk_cell_needs_its_k_values(tmp_path):
    with pytest.raises(ConfigError, match="topk_k"):
        load_profile("tiny", tmp_path, ["profile.dictionaries.cells=[L1_topk_transcoder]"])


def test_an_unknown_arm_names_the_arms(tmp_path):
    with pytest.raises(ConfigError, match="skip_transcoder, topk_transcoder"):
        load_profile("tiny", tmp_path, ["profile.dictionaries.cells=[L1_crosscoder]"])


def test_checkpoint_name_holds_cells_and_l1_values_or_their_hash(tmp_path):
    short = load_profile("tiny", tmp_path, ["profile.dictionaries.cells=[L1_transcoder]"])
    assert checkpoint_name(short) == "L1_transcoder__l1_0.001-0.01"
    one_l1 = load_profile("tiny", tmp_path, ["profile.dictionaries.l1_coefficients=[0.01]"])
    assert checkpoint_name(one_l1) != checkpoint_name(load_profile("tiny", tmp_path))
    topk = load_profile("tiny", tmp_path, ["profile.dictionaries.cells=[L1_topk_transcoder]",
                                            "profile.dictionaries.topk_k=[4,8]"])  # fmt: skip
    assert checkpoint_name(topk) == "L1_topk_transcoder__l1_0.001-0.01__k_4-8"
    many_l1 = ",".join(f"{n}e-4" for n in range(1, 31))
    long = load_profile("tiny", tmp_path, [f"profile.dictionaries.l1_coefficients=[{many_l1}]"])
    name = checkpoint_name(long)
    assert name.startswith("grid_") and len(name) == len("grid_") + 16


def test_batch_stream_of_shards_is_named_by_its_folder_and_first_shard(tmp_path):
    cfg = load_profile("tiny", tmp_path)
    _, data_id = batch_stream(cfg, ["blocks.0.ln2.hook_normalized"])
    assert data_id.startswith("shards:") and data_id.endswith(":no shards")  # nothing harvested yet


def test_batch_stream_needs_a_text_source_outside_shard_mode(tmp_path):
    cfg = load_profile("tiny", tmp_path, ["profile.dictionaries.harvest.mode=stream"])
    with pytest.raises(ValueError, match="mode 'shards'"):
        batch_stream(cfg, ["blocks.0.ln2.hook_normalized"])
