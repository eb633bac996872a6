"""Executed notebooks (DVC stage `notebooks`): every notebook in notebooks/ that applies to the
profile, run top to bottom on the profile's outputs and written with its outputs and figures.

A notebook is a jupytext percent-format script (`notebooks/<name>.py`). It reads the profile and
the output root from the environment (`notebook_config`: TRANSCODER_LAB_PROFILE, default
`organism`; TRANSCODER_LAB_ROOT, default this checkout), so the same file runs on the committed
organism outputs, on another checkout's, or on the tiny profile the tests build.

`execute_notebooks(cfg)`:
1. picks the notebooks that apply to the profile (`notebooks_for`): organism.py on organism-source
   profiles; families.py where the profile compares dictionary families (`profile.families`); each
   configured case study's notebook where the study has settings for the profile;
   the case-study template where its config has settings for the profile;
2. for each, converts the script to a notebook (jupytext) and executes it with nbclient in a
   kernel named "python3", which jupyter_client starts with the Python running this code (the
   venv's, through ipykernel's kernel spec), with the stage's own config (`frozen_config`, named
   by TRANSCODER_LAB_CONFIG: the run's overrides hold in the notebooks, so their numbers are the
   stage's), the two variables set to the profile and to `cfg`'s output root, and matplotlib's
   inline backend, so figures are embedded as PNGs;
3. writes `results/<profile>/notebooks/<name>.ipynb` (with outputs) and `<name>.html`
   (nbconvert's HTMLExporter, images embedded), each atomically;
4. writes `results/<profile>/notebooks/index.md`, a table of them, or why none applies (so the
   stage's output exists on every profile).

A cell that raises stops the run with `NotebookError`, naming the notebook, the cell's number
and first line, and the exception.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from transcoder_lab import io
from transcoder_lab.config import (
    CONF_DIR,
    OUTPUT_KEYS,
    REPO_ROOT,
    Config,
    ModelSource,
    load_config,
    load_profile,
)
from transcoder_lab.paths import results_dir

CONFIG_VARIABLE = "TRANSCODER_LAB_CONFIG"
PROFILE_VARIABLE = "TRANSCODER_LAB_PROFILE"
ROOT_VARIABLE = "TRANSCODER_LAB_ROOT"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
ORGANISM_NOTEBOOK = "organism"
TEMPLATE_NOTEBOOK = "case_study_template"
FAMILIES_NOTEBOOK = "families"
KERNEL_NAME = "python3"  # ipykernel's spec; jupyter_client runs it with this process's Python
CELL_TIMEOUT_S = 3600
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


class NotebookError(RuntimeError):
    """A notebook's cell raised while the notebook was executed."""


def say(text: str) -> None:
    """Show a sentence about this run's numbers as Markdown under the cell that computed them: the
    notebooks' prose never states them, since they change with every retraining."""
    from IPython.display import Markdown, display  # IPython only inside a kernel

    display(Markdown(text))


def notebook_config(overrides: list[str] | None = None) -> Config:
    """The config a notebook works on: the stage's own config when the `notebooks` stage runs it
    (TRANSCODER_LAB_CONFIG, a YAML file it writes: every override of the run, e.g. `budget=smoke`,
    holds in the notebook too), else the profile named by TRANSCODER_LAB_PROFILE (default organism)
    with its outputs under TRANSCODER_LAB_ROOT (default this checkout)."""
    if os.environ.get(CONFIG_VARIABLE):
        raw = OmegaConf.load(os.environ[CONFIG_VARIABLE])
        for override in overrides or []:  # on a frozen config: a case study added, or key=value
            added = re.fullmatch(r"\+case_study@case_study\.(\w+)=(\w+)", override)
            if added:
                study = OmegaConf.load(CONF_DIR / "case_study" / f"{added[2]}.yaml")
                raw = OmegaConf.merge(raw, {"case_study": {added[1]: study}})
            else:
                raw = OmegaConf.merge(raw, OmegaConf.from_dotlist([override]))
        return load_config(raw)
    profile = os.environ.get(PROFILE_VARIABLE, "organism")
    root = Path(os.environ.get(ROOT_VARIABLE, REPO_ROOT))
    return load_profile(profile, root, overrides)


def frozen_config(cfg: Config, path: Path) -> Path:
    """`cfg` as YAML at `path`, its output paths made absolute (a kernel runs in notebooks/)."""
    absolute = {key: str(Path(getattr(cfg.paths, key)).resolve()) for key in OUTPUT_KEYS}
    raw = OmegaConf.structured(dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, **absolute)))
    io.write_text(path, OmegaConf.to_yaml(raw))
    return path


def output_root(cfg: Config) -> Path:
    """The folder holding the profile's outputs (`results/`, `models/`, ...), as an absolute path."""
    return Path(cfg.paths.results).resolve().parent


def notebook_dir(cfg: Config) -> Path:
    """Where the executed notebooks of the profile go."""
    return results_dir(cfg) / "notebooks"


def _has_settings(study_profiles: dict, cfg: Config) -> bool:
    name = cfg.profile.name
    return name in study_profiles or (
        cfg.profile.model.source == ModelSource.organism and "organism" in study_profiles
    )


def notebooks_for(cfg: Config, notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """Step 1: the notebooks that apply to the profile (module docstring), in name order."""
    chosen = set()
    if cfg.profile.corpus is not None:
        chosen.add(notebook_dir / f"{ORGANISM_NOTEBOOK}.py")
    if cfg.profile.families.get("mechanisms"):  # the dictionary families' comparison
        chosen.add(notebook_dir / f"{FAMILIES_NOTEBOOK}.py")
    for study in cfg.case_study.values():
        if study.notebook and _has_settings(study.profiles, cfg):
            chosen.add(notebook_dir / Path(study.notebook).name)
    # the template is not in conf/config.yaml's defaults (nor in params.yaml): read its config file
    template = yaml.safe_load((CONF_DIR / "case_study" / "template.yaml").read_text())
    if _has_settings(template.get("profiles", {}), cfg):
        chosen.add(notebook_dir / f"{TEMPLATE_NOTEBOOK}.py")
    return sorted(path for path in chosen if path.exists())


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """os.environ with `values` set (the kernel inherits it), restored afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _failed_cell(notebook: nbformat.NotebookNode) -> tuple[int, str]:
    """(1-based number among code cells, first source line) of the cell with an error output."""
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for number, cell in enumerate(code_cells, start=1):
        if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
            return number, (cell.source.strip().splitlines() or [""])[0]
    return 0, ""


@dataclass
class ExecutedNotebook:
    name: str
    ipynb: Path
    html: Path
    seconds: float
    n_images: int


def image_count(notebook: nbformat.NotebookNode) -> int:
    """PNG outputs in an executed notebook."""
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def execute_notebook(
    source: Path, out_dir: Path, profile: str, root: Path, config: Path | None = None
) -> ExecutedNotebook:
    """Step 2 and 3 for one notebook script: executed on `profile`'s outputs under `root` (with the
    config of `config`, a `frozen_config` file, when given), written to `out_dir/<name>.ipynb` and
    `.html`. Raises NotebookError when a cell raises."""
    import time

    source = Path(source)
    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    for index, cell in enumerate(notebook.cells):  # stable ids: a rerun changes only what it computed
        cell.id = f"cell-{index}"
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL_NAME,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(source.parent)}},
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # not its warning that it runs over local TCP
        record_timing=False,  # no timestamps in the saved notebook
    )
    variables = {
        CONFIG_VARIABLE: str(config) if config is not None else "",
        PROFILE_VARIABLE: profile,
        ROOT_VARIABLE: str(root),
        "MPLBACKEND": INLINE_BACKEND,
        # tqdm.auto's note that ipywidgets is missing (bars fall back to text) is no output of the notebook
        "PYTHONWARNINGS": "ignore:IProgress not found",
        "TQDM_DISABLE": "1",  # progress bars would fill the saved outputs
    }
    start = time.perf_counter()
    with _environment(variables):
        try:
            client.execute()
        except CellExecutionError as error:
            number, first_line = _failed_cell(notebook)
            raise NotebookError(
                f"notebook {source.name}: code cell {number} ({first_line!r}) raised "
                f"{error.ename}: {error.evalue}"
            ) from error
    seconds = time.perf_counter() - start
    ipynb, html = out_dir / f"{source.stem}.ipynb", out_dir / f"{source.stem}.html"
    body, _ = HTMLExporter().from_notebook_node(notebook)
    io.write_text(ipynb, nbformat.writes(notebook))
    io.write_text(html, body)
    return ExecutedNotebook(source.stem, ipynb, html, seconds, image_count(notebook))


def execute_notebooks(cfg: Config, notebooks: list[Path] | None = None) -> list[ExecutedNotebook]:
    """Steps 1-3: every applicable notebook (or `notebooks`) executed on `cfg`'s profile and
    outputs, into `results/<profile>/notebooks/`."""
    notebooks = notebooks_for(cfg) if notebooks is None else notebooks
    out_dir, root = notebook_dir(cfg), output_root(cfg)
    done = []
    with tempfile.TemporaryDirectory(prefix="notebook_config_") as tmp:
        config = frozen_config(cfg, Path(tmp) / "config.yaml")  # the notebooks see this run's config
        for source in tqdm(notebooks, desc=f"notebooks on {cfg.profile.name}", unit="notebook"):
            done.append(execute_notebook(source, out_dir, cfg.profile.name, root, config))
            tqdm.write(f"executed {source.name} in {done[-1].seconds:.0f} s")
    write_index(out_dir, cfg.profile.name, done)
    return done


def write_index(out_dir: Path, profile: str, done: list[ExecutedNotebook]) -> Path:
    """`out_dir/index.md`: the executed notebooks with links, or why there are none (step 4)."""
    lines = [f"# Executed notebooks: profile `{profile}`", ""]
    if done:
        lines += ["| notebook | figures | |", "|---|---|---|"]
        lines += [f"| [{n.name}]({n.ipynb.name}) | {n.n_images} | [HTML]({n.html.name}) |" for n in done]
    else:
        lines.append(
            "No notebook applies to this profile (no case study has settings for it, and it has no corpus)."
        )
    path = out_dir / "index.md"
    io.write_text(path, "\n".join(lines) + "\n")
    return path
