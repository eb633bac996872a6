"""Scale-out: devices and precision, one pass for many dictionaries, Hydra multirun through
the submitit launcher, sharing a finished pipeline through a DVC remote, and bench_multilayer."""

import filecmp
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from transcoder_lab.config import REPO_ROOT, ConfigError, compose, load_config, load_profile
from transcoder_lab.dictionaries import load_dictionary
from transcoder_lab.dictionaries.activations import (
    autocast_dtype,
    batch_to_device,
    context_batches,
    harvest_batches,
    needed_hooks,
    to_device,
)
from transcoder_lab.dictionaries.training import DictionaryJob, job_seeds
from transcoder_lab.sources.models import build_processed_model, resolve_device
from transcoder_lab.stage import STAGE_OVERRIDES, load_stage, with_stage_overrides
from transcoder_lab.standins.gpt2 import gpt2_shaped_config

from helpers.repository import copy_repository

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="the DVC workflow needs git")


# -- devices and precision -----------------------------------------------------------------------


def test_auto_device_is_cuda_only_when_torch_sees_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="profile.device=auto"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu")


def test_every_profile_runs_without_a_gpu():
    for profile in ("organism", "tiny", "gpt2_small"):
        device = load_profile(profile).profile.device
        assert device in ("cpu", "auto") or device.startswith("cuda")
        if not torch.cuda.is_available():
            assert resolve_device(device) == "cpu", profile


def test_autocast_setting_is_checked_and_off_by_default():
    for profile in ("organism", "tiny", "gpt2_small"):
        assert load_profile(profile).profile.dictionaries.harvest.autocast_dtype is None
    ok = load_profile("tiny", overrides=["profile.dictionaries.harvest.autocast_dtype=bfloat16"])
    assert autocast_dtype(ok.profile.dictionaries.harvest.autocast_dtype) is torch.bfloat16
    assert autocast_dtype(None) is None
    with pytest.raises(ConfigError, match="autocast_dtype.*bfloat16"):
        load_profile("tiny", overrides=["profile.dictionaries.harvest.autocast_dtype=int8"])


@pytest.fixture(scope="module")
def small_model():
    config = gpt2_shaped_config(seed=0, n_layers=2, d_model=32, d_head=8, n_heads=4, d_mlp=64, d_vocab=100)
    return build_processed_model(config)


def test_bf16_autocast_harvest_gives_float32_rows_close_to_the_float32_pass(small_model):
    tokens = torch.randint(0, 100, (4, 12), generator=torch.Generator().manual_seed(0))
    hooks = needed_hooks([0, 1])
    exact = next(harvest_batches(small_model, context_batches(tokens, 4), hooks))
    lowp = next(harvest_batches(small_model, context_batches(tokens, 4), hooks, torch.bfloat16))
    for hook in hooks:
        assert lowp[hook].dtype == torch.float32 and lowp[hook].device.type == "cpu"
        assert not torch.equal(lowp[hook], exact[hook])  # autocast did change the pass
        scale = exact[hook].abs().max()
        assert (lowp[hook] - exact[hook]).abs().max() < 0.05 * scale, hook
    assert all(p.dtype == torch.float32 for p in small_model.parameters())  # the model is untouched


def test_moving_a_batch_to_the_cpu_copies_nothing():
    batch = {"a": torch.randn(4, 3), "b": torch.randn(4, 5)}
    moved = batch_to_device(batch, "cpu")
    assert all(moved[h] is batch[h] for h in batch)


@needs_cuda
def test_cuda_transfer_is_pinned_and_training_matches_the_cpu(tmp_path):
    rows = torch.randn(64, 8)
    on_gpu = to_device(rows, "cuda")
    assert on_gpu.device.type == "cuda" and torch.equal(on_gpu.cpu(), rows)
    from transcoder_lab.config import DictionaryTrainingConfig
    from transcoder_lab.dictionaries import DictionarySpec
    from transcoder_lab.dictionaries.training import train_dictionaries

    spec = DictionarySpec(kind="transcoder", layer=0, d_in=8, d_sae=32, d_out=8)
    cfg = DictionaryTrainingConfig(batch_size=64, n_steps=20, warmup_steps=2, checkpoint_every=10)

    def stream():
        g = torch.Generator().manual_seed(0)
        while True:
            x = torch.randn(64, 8, generator=g)
            yield {spec.hook_in: x, spec.hook_out: 0.5 * x}

    trained = {}
    for device in ("cpu", "cuda"):
        job = DictionaryJob(spec, 1e-3, tmp_path / device)
        train_dictionaries([job], stream, cfg, tmp_path / f"ckpt_{device}", device=device)
        trained[device] = load_dictionary(job.out_dir)
    assert torch.allclose(trained["cpu"].W_dec, trained["cuda"].W_dec, atol=1e-3)


# -- one pass, many dictionaries -----------------------------------------------------------------


def test_seeds_depend_only_on_the_position_within_the_cell():
    from transcoder_lab.dictionaries import DictionarySpec

    def make(kind, layer, l1):
        return DictionaryJob(DictionarySpec(kind=kind, layer=layer, d_in=4, d_sae=8, d_out=4), l1, Path("x"))

    alone = [make("transcoder", 1, l1) for l1 in (1e-3, 1e-2)]
    together = [make("transcoder", 0, 1e-3), alone[0], make("sae_mlp_in", 1, 1e-3), alone[1]]
    assert job_seeds(alone, 42) == [42000, 42001]
    assert job_seeds(together, 42) == [42000, 42000, 42000, 42001]


def test_cells_trained_in_one_pass_equal_cells_trained_alone(tiny_pipeline, tmp_path, monkeypatch):
    """Harvested once, the shared stream feeds every dictionary: the weights are what each cell's
    own DVC stage instance would train, so one pass can replace the per-cell instances."""
    _, root = tiny_pipeline
    monkeypatch.chdir(tmp_path)  # checkpoints/ is relative to the working directory
    stage = load_stage("dictionaries")
    cells = ["L0_transcoder", "L1_sae_mlp_in"]

    def config(out: str, chosen: list[str]):
        return load_config(
            compose(
                [
                    "profile=tiny",
                    *[f"paths.{key}={root / key}" for key in ("data", "models", "activations")],
                    f"paths.dictionaries={tmp_path / out}",
                    f"profile.dictionaries.cells=[{','.join(chosen)}]",
                ]
            )
        )

    stage.run(config("shared", cells))
    for cell in cells:
        stage.run(config("alone", [cell]))
    l1s = load_profile("tiny").profile.dictionaries.l1_coefficients
    for cell in cells:
        for l1 in l1s:
            shared = load_dictionary(tmp_path / "shared" / "tiny" / cell / f"l1_{l1:g}")
            alone = load_dictionary(tmp_path / "alone" / "tiny" / cell / f"l1_{l1:g}")
            for name, tensor in shared.state_dict().items():
                assert torch.equal(tensor, alone.state_dict()[name]), (cell, l1, name)


# -- Hydra multirun through the submitit launcher -----------------------------------------------


def test_stage_defaults_go_before_the_first_override_so_hydra_flags_stay_in_front(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    args = with_stage_overrides(["-m", "hydra/launcher=local", "a=1,2", "--cfg", "job"], conf)
    n = len(STAGE_OVERRIDES) + 1
    assert args[0] == "-m" and args[1 : 1 + n - 1] == STAGE_OVERRIDES
    assert args[n] == f"hydra.searchpath=[file://{conf.resolve()}]"
    assert args[n + 1 :] == ["hydra/launcher=local", "a=1,2", "--cfg", "job"]
    assert with_stage_overrides(["x=1"]) == [*STAGE_OVERRIDES, "x=1"]
    assert with_stage_overrides(["--info"], tmp_path / "absent") == [*STAGE_OVERRIDES, "--info"]


def test_launcher_configs_exist_for_slurm_and_local():
    for name, base in (("slurm", "submitit_slurm"), ("local", "submitit_local")):
        config = yaml.safe_load((REPO_ROOT / "conf" / "hydra" / "launcher" / f"{name}.yaml").read_text())
        assert config["defaults"] == [base]
    assert yaml.safe_load((REPO_ROOT / "conf/hydra/launcher/slurm.yaml").read_text())["gpus_per_node"] == 1


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    env_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{env_bin}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "disabled",
        "TQDM_DISABLE": "1",
        "OMP_NUM_THREADS": "1",
    }


def test_submitit_local_sweep_of_two_jobs_saves_both_dictionaries(tiny_pipeline, tmp_path):
    """`experiments/dictionaries.py -m hydra/launcher=local` with two L1 values: two submitit
    processes, each reading params.yaml from the working directory, each saving its dictionary."""
    _, root = tiny_pipeline
    out = tmp_path / "dictionaries"
    params = compose(
        ["profile=tiny", *[f"paths.{k}={root / k}" for k in ("data", "models", "activations")]]
        + [f"paths.dictionaries={out}"]
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(OmegaConf.to_container(params, resolve=True)))
    command = [
        sys.executable,
        str(REPO_ROOT / "experiments" / "dictionaries.py"),
        "-m",
        "hydra/launcher=local",
        "hydra.sweep.dir=multirun/test",
        "profile.dictionaries.cells=[L1_transcoder]",
        "profile.dictionaries.l1_coefficients=[1e-3],[1e-2]",
    ]
    done = subprocess.run(command, cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    logs = sorted((tmp_path / "multirun" / "test" / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2, logs  # two separate submitit jobs
    for l1 in ("0.001", "0.01"):
        directory = out / "tiny" / "L1_transcoder" / f"l1_{l1}"
        dictionary = load_dictionary(directory)
        assert dictionary.spec.kind == "transcoder" and dictionary.spec.layer == 1
        assert (directory / "heldout_metrics.json").exists()
    # each job's checkpoint folder is its own (cells and L1 values in the name)
    assert len(list((tmp_path / "checkpoints" / "tiny" / "dictionaries").iterdir())) == 2


# -- sharing a finished pipeline through a DVC remote --------------------------------------------


def same_tree(a: Path, b: Path) -> list[str]:
    """Relative paths of files that differ or exist on one side only (byte comparison)."""
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    differ = [str(p) for p in files_a ^ files_b]
    differ += [str(p) for p in files_a & files_b if not filecmp.cmp(a / p, b / p, shallow=False)]
    return differ


@needs_git
def test_dvc_remote_push_then_pull_in_a_fresh_clone_restores_every_output_without_recomputing(tmp_path):
    origin, remote, clone = tmp_path / "origin", tmp_path / "remote", tmp_path / "clone"
    origin.mkdir()
    copy_repository(origin)
    (origin / "dvc.lock").unlink(missing_ok=True)
    params = compose(["profile=tiny", "profile.dictionaries.cells=[L0_transcoder,L1_sae_mlp_out]"])
    (origin / "params.yaml").write_text(yaml.safe_dump(OmegaConf.to_container(params, resolve=True)))
    env = subprocess_env(tmp_path)
    env_bin = str(Path(sys.executable).parent)

    def sh(*command: str, cwd: Path = origin) -> str:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    sh("git", "init", "-q")
    sh(f"{env_bin}/dvc", "repro", "dictionaries")  # corpus, organism, activations, one per cell
    sh(f"{env_bin}/dvc", "remote", "add", "-d", "shared", str(remote))
    pushed = sh(f"{env_bin}/dvc", "push", "--with-deps", "dictionaries")
    assert "pushed" in pushed, pushed
    sh("git", "add", "-A")
    sh(*git, "commit", "-q", "-m", "tiny pipeline")
    sh("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path)
    assert not (clone / "dictionaries" / "tiny" / "L0_transcoder").exists()  # outputs are not in git
    # what this test ran (a whole `dvc repro` would be pulled with a plain `dvc pull`)
    sh(f"{env_bin}/dvc", "pull", "--with-deps", "dictionaries", cwd=clone)
    outputs = ["data/tiny/corpus", "models/tiny", "activations/tiny"]
    outputs += [f"dictionaries/tiny/{cell}" for cell in ("L0_transcoder", "L1_sae_mlp_out")]
    for output in outputs:
        assert (clone / output).is_dir(), output
        assert same_tree(origin / output, clone / output) == [], output
    status = sh(f"{env_bin}/dvc", "status", "--with-deps", "dictionaries", cwd=clone)
    assert "up to date" in status, status
    rerun = sh(f"{env_bin}/dvc", "repro", "dictionaries", cwd=clone)
    assert "Running stage" not in rerun, rerun  # nothing recomputed


# -- bench_multilayer --------------------------------------------------------------------------


def test_bench_multilayer_runs_and_the_shared_pass_trains_the_same_dictionaries(tmp_path, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    path = REPO_ROOT / "benchmarks" / "bench_multilayer.py"
    spec = importlib.util.spec_from_file_location("bench_multilayer", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_multilayer", bench)  # its dataclass needs it
    spec.loader.exec_module(bench)
    result = bench.main(
        [
            "--steps",
            "2",
            "--layers",
            "0",
            "1",
            "--d-sae",
            "64",
            "--batch-size",
            "64",
            "--buffer-tokens",
            "256",
            "--batch-contexts",
            "4",
            "--context-size",
            "32",
            "--model-dir",
            str(tmp_path / "absent"),
            "--device",
            "cpu",
        ]  # fmt: skip
    )
    assert result["k"] == 2 and result["shared_s"] > 0 and result["separate_s"] > 0
    assert result["max_weight_difference"] == 0.0
