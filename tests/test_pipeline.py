"""The stage entry points and the DVC stage graph, end to end on the tiny profile."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from transcoder_lab.config import compose, load_config, load_profile
from transcoder_lab.dictionaries.evaluation import token_hash
from transcoder_lab.sources.models import load_model
from transcoder_lab.sources.text_source import heldout_contexts
from transcoder_lab.stage import load_stage

from helpers.repository import copy_repository


def tiny_config(root: Path):
    return load_profile("tiny", root)


def test_stage_functions_run_the_tiny_pipeline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # checkpoints/ is relative to the working directory
    cfg = tiny_config(tmp_path)
    manifest = load_stage("corpus").run(cfg)
    assert manifest["splits"]["train"]["n_tokens"] > 0
    trained = load_stage("organism").run(cfg)
    assert trained["steps"] == cfg.profile.training.max_steps
    report = load_stage("behaviour").run(cfg)
    harvested = load_stage("activations").run(cfg)
    assert harvested["train"]["n_tokens"] >= cfg.profile.dictionaries.harvest.n_tokens
    results = load_stage("dictionaries").run(cfg)
    grid = cfg.profile.dictionaries
    assert len(results) == sum(len(grid.sweep(arm)) for _, arm in grid.parsed_cells)
    for layer, arm in grid.parsed_cells:
        for sparsity in grid.sweep(arm):
            directory = tmp_path / "dictionaries" / "tiny" / f"L{layer}_{arm}" / sparsity.label
            metrics = json.loads((directory / "heldout_metrics.json").read_text())
            assert metrics["n_rows"] >= grid.harvest.heldout_tokens and 0 <= metrics["fvu"]
    crosslayer = load_stage("crosslayer").run(cfg)
    clt_l1s = cfg.profile.crosslayer["l1_coefficients"]
    assert [r.steps for r in crosslayer] == [cfg.profile.crosslayer["training"]["n_steps"]] * len(clt_l1s)
    for l1 in clt_l1s:
        metrics = json.loads(
            (tmp_path / "dictionaries" / "tiny" / "clt" / f"l1_{l1:g}" / "heldout_metrics.json").read_text()
        )
        assert len(metrics["by_layer"]) == cfg.profile.model.n_layers and metrics["l0"] > 0
    evaluated = load_stage("evaluate").run(cfg)
    pareto = evaluated["pareto"]
    assert (pareto["ce_clean"] == pareto["ce_clean"].iloc[0]).all()
    assert len(pareto[pareto["layer"].notna()]) == len(results)
    assert list(pareto[pareto["kind"] == "clt"]["l1_coefficient"]) == clt_l1s
    assert (tmp_path / "figures" / "tiny" / "pareto.png").stat().st_size > 10_000
    splice_all = json.loads((tmp_path / "results" / "tiny" / "splice_all.json").read_text())
    assert splice_all["layers"] == grid.layers_of("transcoder") and len(splice_all["heldout_sha256"]) == 64
    # The held-out set is rebuilt identically (same hash) on every call.
    model = load_model(cfg.profile, cfg.paths.models)
    n_contexts = cfg.profile.evaluation.n_contexts
    contexts = heldout_contexts(cfg, model.tokenizer, n_contexts, grid.harvest.context_size)
    assert token_hash(contexts) == splice_all["heldout_sha256"]
    families = load_stage("families").run(cfg)
    assert [f["name"] for f in families["families"]] == ["PLT", "CLT", "skip", "TopK"]
    assert set(families["mechanisms"]) == set(cfg.profile.families["mechanisms"])
    assert families["verdicts"]["hops"]["verdict"] in ("ok", "BELOW")
    assert "## Dictionary families" in (tmp_path / "results" / "tiny" / "families.md").read_text()
    assert (tmp_path / "figures" / "tiny" / "families" / "families.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "results" / "tiny" / "behaviour.json").read_text())
    assert saved == json.loads(json.dumps(report))
    for mechanism in ("greater_than", "citation", "caught", "estimate"):
        assert mechanism in saved
    assert saved["greater_than"]["chance_probability_difference"] == pytest.approx(-0.01, abs=1e-6)
    assert saved["caught"]["chance"] == 0.5


def test_pretrained_profile_corpus_stage_generates_nothing(tmp_path):
    cfg = load_config(compose(["profile=gpt2_small", f"paths.data={tmp_path}"]))
    manifest = load_stage("corpus").run(cfg)
    assert manifest["generated"] is False
    assert (tmp_path / "gpt2_small" / "corpus" / "manifest.json").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="dvc repro needs git")
def test_dvc_repro_runs_the_stage_graph_on_the_tiny_profile(tmp_path):
    """A copy of the repository with params.yaml composed for `tiny`, reproduced by DVC itself."""
    copy_repository(tmp_path)
    (tmp_path / "dvc.lock").unlink(missing_ok=True)
    params = OmegaConf.to_container(compose(["profile=tiny"]), resolve=True)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    env_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{env_bin}:/usr/bin:/bin",
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        [f"{env_bin}/dvc", "repro"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    behaviour = json.loads((tmp_path / "results" / "tiny" / "behaviour.json").read_text())
    assert behaviour["profile"] == "tiny"
    assert (tmp_path / "models" / "tiny" / "model.safetensors").exists()
    assert (tmp_path / "dictionaries" / "tiny" / "L1_transcoder" / "l1_0.01" / "cfg.json").exists()
    assert (tmp_path / "dictionaries" / "tiny" / "clt" / "l1_0.01" / "cfg.json").exists()
    assert (tmp_path / "results" / "tiny" / "pareto.csv").exists()
    status = subprocess.run(
        [f"{env_bin}/dvc", "status"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert "up to date" in status.stdout, status.stdout
