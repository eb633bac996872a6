"""Every notebook runs top to bottom as a script on the tiny profile's outputs."""

import runpy

import pytest

from transcoder_lab.config import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.py"))


@pytest.fixture(scope="module")
def tiny_outputs(tiny_pipeline):
    return tiny_pipeline[1]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_as_a_script(notebook, tiny_outputs, monkeypatch):
    monkeypatch.setenv("TRANSCODER_LAB_PROFILE", "tiny")
    monkeypatch.setenv("TRANSCODER_LAB_ROOT", str(tiny_outputs))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    runpy.run_path(str(notebook), run_name="__main__")


def test_notebooks_are_paired_percent_scripts():
    assert NOTEBOOKS, "no notebooks found"
    for path in NOTEBOOKS:
        assert "format_name: percent" in path.read_text(), f"{path.name} is not a jupytext percent script"
