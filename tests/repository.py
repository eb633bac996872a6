"""A copy of this checkout for tests that run DVC or git on the whole repository."""

import shutil
import subprocess
from pathlib import Path

from transcoder_lab.config import REPO_ROOT


def copy_repository(target: Path) -> None:
    """Copy the working tree's tracked and untracked, not ignored files to `target`."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (REPO_ROOT / name).is_file():
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
