"""Config composition, schema checks, and agreement of params.yaml with conf/."""

import pytest
import yaml
from omegaconf import OmegaConf

from transcoder_lab.config import PARAMS_FILE, ConfigError, compose, load_config

PROFILES = ["organism", "tiny", "gpt2_small", "pythia_410m", "pythia_1_4b"]


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_composes_and_validates(profile):
    cfg = load_config(compose([f"profile={profile}"]))
    assert cfg.profile.name == profile


def test_default_profile_is_organism():
    assert load_config(compose()).profile.name == "organism"


def test_params_yaml_is_the_composition_of_conf():
    """params.yaml is committed; regenerate it with `make params` when conf/ changes."""
    committed = yaml.safe_load(PARAMS_FILE.read_text())
    composed = OmegaConf.to_container(compose([f"profile={committed['profile']['name']}"]), resolve=True)
    assert committed == composed, "params.yaml is stale: run `make params` and commit it"


def test_committed_params_use_the_default_profile():
    assert yaml.safe_load(PARAMS_FILE.read_text())["profile"]["name"] == "organism"


def test_unknown_key_is_named():
    raw = compose(["profile=tiny"])
    OmegaConf.set_struct(raw, False)
    raw.profile.training.learning_rate_typo = 0.1
    with pytest.raises(ConfigError, match="learning_rate_typo"):
        load_config(raw)


def test_wrong_type_is_named():
    raw = compose(["profile=tiny"])
    raw.profile.training.max_steps = "many"
    with pytest.raises(ConfigError, match="max_steps"):
        load_config(raw)


def test_inconsistent_head_shape_is_rejected():
    raw = compose(["profile=tiny", "profile.model.d_head=7"])
    with pytest.raises(ConfigError, match="n_heads \\* d_head"):
        load_config(raw)


def test_square_mlp_is_rejected_before_training():
    raw = compose(["profile=tiny", "profile.model.d_mlp=${profile.model.d_model}"])
    with pytest.raises(ConfigError, match="d_mlp equals d_model"):
        load_config(raw)


def test_pretrained_profile_has_no_corpus_and_gpt2_shapes():
    cfg = load_config(compose(["profile=gpt2_small"]))
    assert cfg.profile.corpus is None and cfg.profile.training is None
    model = cfg.profile.model
    assert (model.n_layers, model.d_model, model.d_mlp, model.n_heads) == (12, 768, 3072, 12)


def test_dictionary_cells_parse_into_layers_and_arms():
    grid = load_config(compose(["profile=organism"])).profile.dictionaries
    assert ("L2_sae_mlp_in" in grid.cells) and grid.parsed_cells[0] == (0, "transcoder")
    assert grid.layers == [0, 1, 2, 3] and grid.layers_of("sae_mlp_out") == [1, 2]
    assert grid.layers_of("topk_transcoder") == [2]
    assert [s.label for s in grid.sweep("topk_transcoder")] == [f"k_{k}" for k in grid.topk_k]
    assert [s.l1_coefficient for s in grid.sweep("skip_transcoder")] == grid.l1_coefficients


def test_the_organism_compares_every_arm_on_two_layers_at_five_sparsities():
    """The lab's own bar for the Pareto comparison: transcoders and both SAE baselines on at least two
    layers with at least five sparsity values each, and the follow-up's skip and TopK arms at layer 2."""
    grid = load_config(compose(["profile=organism"])).profile.dictionaries
    for arm in ("transcoder", "sae_mlp_out", "sae_mlp_in"):
        assert len(grid.layers_of(arm)) >= 2 and len(grid.sweep(arm)) >= 5, arm
    for arm in ("skip_transcoder", "topk_transcoder"):
        assert 2 in grid.layers_of(arm) and len(grid.sweep(arm)) >= 5, arm


def test_the_recipes_are_named_options():
    """The paper profiles train with the paper's recipe and the organism with live_transcoders;
    either is selected on any profile by name, and a recipe changes only its own keys."""
    paper = load_config(compose(["profile=gpt2_small"])).profile.dictionaries.training
    recipe = (paper.transcoder_init, paper.dead_features, paper.l1_warmup_fraction)
    assert recipe == ("random", "ghost_grads", 0.0)
    live = load_config(compose(["profile=gpt2_small", "+dictionary_recipe=live_transcoders"]))
    live_training = live.profile.dictionaries.training
    assert (live_training.dead_features, live_training.l1_warmup_fraction) == ("none", 0.8)
    assert live_training.lr == paper.lr and live_training.n_steps == paper.n_steps
    organism = load_config(compose(["profile=organism"])).profile.dictionaries.training
    organism_live = load_config(compose(["profile=organism", "+dictionary_recipe=live_transcoders"]))
    assert organism == organism_live.profile.dictionaries.training  # the organism's default is that recipe
    organism_paper = load_config(compose(["profile=organism", "+dictionary_recipe=paper"])).profile
    training = organism_paper.dictionaries.training
    assert (training.dead_features, training.l1_warmup_fraction) == ("ghost_grads", 0.0)
    assert organism_paper.name == "organism" and training.lr == organism.lr


@pytest.mark.parametrize(
    "cell, message",
    [
        ("L2_sae", "not 'L<layer>_<arm>'"),
        ("layer2_transcoder", "not 'L<layer>_<arm>'"),
        ("L9_transcoder", "layer 9"),
    ],
)
def test_bad_dictionary_cell_is_named(cell, message):
    with pytest.raises(ConfigError, match=message):
        load_config(compose(["profile=tiny", f"profile.dictionaries.cells=[{cell}]"]))


def test_duplicate_dictionary_cell_is_rejected():
    with pytest.raises(ConfigError, match="twice"):
        load_config(compose(["profile=tiny", "profile.dictionaries.cells=[L0_transcoder,L0_transcoder]"]))


def declared_params() -> set[str]:
    """Every param key a stage of dvc.yaml lists (DVC refuses to run a stage whose key is missing)."""
    from transcoder_lab.config import REPO_ROOT

    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    keys = set()
    for stage in stages.values():
        for entry in stage.get("do", stage).get("params", []):
            if isinstance(entry, str):  # a key of params.yaml (a dict entry would name another file)
                keys.add(entry.replace("${key}", "greater_than"))  # foreach over case studies: one of them
    return keys


@pytest.mark.parametrize("profile", PROFILES)
def test_every_param_a_stage_declares_is_in_the_composition(profile):
    composed = compose([f"profile={profile}"])
    keys = declared_params()
    assert "profile.cpu_threads" in keys and "profile.corpus" in keys
    absent = "<absent>"
    missing = [key for key in sorted(keys) if OmegaConf.select(composed, key, default=absent) == absent]
    assert not missing, f"conf/profile/{profile}.yaml lacks {missing}: params.yaml would lack them too"


@pytest.mark.parametrize("profile", PROFILES)
def test_closed_choices_load_as_enums_and_write_as_their_plain_strings(profile):
    """Closed choices are StrEnums whose members are named as their values: the YAML's strings load
    by name, compare equal to those strings and serialise (JSON, OmegaConf's YAML) as them."""
    import dataclasses
    import json
    from enum import StrEnum

    composed = OmegaConf.to_container(compose([f"profile={profile}"]), resolve=True)
    cfg = load_config(composed)
    training = cfg.profile.dictionaries.training
    assert isinstance(training.dead_features, StrEnum) and isinstance(cfg.profile.model.source, StrEnum)
    assert training.dead_features == composed["profile"]["dictionaries"]["training"]["dead_features"]
    plain = json.loads(json.dumps(dataclasses.asdict(cfg.profile)))
    assert plain["model"]["source"] == composed["profile"]["model"]["source"]
    assert plain["dictionaries"]["harvest"]["mode"] == composed["profile"]["dictionaries"]["harvest"]["mode"]
    dumped = yaml.safe_load(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    for section in ("harvest", "training"):  # the YAML's keys (the schema's defaults fill the rest)
        written = composed["profile"]["dictionaries"][section]
        assert {key: dumped["profile"]["dictionaries"][section][key] for key in written} == written
    assert dumped["case_study"]["greater_than"]["analysis"] == "greater_than"


def test_a_pretrained_model_without_a_name_is_named():
    with pytest.raises(ConfigError, match="pretrained_name"):
        load_config(compose(["profile=gpt2_small", "profile.model.pretrained_name=null"]))


def test_an_unknown_choice_lists_the_options():
    with pytest.raises(ConfigError, match="dead_features.*ghost_grads, resample, none"):
        load_config(compose(["profile=tiny", "profile.dictionaries.training.dead_features=revive"]))


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profiles_crosslayer_block_checks_against_its_schema(profile):
    """config.py keeps `profile.crosslayer` as a plain dict; crosslayer_config types it. The organism
    trains at least four CLTs with the per-layer transcoders' recipe, width and L1 warm-up; the
    pretrained profiles list none (the crosslayer stage then has no instances)."""
    from transcoder_lab.dictionaries.crosslayer import crosslayer_config

    cfg = load_config(compose([f"profile={profile}"]))
    block = crosslayer_config(cfg)
    if profile == "organism":
        grid = cfg.profile.dictionaries
        assert len(block.l1_coefficients) >= 4 and block.recipe == "l1_decoder_norm"
        assert block.expansion_factor == grid.expansion_factor
        assert block.training.sparsity_warmup_fraction == grid.training.l1_warmup_fraction
    elif profile == "tiny":
        assert len(block.l1_coefficients) >= 2
    else:
        assert block.l1_coefficients == []
    smoke = crosslayer_config(load_config(compose([f"profile={profile}", "budget=smoke"])))
    assert smoke.training.n_steps == 4 and smoke.l1_coefficients == block.l1_coefficients


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "+profile.crosslayer.training.learning_rate_typo=0.1",
            "profile.crosslayer.training.learning_rate_typo",
        ),
        ("profile.crosslayer.training.n_steps=many", "profile.crosslayer.training.n_steps"),
        ("profile.crosslayer.recipe=sparse", "recipe"),
        ("+profile.crosslayer.training.sparsity_coefficient=0.1", "set per CLT"),
        ("profile.crosslayer.l1_coefficients=[0.001,0.001]", "twice"),
    ],
)
def test_a_bad_crosslayer_block_is_named(override, message):
    from transcoder_lab.dictionaries.crosslayer import crosslayer_config

    cfg = load_config(compose(["profile=tiny", override]))  # the block is checked where it is read
    with pytest.raises(ConfigError, match=message):
        crosslayer_config(cfg)
