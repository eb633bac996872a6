"""The grid of dictionaries (transcoder_lab.dictionaries.grid): jobs, checkpoint folder, stream name.
Training the grid end to end: test_pipeline.py and test_scale_out.py (through the stage script)."""

import dataclasses

import pytest
import torch
import yaml

from transcoder_lab.config import CONF_DIR, ConfigError, Sparsity, cell_name, load_profile, parse_seeded_cell
from transcoder_lab.dictionaries.activations import write_shards
from transcoder_lab.dictionaries.dictionary import load_dictionary
from transcoder_lab.dictionaries.grid import (
    batch_stream,
    checkpoint_name,
    jobs,
    passes,
    seed_training,
    train_grid,
)
from transcoder_lab.dictionaries.training import job_seeds
from transcoder_lab.paths import activations_dir, dictionary_dir
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook


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
        load_profile(
            "tiny",
            tmp_path,
            ["profile.dictionaries.cells=[L1_topk_transcoder]", "profile.dictionaries.topk_k=[]"],
        )


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


def test_a_seed_replica_trains_in_its_own_folder_with_the_seed_shifted(tmp_path):
    cfg = load_profile("tiny", tmp_path, ["profile.dictionaries.cells=[L1_transcoder,L1_transcoder_seed2]"])
    grid = cfg.profile.dictionaries
    assert passes(cfg) == [(0, None), (2, None)] and grid.parsed_cells == [
        (1, "transcoder"),
        (1, "transcoder"),
    ]
    plain, replica = jobs(cfg), jobs(cfg, seed=2)
    assert [job.spec for job in plain] == [job.spec for job in replica]  # the same dictionaries ...
    assert [job.out_dir.parent.name for job in replica] == ["L1_transcoder_seed2"] * len(grid.l1_coefficients)
    assert [job.out_dir.parent.name for job in plain] == ["L1_transcoder"] * len(grid.l1_coefficients)
    assert seed_training(cfg, 2).seed == grid.training.seed + 2  # ... from another seed, nothing else
    assert seed_training(cfg, 0) == grid.training
    assert dataclasses.replace(seed_training(cfg, 2), seed=grid.training.seed) == grid.training


@pytest.mark.parametrize("cell", ["L1_transcoder_seed0", "L1_transcoder_seed", "L1_transcoder_seed-1"])
def test_a_malformed_seed_replica_is_refused(tmp_path, cell):
    with pytest.raises(ConfigError, match="seed 0 is the plain name"):
        load_profile("tiny", tmp_path, [f"profile.dictionaries.cells=[{cell}]"])


def write_random_shards(cfg, n_rows: int = 1024) -> None:
    """Gaussian MLP input and output rows of every layer, as the train and held-out shards."""
    d_model = cfg.profile.model.d_model
    generator = torch.Generator().manual_seed(0)
    for split in ("train", "heldout"):
        hooks = [
            hook(layer) for layer in range(cfg.profile.model.n_layers) for hook in (mlp_in_hook, mlp_out_hook)
        ]
        rows = {name: torch.randn(n_rows, d_model, generator=generator) for name in hooks}
        write_shards([rows], activations_dir(cfg, split), shard_tokens=n_rows // 4, dtype=torch.float16)


def trained_weights(tmp_path, cells: str, *overrides: str) -> dict[str, dict[str, torch.Tensor]]:
    """Train the tiny grid's `cells` on random shards under tmp_path; each dictionary's state by folder."""
    cfg = load_profile("tiny", tmp_path, [f"profile.dictionaries.cells={cells}", *overrides])
    write_random_shards(cfg)
    train_grid(cfg)
    return {
        f"{job.out_dir.parent.name}/{job.out_dir.name}": load_dictionary(job.out_dir).state_dict()
        for seed, recipe in passes(cfg)
        for job in jobs(cfg, seed, recipe)
    }


def test_seeds_give_different_weights_and_a_seed_the_same_weights_every_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the resumable checkpoints go to ./checkpoints
    both = trained_weights(tmp_path / "both", "[L1_transcoder,L1_transcoder_seed1]")
    alone = trained_weights(tmp_path / "alone", "[L1_transcoder_seed1]")
    shifted = trained_weights(
        tmp_path / "shifted", "[L1_transcoder]", "profile.dictionaries.training.seed=43"
    )
    for label in ("l1_0.001", "l1_0.01"):
        replica, plain = both[f"L1_transcoder_seed1/{label}"], both[f"L1_transcoder/{label}"]
        # the same seed: bit-identical weights, whether or not seed 0 trained in the same run ...
        assert all(torch.equal(replica[key], alone[f"L1_transcoder_seed1/{label}"][key]) for key in replica)
        # ... and the same as seed 0's cell trained with training.seed + 1 (what a replica is defined as)
        assert all(torch.equal(replica[key], shifted[f"L1_transcoder/{label}"][key]) for key in replica)
        # another seed: other weights (random Gaussian initialisations never coincide)
        assert not torch.equal(replica["W_enc"], plain["W_enc"])
        assert not torch.equal(replica["W_dec"], plain["W_dec"])


# -- recipe replicas ("<cell>_paper": conf/dictionary_recipe/paper.yaml over the profile's training) --

RECIPE_KEYS = {"transcoder_init", "dead_features", "l1_warmup_fraction"}


def test_a_recipe_cell_parses_and_trains_with_the_recipe_s_settings_only(tmp_path):
    cfg = load_profile("organism", tmp_path)
    grid = cfg.profile.dictionaries
    paper = yaml.safe_load((CONF_DIR / "dictionary_recipe" / "paper.yaml").read_text())
    assert grid.recipes["paper"] == paper and set(paper) == RECIPE_KEYS  # composed from that one file
    assert grid.recipe == "live_transcoders"  # the organism's own
    assert parse_seeded_cell("L2_transcoder_paper", grid.recipes) == (2, "transcoder", 0, "paper")
    assert parse_seeded_cell("L2_sae_mlp_out_paper", grid.recipes) == (2, "sae_mlp_out", 0, "paper")
    assert parse_seeded_cell("L2_sae_mlp_in_seed1_paper", grid.recipes) == (2, "sae_mlp_in", 1, "paper")
    assert cell_name(2, "sae_mlp_in", 0, "paper") == "L2_sae_mlp_in_paper"
    assert {"L2_transcoder_paper", "L2_sae_mlp_out_paper", "L2_sae_mlp_in_paper"} <= set(grid.cells)
    own, recipe = seed_training(cfg, 0), seed_training(cfg, 0, "paper")
    changed = {f.name for f in dataclasses.fields(own) if getattr(own, f.name) != getattr(recipe, f.name)}
    assert changed == {"dead_features", "l1_warmup_fraction"}  # transcoder_init: random in both
    assert {key: getattr(recipe, key) for key in RECIPE_KEYS} == paper
    assert dataclasses.replace(recipe, **{key: getattr(own, key) for key in RECIPE_KEYS}) == own
    assert seed_training(cfg, 2, "paper").seed == own.seed + 2


def test_a_recipe_cell_writes_to_its_own_folder_and_leaves_the_other_jobs_as_they_were(tmp_path):
    with_paper = load_profile("organism", tmp_path)
    cells = [cell for cell in with_paper.profile.dictionaries.cells if not cell.endswith("_paper")]
    without = load_profile("organism", tmp_path, [f"profile.dictionaries.cells=[{','.join(cells)}]"])
    assert passes(without) == [(0, None), (1, None), (2, None)]
    assert passes(with_paper) == [(0, None), (0, "paper"), (1, None), (2, None)]
    for seed, recipe in passes(without):  # the same jobs (specs, folders, seeds) and training settings
        before, after = jobs(without, seed, recipe), jobs(with_paper, seed, recipe)
        assert after == before
        assert job_seeds(after, seed_training(with_paper, seed).seed) == job_seeds(
            before, seed_training(without, seed).seed
        )
        assert seed_training(with_paper, seed) == seed_training(without, seed)
        _, stream = batch_stream(with_paper, ["blocks.2.ln2.hook_normalized"], seed=seed)
        assert stream == batch_stream(without, ["blocks.2.ln2.hook_normalized"], seed=seed)[1]
    paper, plain = jobs(with_paper, 0, "paper"), jobs(with_paper, 0)
    assert {job.out_dir.parent.name for job in paper} == {"L2_transcoder_paper", "L2_sae_mlp_out_paper",
                                                          "L2_sae_mlp_in_paper"}  # fmt: skip
    assert not {job.out_dir for job in paper} & {job.out_dir for job in plain}
    # the same dictionaries as the plain cells, from the same initialisation seeds and batches
    same = [
        job
        for job in plain
        if job.out_dir.parent.name in {"L2_transcoder", "L2_sae_mlp_out", "L2_sae_mlp_in"}
    ]
    assert [job.spec for job in paper] == [job.spec for job in same]
    assert job_seeds(paper, 42) == job_seeds(same, 42)
    assert paper[0].out_dir == dictionary_dir(with_paper, 2, "transcoder", 5e-4, 0, "paper")
    assert str(paper[0].out_dir).endswith("dictionaries/organism/L2_transcoder_paper/l1_0.0005")


@pytest.mark.parametrize("cell", ["L2_transcoder_ghost", "L2_transcoder_paper_seed1"])
def test_an_unknown_recipe_or_misplaced_suffix_is_refused(tmp_path, cell):
    with pytest.raises(ConfigError, match="_<recipe>"):
        load_profile("organism", tmp_path, [f"profile.dictionaries.cells=[{cell}]"])


def test_a_recipe_replica_trains_its_own_pass_to_the_weights_of_the_recipe_profile(tmp_path, monkeypatch):
    """Tiny's own recipe is the paper's: its live_transcoders replica must give the weights that the
    plain cell gets when the whole profile trains with that recipe."""
    monkeypatch.chdir(tmp_path)
    both = trained_weights(tmp_path / "both", "[L1_transcoder,L1_transcoder_live_transcoders]")
    recipe = trained_weights(tmp_path / "recipe", "[L1_transcoder]", "+dictionary_recipe=live_transcoders")
    for label in ("l1_0.001", "l1_0.01"):
        replica, plain = both[f"L1_transcoder_live_transcoders/{label}"], both[f"L1_transcoder/{label}"]
        assert all(torch.equal(replica[key], recipe[f"L1_transcoder/{label}"][key]) for key in replica)
        assert not torch.equal(replica["W_enc"], plain["W_enc"])  # another recipe: other weights
