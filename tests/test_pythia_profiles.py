"""The Pythia profiles as their user runs them: `dvc exp run -S profile=pythia_410m -S budget=smoke`
through the real loading code, on an offline stand-in of the hub (transcoder_lab.standins.pythia:
random float16 Pythia-410M weights saved by transformers with the hub's config.json, a stand-in
GPT-NeoX-style tokenizer, generated documents in parquet). Nothing is monkeypatched: the model is
loaded and the stages run in subprocesses with HF_HOME pointing at the stand-in and HF_HUB_OFFLINE=1.

The model keeps Pythia-410M's real shapes (24 layers, d_model 1024, d_mlp 4096, 16 heads, vocabulary
50,304) and the dictionaries their real width (32 x 1024 = 32,768). To fit a few minutes on two CPU
cores the run shrinks what the smoke budget leaves: one L1 coefficient (the splice-all and study
transcoder's, so the Pareto CSV has one row per cell), 2 held-out contexts, 1,024 scanned study tokens.
"""

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from transcoder_lab.config import compose, load_config
from transcoder_lab.standins.pythia import PYTHIA_HUB_CONFIGS, hub_repo, write_pythia_standin

from helpers.repository import dvc_exp_run, expected_stages, init_repository, paper_profile_environment

PROFILE = "pythia_410m"
N_DOCUMENTS = 1200
HELDOUT_SKIP = 1000  # the stand-in has 1,200 documents (about 400 tokens each): held-out after 1,000
STUDY_L1 = 5.5e-5  # the paper's study transcoder; also the profile's splice-all coefficient
OVERRIDES = [
    f"profile={PROFILE}",
    "budget=smoke",
    f"profile.text.heldout_skip_documents={HELDOUT_SKIP}",
    f"profile.dictionaries.l1_coefficients=[{STUDY_L1}]",
    "profile.evaluation.n_contexts=2",
    "profile.study.n_tokens=1024",
]


@pytest.fixture(scope="session")
def pythia_hf_home(tmp_path_factory) -> Path:
    """An HF_HOME holding the Pythia-410M stand-in and the profile's text source."""
    hf_home = tmp_path_factory.mktemp("hf_home_pythia")
    write_pythia_standin(hf_home, PROFILE, n_documents=N_DOCUMENTS)
    return hf_home


@pytest.fixture(scope="module")
def pythia_run(tmp_path_factory, pythia_hf_home):
    repo = tmp_path_factory.mktemp("repository")
    init_repository(repo)
    log = dvc_exp_run(repo, OVERRIDES, paper_profile_environment(pythia_hf_home, repo))
    return repo, load_config(compose(OVERRIDES)), log


def test_standin_repo_holds_the_hub_files(pythia_hf_home):
    """The cache holds the repo as the hub lays it out: the published config.json verbatim, float16
    safetensors of the model's shapes, and a tokenizer with GPT-NeoX's special-token ids."""
    from safetensors import safe_open
    from transformers import AutoTokenizer

    from transcoder_lab.standins.gpt2 import repo_folder

    folder = repo_folder(pythia_hf_home, "EleutherAI/pythia-410m")
    snapshot = folder / "snapshots" / (folder / "refs" / "main").read_text()
    assert json.loads((snapshot / "config.json").read_text()) == PYTHIA_HUB_CONFIGS["EleutherAI/pythia-410m"]
    with safe_open(str(snapshot / "model.safetensors"), framework="pt") as weights:
        embed = weights.get_slice("gpt_neox.embed_in.weight")
        assert embed.get_dtype() == "F16" and embed.get_shape() == [50304, 1024]
        assert weights.get_slice("gpt_neox.layers.15.mlp.dense_h_to_4h.weight").get_shape() == [4096, 1024]
    tokenizer = AutoTokenizer.from_pretrained(str(snapshot))
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|padding|>"]) == [0, 1]
    assert tokenizer.bos_token_id == tokenizer.eos_token_id == 0
    ids = tokenizer.encode("The war lasted from 1732 to 17")
    assert 0 not in ids and max(ids) < 50304  # no BOS added by the tokenizer (NeoX adds none)
    assert tokenizer.decode(ids) == "The war lasted from 1732 to 17"


LOAD_CHECK = """
import json, torch
from transcoder_lab.sources.models import load_pretrained
from transcoder_lab.sources.hooks import mlp_in_hook, mlp_out_hook
model = load_pretrained("pythia-410m")
tokens = torch.tensor([[0, 5, 6, 7, 8, 9]])
hooks = [mlp_in_hook(15), mlp_out_hook(15), "blocks.15.hook_resid_pre", "blocks.15.ln2.hook_scale"]
_, cache = model.run_with_cache(tokens, names_filter=hooks)
x = cache["blocks.15.hook_resid_pre"]
centred = x - x.mean(-1, keepdim=True)
print(json.dumps({
    "cfg": {key: getattr(model.cfg, key) for key in ("n_layers", "d_model", "n_heads", "d_head", "d_mlp",
            "d_vocab", "n_ctx", "act_fn", "parallel_attn_mlp", "positional_embedding_type", "rotary_dim",
            "normalization_type")},
    "shapes": {hook: list(cache[hook].shape) for hook in hooks},
    "mlp_in_minus_ln2_of_resid_pre": (cache[mlp_in_hook(15)] - centred / cache["blocks.15.ln2.hook_scale"])
        .abs().max().item(),
    "bos": model.tokenizer.bos_token_id,
}))
"""


def test_transformer_lens_loads_the_standin_with_pythia_shapes(pythia_hf_home, tmp_path):
    """`load_pretrained("pythia-410m")` (TransformerLens's from_pretrained, default processing) reads
    the stand-in cache offline: Pythia-410M's shapes, parallel blocks, rotary on 16 of 64 head
    dimensions, and the MLP input hook is LN2 of resid_pre. The tolerance 1e-4 is float32 rounding of
    the normalisation (values of order 1, a few operations) with margin."""
    result = subprocess.run(
        [sys.executable, "-c", LOAD_CHECK], env=paper_profile_environment(pythia_hf_home, tmp_path),
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    model = load_config(compose([f"profile={PROFILE}"])).profile.model
    assert found["cfg"] == {
        "n_layers": model.n_layers, "d_model": model.d_model, "n_heads": model.n_heads,
        "d_head": model.d_head, "d_mlp": model.d_mlp, "d_vocab": 50304, "n_ctx": model.n_ctx,
        "act_fn": model.act_fn,
        "parallel_attn_mlp": True, "positional_embedding_type": "rotary", "rotary_dim": 16,
        "normalization_type": "LNPre",
    }  # fmt: skip
    assert (model.n_layers, model.d_model, model.d_mlp, model.n_heads) == (24, 1024, 4096, 16)
    for hook in ("blocks.15.ln2.hook_normalized", "blocks.15.hook_mlp_out", "blocks.15.hook_resid_pre"):
        assert found["shapes"][hook] == [1, 6, 1024]
    assert found["mlp_in_minus_ln2_of_resid_pre"] < 1e-4
    assert found["bos"] == 0  # <|endoftext|>, as in GPT-NeoX's tokenizer


def test_every_stage_runs_on_the_standin(pythia_run):
    repo, cfg, log = pythia_run
    ran = re.findall(r"Running stage '([^']+)'", log)
    print("stages run:", *ran, sep="\n  ")
    assert set(ran) == expected_stages(repo / "dvc.yaml", cfg)
    assert len(ran) == len(set(ran))
    assert yaml.safe_load((repo / "params.yaml").read_text())["profile"]["name"] == PROFILE
    # profile.device "auto": the dictionaries train on the GPU where torch sees one, as for a user
    assert f"on {'cuda' if torch.cuda.is_available() else 'cpu'}\n" in log


def test_pareto_has_every_arm_and_finite_numbers(pythia_run):
    repo, cfg, _ = pythia_run
    rows = list(csv.DictReader((repo / "results" / PROFILE / "pareto.csv").open()))
    assert {row["kind"] for row in rows} == {"transcoder", "sae_mlp_out", "sae_mlp_in"}
    assert len(rows) == len(cfg.profile.dictionaries.cells) * len(cfg.profile.dictionaries.l1_coefficients)
    for row in rows:
        assert int(row["layer"]) == 15
        for column in ("l0", "ce_clean", "ce_spliced", "ce_zero_ablation", "kl", "fvu"):
            assert math.isfinite(float(row[column])), (row["kind"], column)
    for kind in ("transcoder", "sae_mlp_out", "sae_mlp_in"):
        saved = json.loads(
            (repo / "dictionaries" / PROFILE / f"L15_{kind}" / f"l1_{STUDY_L1:g}" / "cfg.json").read_text()
        )
        assert (saved["d_in"], saved["d_sae"]) == (1024, 32768)
    splice_all = json.loads((repo / "results" / PROFILE / "splice_all.json").read_text())
    assert math.isfinite(splice_all["ce_spliced"])
    table = (repo / "results" / PROFILE / "expected_vs_measured.md").read_text()
    row = next(line for line in table.splitlines() if "`splice_all.ce_spliced`" in line)
    assert math.isfinite(float(row.split("|")[3]))  # measured (random weights: the verdict is meaningless)
    reference = [line for line in table.splitlines() if line.startswith("| transcoder | 15 | 5.5e-05 |")]
    assert len(reference) == 1 and "—" not in reference[0]  # the paper's point beside our dictionary


def test_behaviour_measures_only_what_the_tokenizer_supports(pythia_run):
    repo, _, _ = pythia_run
    behaviour = json.loads((repo / "results" / PROFILE / "behaviour.json").read_text())
    greater_than = behaviour["greater_than"]
    assert greater_than["comparable_with_paper"] is False
    assert 0 <= greater_than["n_prompts"] <= 98
    if greater_than["n_prompts"]:
        assert -1 <= greater_than["probability_difference"] <= 1
    else:
        assert greater_than["probability_difference"] is None and greater_than["reason"]


def test_case_studies_say_they_are_not_configured(pythia_run):
    repo, cfg, _ = pythia_run
    report = (repo / "results" / PROFILE / "REPORT.md").read_text()
    for name in cfg.case_study:
        result = json.loads((repo / "results" / PROFILE / "case_studies" / f"{name}.json").read_text())
        assert result["status"] == "not configured" and PROFILE in result["reason"]
        figures = repo / "figures" / PROFILE / "case_studies" / name
        assert [path.name for path in figures.iterdir()] == ["not_configured.txt"]
        assert f"(`{name}`)" in report


def test_blind_study_reaches_the_report(pythia_run):
    repo, cfg, _ = pythia_run
    manifest = json.loads((repo / "study" / PROFILE / "packet" / "manifest.json").read_text())
    assert len(manifest["cards"]) == 2 * cfg.profile.study.n_per_arm
    assert (repo / "results" / PROFILE / "study" / "summary.json").exists()
    report = (repo / "results" / PROFILE / "REPORT.md").read_text()
    assert "## Blind interpretability study" in report and "## Dictionaries" in report


def hub_shapes(name: str | None) -> tuple[int, int, int, int]:
    """(layers, width, heads, MLP width) of the hub config.json the stand-in writes for a model."""
    assert name is not None
    hub = PYTHIA_HUB_CONFIGS[hub_repo(name)]
    return hub["num_hidden_layers"], hub["hidden_size"], hub["num_attention_heads"], hub["intermediate_size"]


def test_pythia_1_4b_profile_composes_with_its_shapes():
    """Not run (a 1.4B model does not fit the test budget): composition, shapes and dictionary width,
    and agreement with the hub config the stand-in would write."""
    cfg = load_config(compose(["profile=pythia_1_4b"]))
    profile = cfg.profile
    model = profile.model
    assert (model.n_layers, model.d_model, model.n_heads, model.d_head, model.d_mlp, model.act_fn) == (
        24, 2048, 16, 128, 8192, "gelu",
    )  # fmt: skip
    assert profile.dictionaries.expansion_factor * model.d_model == 65536
    assert profile.dictionaries.layers == [15] and profile.study.layer == 15
    assert profile.published_transcoder_layers == [] and profile.evaluation.splice_all_layers == [15]
    assert hub_shapes(model.pretrained_name) == (model.n_layers, model.d_model, model.n_heads, model.d_mlp)
    smoke = load_config(compose(["profile=pythia_1_4b", "budget=smoke"])).profile
    assert smoke.dictionaries.training.n_steps < profile.dictionaries.training.n_steps
    assert smoke.model == model


def test_pythia_410m_profile_matches_the_papers_setting():
    profile = load_config(compose([f"profile={PROFILE}"])).profile
    model = profile.model
    assert hub_shapes(model.pretrained_name) == (model.n_layers, model.d_model, model.n_heads, model.d_mlp)
    assert profile.dictionaries.expansion_factor * model.d_model == 32768
    assert set(profile.dictionaries.cells) == {"L15_transcoder", "L15_sae_mlp_out", "L15_sae_mlp_in"}
    grid = set(profile.dictionaries.l1_coefficients)
    assert {point.l1_coefficient for point in profile.evaluation.reference_points} <= grid
    assert profile.study.transcoder_l1 == profile.evaluation.splice_all_l1 == STUDY_L1
