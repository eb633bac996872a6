"""A copy of this checkout for tests that run DVC or git on the whole repository."""

import os
import re
import shutil
import subprocess
from pathlib import Path

from transcoder_lab.config import REPO_ROOT


def repository_files() -> list[Path]:
    """The working tree's tracked files and untracked, not ignored ones (what a commit could hold)
    that exist, relative to the repository root."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [Path(name) for name in listing.splitlines() if (REPO_ROOT / name).is_file()]


def copy_repository(target: Path) -> None:
    """Copy `repository_files()` to `target`."""
    for name in repository_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target / name)


def init_repository(target: Path) -> None:
    """A copy of this checkout at `target`, as a git repository with one commit (what `dvc exp run`
    needs), without dvc.lock (the copy has none of the outputs it records)."""
    copy_repository(target)
    (target / "dvc.lock").unlink(missing_ok=True)
    git = ["git", "-c", "user.name=transcoder-lab tests", "-c", "user.email=tests@transcoder-lab.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=target, check=True)
    subprocess.run([*git, "add", "-A"], cwd=target, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "copy"], cwd=target, check=True)


def expected_stages(dvc_yaml: Path, cfg) -> set[str]:
    """Every stage instance dvc.yaml expands to under `cfg` (foreach over cells, published layers,
    case studies), to compare with the stages a run reports."""
    import yaml

    foreach = {
        "dictionaries": cfg.profile.dictionaries.cells,
        "import_transcoders": cfg.profile.published_transcoder_layers,
        "graph_screenshots": cfg.profile.graph_screenshots,
        "case_study": list(cfg.case_study),
        "crosslayer": list(cfg.profile.crosslayer.get("l1_coefficients") or []),
    }
    names: set[str] = set()
    for name, stage in yaml.safe_load(dvc_yaml.read_text())["stages"].items():
        if "foreach" not in stage:
            names.add(name)
        else:
            assert name in foreach, f"a foreach stage this helper does not know: {name}"
            names |= {f"{name}@{item}" for item in foreach[name]}
    return names


GPU_VARIABLES = ("LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_HOME")


def paper_profile_environment(
    hf_home: Path, home: Path, offline: bool = True, endpoint: str | None = None
) -> dict[str, str]:
    """The environment of a paper-profile run with its Hugging Face cache at `hf_home`: the venv's
    tools on PATH, HF_HUB_OFFLINE=1 when `offline` (the run reads a filled cache), and HF_ENDPOINT at
    `endpoint`, a local stand-in hub (transcoder_lab.standins.hub_server) that the run downloads from when not
    `offline`. Tests never reach the real hub: a run with downloads needs the stand-in's endpoint."""
    import sys

    if not offline and endpoint is None:
        raise ValueError("a paper-profile run that downloads needs the endpoint of a local stand-in hub")
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(home),
        "HF_HOME": str(hf_home),
        "DVC_NO_ANALYTICS": "1",
        "WANDB_MODE": "disabled",
        "TQDM_MININTERVAL": "60",
    }
    # a GPU stays visible, as on a user's machine: profile.device "auto" then picks CUDA
    env |= {name: os.environ[name] for name in GPU_VARIABLES if name in os.environ}
    env |= {"HF_HUB_OFFLINE": "1"} if offline else {}
    return env | ({"HF_ENDPOINT": endpoint} if endpoint is not None else {})


def dvc_exp_run(repo: Path, overrides: list[str], env: dict[str, str]) -> str:
    """`dvc exp run -S <override> ...` in `repo`; the log, after asserting that it succeeded. Prints
    each stage's wall time (from when DVC starts it to when the next starts or the run ends), which
    pytest shows with the test's output."""
    import sys
    import time

    command = [f"{Path(sys.executable).parent}/dvc", "exp", "run", *[a for o in overrides for a in ("-S", o)]]
    lines, starts = [], []
    begun = time.monotonic()
    with subprocess.Popen(
        command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            started = re.match(r"Running stage '([^']+)'", line)
            if started:
                starts.append((started[1], time.monotonic()))
    ended = time.monotonic()
    log = "".join(lines)
    print(f"{' '.join(command)}: {ended - begun:.0f} s; seconds per stage:")
    for (stage, start), (_, end) in zip(starts, [*starts[1:], ("", ended)], strict=True):
        print(f"  {end - start:7.1f}  {stage}")
    assert process.returncode == 0, f"{' '.join(command)} failed:\n{log[-6000:]}"
    return log
