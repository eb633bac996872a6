"""Every notebook runs top to bottom as a script on the tiny profile's outputs; the `notebooks`
stage's library function (transcoder_lab.notebooks) executes one in a kernel, with its figures,
and names the notebook and cell when a cell raises."""

import runpy

import nbformat
import pytest
import torch

from transcoder_lab.config import REPO_ROOT
from transcoder_lab.notebooks import (
    NotebookError,
    execute_notebook,
    execute_notebooks,
    image_count,
    notebook_dir,
    notebooks_for,
)

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.py"))
CASE_STUDIES = ("caught", "citation", "greater_than", "local_context", "walkthrough")


@pytest.fixture(scope="module")
def tiny_outputs(tiny_pipeline):
    return tiny_pipeline[1]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_as_a_script(notebook, tiny_outputs, monkeypatch):
    monkeypatch.setenv("TRANSCODER_LAB_PROFILE", "tiny")
    monkeypatch.setenv("TRANSCODER_LAB_ROOT", str(tiny_outputs))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    with torch.enable_grad():  # a notebook may switch gradients off (greater_than does): not for later tests
        runpy.run_path(str(notebook), run_name="__main__")
    assert torch.is_grad_enabled()


def test_notebooks_are_paired_percent_scripts():
    assert NOTEBOOKS, "no notebooks found"
    for path in NOTEBOOKS:
        assert "format_name: percent" in path.read_text(), f"{path.name} is not a jupytext percent script"


def test_case_study_notebooks_walk_the_steps():
    """A tutorial, not one opaque call: at least six code cells call the library."""
    for name in (*CASE_STUDIES, "case_study_template"):
        cells = (REPO_ROOT / "notebooks" / f"{name}.py").read_text().split("# %%")
        code = [cell for cell in cells if not cell.startswith(" [markdown]")]
        calling = [cell for cell in code if "(" in cell and "import" not in cell.split("(")[0]]
        assert len(calling) >= 6, f"{name}: {len(calling)} code cells call functions"
        assert "run_for_notebook" not in "".join(cells)


def test_every_notebook_applies_to_an_organism_profile(tiny_pipeline):
    assert notebooks_for(tiny_pipeline[0]) == NOTEBOOKS


def test_executed_notebook_has_figures_and_html(tiny_pipeline):
    cfg, _ = tiny_pipeline
    (done,) = execute_notebooks(cfg, [REPO_ROOT / "notebooks" / "citation.py"])
    assert done.ipynb == notebook_dir(cfg) / "citation.ipynb" and done.html.exists()
    executed = nbformat.read(done.ipynb, as_version=4)
    outputs = [output for cell in executed.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert image_count(executed) >= 2  # the activations and the graph
    assert done.n_images == image_count(executed)
    assert "data:image/png;base64" in done.html.read_text()


def test_a_raising_cell_names_the_notebook_and_the_cell(tmp_path):
    source = tmp_path / "broken.py"
    source.write_text('# %%\nx = 1\n\n# %% [markdown]\n# prose\n\n# %%\nraise ValueError("boom")\n')
    with pytest.raises(NotebookError, match=r"broken\.py: code cell 2 .*ValueError: boom"):
        execute_notebook(source, tmp_path / "out", "tiny", tmp_path)
    assert not (tmp_path / "out").exists()


def test_a_notebook_run_by_the_stage_sees_the_stages_own_config(tmp_path, monkeypatch):
    """The run's overrides (here `budget=smoke`) hold in the notebooks: the stage hands its config
    to the kernels as a file, so notebook and stage compute with the same settings."""
    from transcoder_lab.config import load_profile
    from transcoder_lab.notebooks import CONFIG_VARIABLE, frozen_config, notebook_config

    smoke = load_profile("gpt2_small", tmp_path, ["budget=smoke"])
    default = load_profile("gpt2_small", tmp_path)
    assert smoke.profile.dictionaries.training.n_steps != default.profile.dictionaries.training.n_steps
    monkeypatch.setenv(CONFIG_VARIABLE, str(frozen_config(smoke, tmp_path / "config.yaml")))
    assert notebook_config() == smoke
    with_template = notebook_config(["+case_study@case_study.template=template"])
    assert set(with_template.case_study) == set(smoke.case_study) | {"template"}


def test_a_profile_without_notebooks_still_gets_the_stages_output(tmp_path):
    """pythia_410m: no case study has settings for it and it has no corpus, so no notebook applies;
    the stage's output folder still exists (DVC requires it), holding an index that says so."""
    from transcoder_lab.config import load_profile

    cfg = load_profile("pythia_410m", tmp_path)
    assert notebooks_for(cfg) == []
    assert execute_notebooks(cfg) == []
    index = (notebook_dir(cfg) / "index.md").read_text()
    assert "pythia_410m" in index and "No notebook applies" in index
