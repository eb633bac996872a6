"""The package's layering (pyproject.toml's [tool.importlinter] contracts) holds, and breaking it fails.

import-linter reads the package's import graph (grimp; function-local imports count) and checks each
contract. It runs in a subprocess with PYTHONPATH naming the source tree to check, so the same check
runs on a copy of the package with an upward import injected, leaving the real tree untouched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from transcoder_lab.config import REPO_ROOT

LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint(source_root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` with the contracts of pyproject.toml on the package under `source_root`."""
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run(
        [sys.executable, "-c", LINT, "--config", str(REPO_ROOT / "pyproject.toml"), "--no-cache"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def broken_contracts(output: str) -> list[str]:
    return re.findall(r"^(.+?) BROKEN$", output, flags=re.MULTILINE)


def test_the_import_contracts_hold():
    run = lint(REPO_ROOT / "src")
    assert run.returncode == 0, (
        f"broken import contracts: {broken_contracts(run.stdout)}\n{run.stdout[-6000:]}{run.stderr[-2000:]}"
    )
    assert "0 broken" in run.stdout


def test_an_upward_import_breaks_the_layers(tmp_path):
    """sources/ importing case_studies/ (a layer far above it) is reported by the layers contract."""
    copy = tmp_path / "src"
    shutil.copytree(REPO_ROOT / "src" / "transcoder_lab", copy / "transcoder_lab",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    hub = copy / "transcoder_lab" / "sources" / "hub.py"
    upward = "\n\ndef _upward():\n    from transcoder_lab import case_studies  # noqa: F401\n"
    hub.write_text(hub.read_text() + upward)
    run = lint(copy)
    assert run.returncode != 0, run.stdout[-4000:]
    assert broken_contracts(run.stdout) == ["transcoder_lab layers"], run.stdout[-4000:]
    assert "transcoder_lab.sources.hub -> transcoder_lab.case_studies" in run.stdout, run.stdout[-4000:]


MAX_LINES = 700  # a module is read in one sitting; past this it holds more than one job


def long_files(root: Path) -> dict[Path, int]:
    """Python files under `root` longer than MAX_LINES, with their line counts."""
    counts = {path: len(path.read_text().splitlines()) for path in root.rglob("*.py")}
    return {path: n for path, n in counts.items() if n > MAX_LINES}


def test_no_module_or_benchmark_is_over_700_lines():
    assert long_files(REPO_ROOT / "src") | long_files(REPO_ROOT / "benchmarks") == {}


def test_a_long_file_is_reported(tmp_path):
    (tmp_path / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "short.py").write_text("x = 1\n" * MAX_LINES)
    assert long_files(tmp_path) == {tmp_path / "long.py": MAX_LINES + 1}
