"""The gpt2_small profile as its user runs it: `dvc exp run -S profile=gpt2_small -S budget=smoke`
through the real loading code, on an offline stand-in of the hub (transcoder_lab.hub_standin: random
GPT-2 small weights saved by transformers, GPT-2's real tokenizer, generated OpenWebText documents
in parquet, the 12 published transcoders pickled in their published structure, at full width).

Nothing is monkeypatched: the stages run in subprocesses with HF_HOME pointing at the stand-in.
The first run has the network path on and finds the hub unreachable (an address nothing listens
on), so it reads the cache; the rerun of the text-reading stages has HF_HUB_OFFLINE=1.
"""

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from gpt2_ranks import ranks_path_or_skip
from repository import dvc_exp_run, expected_stages, init_repository, paper_profile_environment

from transcoder_lab.config import compose, load_config
from transcoder_lab.hub_standin import write_gpt2_small_standin

N_DOCUMENTS = 600
HELDOUT_SKIP = 400  # the stand-in has 600 documents: the held-out set starts after 400
PROFILE = "gpt2_small"


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    ranks_path_or_skip()  # the stand-in's tokenizer is GPT-2's real one, built from these ranks
    hf_home = tmp_path_factory.mktemp("hf_home")
    write_gpt2_small_standin(hf_home, n_documents=N_DOCUMENTS)
    repo = tmp_path_factory.mktemp("repository")
    init_repository(repo)
    env = paper_profile_environment(hf_home, repo, offline=False)  # the network path runs
    overrides = [f"profile={PROFILE}", "budget=smoke", f"profile.text.heldout_skip_documents={HELDOUT_SKIP}"]
    log = dvc_exp_run(repo, overrides, env)
    return repo, env, load_config(compose(overrides)), log


def test_every_stage_runs_on_the_standin(paper_run):
    repo, _, cfg, log = paper_run
    ran = re.findall(r"Running stage '([^']+)'", log)
    print("stages run:", *ran, sep="\n  ")
    assert set(ran) == expected_stages(repo / "dvc.yaml", cfg)
    assert len(ran) == len(set(ran))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["profile"]["name"] == PROFILE
    # profile.device "auto": the dictionaries train on the GPU where torch sees one, as for a user
    assert f"on {'cuda' if torch.cuda.is_available() else 'cpu'}\n" in log


def test_dictionaries_read_the_paper_hooks_and_pareto_is_finite(paper_run):
    repo, _, cfg, _ = paper_run
    grid = cfg.profile.dictionaries
    rows = list(csv.DictReader((repo / "results" / PROFILE / "pareto.csv").open()))
    assert len(rows) == len(grid.cells) * len(grid.l1_coefficients)
    for row in rows:
        for column in ("l0", "ce_clean", "ce_spliced", "ce_zero_ablation", "kl", "fvu"):
            assert math.isfinite(float(row[column])), (row["kind"], column)
    hooks = {"transcoder": ("ln2.hook_normalized", "hook_mlp_out"), "sae_mlp_out": ("hook_mlp_out",),
             "sae_mlp_in": ("ln2.hook_normalized",)}  # fmt: skip
    for layer, kind in grid.parsed_cells:
        directory = repo / "dictionaries" / PROFILE / f"L{layer}_{kind}" / f"l1_{grid.l1_coefficients[0]:g}"
        metadata = json.loads((directory / "cfg.json").read_text())["metadata"]
        assert metadata["hook_name"] == f"blocks.{layer}.{hooks[kind][0]}"
        # sae-lens writes an output hook only for transcoders; an SAE reconstructs its input hook.
        expected_out = f"blocks.{layer}.{hooks[kind][1]}" if kind == "transcoder" else None
        assert metadata.get("hook_name_out") == expected_out
        heldout = json.loads((directory / "heldout_metrics.json").read_text())  # stream mode writes it too
        assert heldout["n_rows"] == cfg.profile.evaluation.n_contexts * grid.harvest.context_size


def test_published_transcoders_are_imported_at_full_width(paper_run):
    repo, _, cfg, _ = paper_run
    for layer in cfg.profile.published_transcoder_layers:
        directory = repo / "dictionaries" / PROFILE / "published" / f"L{layer}_transcoder"
        saved = json.loads((directory / "cfg.json").read_text())
        assert saved["d_sae"] == 24576 and saved["d_in"] == 768
        assert saved["metadata"]["hook_name"] == f"blocks.{layer}.ln2.hook_normalized"


def test_expected_values_are_listed_beside_measurements(paper_run):
    repo, _, cfg, _ = paper_run
    table = (repo / "results" / PROFILE / "expected_vs_measured.md").read_text()
    for key in cfg.profile.evaluation.expected:
        row = next(line for line in table.splitlines() if f"`{key}`" in line)
        measured = row.split("|")[3].strip()
        assert math.isfinite(float(measured)), row  # measured, not "—" (random weights: verdicts differ)
    report = (repo / "results" / PROFILE / "REPORT.md").read_text()
    for study in cfg.case_study:
        assert study in report


def test_blind_study_runs_on_a_streaming_profile(paper_run):
    repo, _, cfg, _ = paper_run
    manifest = json.loads((repo / "study" / PROFILE / "packet" / "manifest.json").read_text())
    assert len(manifest["cards"]) == 2 * cfg.profile.study.n_per_arm
    summary = json.loads((repo / "results" / PROFILE / "study" / "summary.json").read_text())
    assert summary is not None
    assert (repo / "results" / PROFILE / "study" / "table.md").exists()


@pytest.mark.parametrize("name", ["greater_than", "citation", "caught", "walkthrough", "local_context"])
def test_case_studies_run_the_papers_configs(paper_run, name):
    """Each case study's stage ran the paper's settings on the stand-in (random weights, so only the
    code paths and the bookkeeping are checked, not the paper's numbers)."""
    repo, _, cfg, _ = paper_run
    settings = cfg.case_study[name].profiles[PROFILE]
    result = json.loads((repo / "results" / PROFILE / "case_studies" / f"{name}.json").read_text())
    assert result["profile"] == PROFILE
    assert set(result["expected"]) == set(settings.expected)  # the paper's numbers were looked up
    for key, check in result["expected"].items():
        if check["measured"] is not None:
            continue
        if key == "intervention.after_over_before":  # a ratio: undefined where the root is silent
            assert result["intervention"]["mean_before"] == 0
        else:  # a count whose curve never reaches the paper's mark
            marks = result["curves"]["paper_marks"]
            kind = key.split(".")[-1].removesuffix("_to_mark")
            assert key.startswith("curves.paper_marks.")
            assert max(result["curves"][kind]) < marks[f"{kind}_mark"]
    if name == "greater_than":
        pd = result["probability_difference"]
        assert result["layer"] == 10 and "transcoder_without_5315" in pd
        assert {"mlp_removed", "transcoder_bias_only", "mlp_bias_only"} <= set(pd)
        assert pd["transcoder_bias_only"] == result["curves"]["features"][0]
        assert len(result["curves"]["features"]) == settings.n_components + 1  # the smoke budget's 4
        assert "expected_features_in_top10" in result and "expected_heads_found" in result["graph"]
        ranks = {entry["feature"]: entry["rank"] for entry in result["expected_features"]}
        assert set(ranks) == set(settings.expected_features)
        assert all(1 <= rank <= 24576 for rank in ranks.values())  # every paper index exists at full width
        assert [entry["head"] for entry in result["graph"]["expected_heads"]] == settings.expected_heads
        return
    assert result["root"] == {"layer": 8, "feature": settings.feature, "label": f"tc8[{settings.feature}]"}
    assert "selection" not in result and "dashboard" not in result  # no corpus labels on GPT-2
    if cfg.case_study[name].blind:  # the smoke budget probes a fixed sample of the vocabulary
        assert result["blind"]["hypothesis"]["probed_tokens"] == cfg.case_study[name].probe_tokens == 2048
    else:
        assert "blind" not in result
    if name == "walkthrough":
        assert set(result["splice"]) == {"clean", "mlp1-7_spliced", "mlp0-7_spliced"}
    if name == "citation":
        intervention = result["intervention"]
        assert intervention["replace_earlier"] == [";", ","]
        if intervention["mean_before"] == 0:  # random weights may leave the root silent
            assert intervention["after_over_before"] is None
        else:
            assert intervention["after_over_before"] == pytest.approx(
                intervention["mean_after"] / intervention["mean_before"]
            )


def test_offline_rerun_reads_the_filled_cache(paper_run):
    """HF_HUB_OFFLINE=1: the stages that read hub text run again from the cache, same held-out set."""
    repo, env, _, _ = paper_run
    before = json.loads((repo / "results" / PROFILE / "splice_all.json").read_text())
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    command = [f"{Path(sys.executable).parent}/dvc", "repro", "--force", "--single-item", "evaluate"]
    result = subprocess.run(command, cwd=repo, env=offline, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    after = json.loads((repo / "results" / PROFILE / "splice_all.json").read_text())
    assert after["heldout_sha256"] == before["heldout_sha256"]
    assert after["ce_spliced"] == pytest.approx(before["ce_spliced"], rel=1e-6)


def test_import_stage_has_one_instance_per_published_layer():
    cfg = load_config(compose(["profile=gpt2_small"]))
    assert cfg.profile.published_transcoder_layers == list(range(12))
    assert load_config(compose(["profile=organism"])).profile.published_transcoder_layers == []
    assert os.path.basename(str(cfg.profile.text.files)).endswith(".parquet")
