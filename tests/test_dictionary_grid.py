"""The grid of dictionaries (dictionary_grid): its jobs, checkpoint folder and batch stream's name.
Training the grid end to end: test_pipeline.py and test_scale_out.py (through the stage script)."""

import pytest

from transcoder_lab.config import load_profile
from transcoder_lab.dictionary_grid import batch_stream, checkpoint_name, jobs
from transcoder_lab.paths import dictionary_dir


def test_jobs_are_every_cell_at_every_l1_coefficient_in_config_order(tmp_path):
    cfg = load_profile("tiny", tmp_path, ["profile.dictionaries.skip=true"])
    grid, d_model = cfg.profile.dictionaries, cfg.profile.model.d_model
    todo = jobs(cfg)
    expected = [(layer, kind, l1) for layer, kind in grid.parsed_cells for l1 in grid.l1_coefficients]
    assert [(job.spec.layer, job.spec.kind, job.l1_coefficient) for job in todo] == expected
    for job in todo:
        assert job.out_dir == dictionary_dir(cfg, job.spec.layer, job.spec.kind, job.l1_coefficient)
        assert (job.spec.d_in, job.spec.d_sae, job.spec.d_out) == (
            d_model,
            grid.expansion_factor * d_model,
            d_model,
        )
        assert job.spec.skip == (job.spec.kind == "transcoder")  # a skip connection: transcoders only


def test_checkpoint_name_holds_cells_and_l1_values_or_their_hash(tmp_path):
    short = load_profile("tiny", tmp_path, ["profile.dictionaries.cells=[L1_transcoder]"])
    assert checkpoint_name(short) == "L1_transcoder__l1_0.001-0.01"
    one_l1 = load_profile("tiny", tmp_path, ["profile.dictionaries.l1_coefficients=[0.01]"])
    assert checkpoint_name(one_l1) != checkpoint_name(load_profile("tiny", tmp_path))
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
