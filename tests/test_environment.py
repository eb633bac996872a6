"""What a run ran on: processor, threads, versions and commit, and its section in REPORT.md."""

import re

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
    assert isinstance(environment["tracked_changes"], bool)


def test_outside_a_repository_the_commit_is_unknown(tmp_path):
    assert git_commit(tmp_path) == {"commit": None, "tracked_changes": None}


def test_the_report_section_states_commit_processor_and_changes():
    environment = describe_environment(REPO_ROOT) | {"commit": "abc123", "tracked_changes": True}
    text = "\n".join(_environment_section(environment))
    assert "commit abc123 (with uncommitted changes)" in text
    assert environment["cpu"] in text and f"torch {environment['versions']['torch']}" in text
