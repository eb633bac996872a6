"""The gpt2_small profile as its user runs it: `dvc exp run -S profile=gpt2_small -S budget=smoke`
through the real loading code, from an empty Hugging Face cache, downloading everything from a local
server in the hub's protocol (transcoder_lab.standins.hub_server) that serves the stand-in of the hub
(transcoder_lab.standins.gpt2: random GPT-2 small weights saved by transformers, GPT-2's real
tokenizer, generated OpenWebText documents in parquet at the parquet conversion branch, the 12
published transcoders pickled in their published structure, at full width; `gpt2` moved to
`openai-community/gpt2` as on the hub).

Nothing is monkeypatched: the stages run in subprocesses with HF_ENDPOINT at the server, HF_HOME an
empty folder and HF_HUB_OFFLINE unset, as a user's first run. The server is stopped after that run;
the rerun of stages that read the model, the text and a published transcoder has HF_HUB_OFFLINE=1
and reproduces their outputs from the filled cache.
"""

import csv
import hashlib
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from transcoder_lab.config import compose, load_config
from transcoder_lab.dictionaries.published import PUBLISHED_REPO
from transcoder_lab.standins.gpt2 import STANDIN_TEXT_FILE, hub_cache, repo_folder, write_gpt2_small_standin
from transcoder_lab.standins.hub_server import HubServer

from helpers.gpt2_ranks import ranks_path_or_skip
from helpers.repository import dvc_exp_run, expected_stages, init_repository, paper_profile_environment

N_DOCUMENTS = 600
MOVED = {"gpt2": "openai-community/gpt2"}  # as on the hub, `gpt2` redirects to its current name
HELDOUT_SKIP = 400  # the stand-in has 600 documents: the held-out set starts after 400
PROFILE = "gpt2_small"


@pytest.fixture(scope="module")
def stand_in_hub(tmp_path_factory):
    """A local hub (not started) serving the stand-in of what gpt2_small reads, from a cache folder
    that is deleted after the module's tests."""
    ranks_path_or_skip()  # the stand-in's tokenizer is GPT-2's real one, built from these ranks
    origin = tmp_path_factory.mktemp("hub_origin")
    write_gpt2_small_standin(origin, n_documents=N_DOCUMENTS)
    server = HubServer(hub_cache(origin), moved=MOVED)
    yield server
    server.stop()
    shutil.rmtree(origin, ignore_errors=True)


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory, stand_in_hub):
    """The smoke run from an empty cache with the stand-in hub up; the hub is stopped after it."""
    hf_home = tmp_path_factory.mktemp("hf_home")  # empty: the run downloads what it needs
    repo = tmp_path_factory.mktemp("repository")
    init_repository(repo)
    overrides = [f"profile={PROFILE}", "budget=smoke", f"profile.text.heldout_skip_documents={HELDOUT_SKIP}"]
    with stand_in_hub:
        env = paper_profile_environment(hf_home, repo, offline=False, endpoint=stand_in_hub.url)
        log = dvc_exp_run(repo, overrides, env)
    return repo, env, load_config(compose(overrides)), log


def test_the_run_downloaded_each_file_once_from_the_hub(paper_run, stand_in_hub):
    """Every file of the served repos came into the empty cache at the served commit, whole (its
    size; SHA-256 checked for the weights, the config and the parquet file), each LFS file fetched
    from the CDN exactly once (later stages find it cached); no partial download is left."""
    _, env, cfg, log = paper_run
    hf_home, hub = Path(env["HF_HOME"]), stand_in_hub.repos
    text = cfg.profile.text
    lfs, lfs_bytes = [], 0
    for repo_type, repo, revision in (("model", "gpt2", "main"), ("model", PUBLISHED_REPO, "main"),
                                      ("dataset", text.repo, text.revision)):  # fmt: skip
        served = repo_folder(hub.cache.parent, repo, repo_type)
        commit = hub.commit(served, revision)
        fetched = repo_folder(hf_home, repo, repo_type)
        assert (fetched / "refs" / revision).read_text() == commit, repo
        for path in hub.paths(served, commit):
            file, local = hub.file(served, commit, path), fetched / "snapshots" / commit / path
            assert local.is_file() and local.stat().st_size == file.size, (repo, path)
            if path in ("model.safetensors", "config.json", STANDIN_TEXT_FILE):
                assert hashlib.sha256(local.read_bytes()).hexdigest() == file.sha256, (repo, path)
            lfs += [file.sha256] if file.lfs else []
            lfs_bytes += file.size if file.lfs else 0
    cdn = [s for s in stand_in_hub.served if s.origin == "cdn"]
    assert all(s.method == "GET" and s.status == 200 for s in cdn)
    assert sorted(s.path.removeprefix("/blobs/") for s in cdn) == sorted(lfs)  # 26 files, each once
    assert len(lfs) == 2 + 2 * len(cfg.profile.published_transcoder_layers)  # weights, parquet, 24 files
    hub_requests = sum(s.origin == "hub" for s in stand_in_hub.served)
    gigabytes = lfs_bytes / 1e9
    print(f"{len(cdn)} LFS files ({gigabytes:.2f} GB) came from {stand_in_hub.url}'s CDN into the empty")
    print(f"HF_HOME, each once; the hub answered {hub_requests} requests (checks, metadata, listings)")
    assert not list(hf_home.rglob("*.incomplete"))
    assert stand_in_hub.unhandled == []
    assert "unreachable" not in log and "HF_HUB_OFFLINE" not in log


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


def test_offline_rerun_reads_the_filled_cache(paper_run, stand_in_hub):
    """With the hub stopped (its port refuses connections) and HF_HUB_OFFLINE=1, the stages that read
    the model and the text (evaluate) and a published transcoder (its import) run again from the
    cache the first run filled: the same held-out set and numbers, the same imported files."""
    repo, env, _, _ = paper_run
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", stand_in_hub.port()), timeout=5).close()
    imported = repo / "dictionaries" / PROFILE / "published" / "L3_transcoder"

    def digests() -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(imported.iterdir())}

    before = json.loads((repo / "results" / PROFILE / "splice_all.json").read_text())
    files_before = digests()
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    dvc = f"{Path(sys.executable).parent}/dvc"
    command = [dvc, "repro", "--force", "--single-item", "evaluate", "import_transcoders@3"]
    result = subprocess.run(command, cwd=repo, env=offline, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert "Running stage 'import_transcoders@3'" in result.stdout
    after = json.loads((repo / "results" / PROFILE / "splice_all.json").read_text())
    assert after["heldout_sha256"] == before["heldout_sha256"]
    assert after["ce_spliced"] == pytest.approx(before["ce_spliced"], rel=1e-6)
    assert digests() == files_before


def test_a_crosslayer_transcoder_trains_on_the_streamed_text_offline(paper_run):
    """gpt2_small lists no CLT, but its crosslayer stage trains one when asked (as `dvc exp run -S
    'profile.crosslayer.l1_coefficients=[0.001]'` would): on the smoke budget, from the cache the
    run filled, streaming the stand-in's text through all 12 layers, at 768 features a layer."""
    repo, env, cfg, _ = paper_run
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable,
        "experiments/crosslayer.py",
        "profile.crosslayer.l1_coefficients=[0.001]",
        "profile.crosslayer.expansion_factor=1",
    ]
    result = subprocess.run(command, cwd=repo, env=offline, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    saved = repo / "dictionaries" / PROFILE / "clt" / "l1_0.001"
    metrics = json.loads((saved / "heldout_metrics.json").read_text())
    n_layers = cfg.profile.model.n_layers
    assert len(metrics["by_layer"]) == n_layers and all(math.isfinite(m["fvu"]) for m in metrics["by_layer"])
    config = json.loads((saved / "cfg.json").read_text())["transcoder_lab"]
    assert len(config["hooks_in"]) == n_layers and config["spec"]["d_sae"] == cfg.profile.model.d_model


def test_import_stage_has_one_instance_per_published_layer():
    cfg = load_config(compose(["profile=gpt2_small"]))
    assert cfg.profile.published_transcoder_layers == list(range(12))
    assert load_config(compose(["profile=organism"])).profile.published_transcoder_layers == []
    assert os.path.basename(str(cfg.profile.text.files)).endswith(".parquet")
