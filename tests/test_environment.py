"""What a run ran on: processor, threads, versions and commit, and its section in REPORT.md."""

import re
import subprocess

import torch

from transcoder_lab.config import REPO_ROOT
from transcoder_lab.environment import KEY_DISTRIBUTIONS, describe_environment, git_commit
from transcoder_lab.report import _environment_section


def test_the_environment_names_processor_threads_versions_and_commit():
    environment = describe_environment(REPO_ROOT)
    assert environment["cpu"] and environment["torch_threads"] == torch.get_num_threads()
    assert torch.__version__.startswith(environment["versions"]["torch"].split("+")[0])
    assert set(environment["versions"]) == set(KEY_DISTRIBUTIONS)
    assert re.fullmatch(r"[0-9a-f]{40}", environment["commit"])
    assert isinstance(environment["code_changes"], bool)


def test_outside_a_repository_the_commit_is_unknown(tmp_path):
    assert git_commit(tmp_path) == {"commit": None, "code_changes": None}


def test_only_code_changes_count_as_changes(tmp_path):
    """An output the pipeline rewrites (tracked in git) is not a code change; an edited module is."""

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text("x = 1\n")
    (tmp_path / "REPORT.md").write_text("old\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=lab", "-c", "user.email=lab@localhost", "commit", "-qm", "start")
    (tmp_path / "REPORT.md").write_text("new\n")
    assert git_commit(tmp_path)["code_changes"] is False
    (tmp_path / "src" / "m.py").write_text("x = 2\n")
    assert git_commit(tmp_path)["code_changes"] is True


def test_the_report_section_states_commit_processor_and_changes():
    environment = describe_environment(REPO_ROOT) | {"commit": "abc123", "code_changes": True}
    text = "\n".join(_environment_section(environment))
    assert "commit abc123 (with uncommitted code changes)" in text
    assert environment["cpu"] in text and f"torch {environment['versions']['torch']}" in text
