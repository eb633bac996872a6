"""dvc.yaml's code deps are the truth: every `transcoder_lab` module a stage runs is among its deps.

A stage runs the script its `cmd` names, and the Python scripts in any folder of its deps outside
`src/` (the `notebooks` stage executes notebooks/*.py). The modules it runs are those scripts'
`transcoder_lab` imports (read with `ast`, wherever they sit: module level or inside a function)
and everything those import in turn (grimp's import graph of the package, which also sees
function-local imports), plus the `__init__` of every package on the way (Python runs it first)
and the modules a package loads by name at run time (`DYNAMIC_LOADERS`). Each module's file must be
a dep of the stage, or lie under a folder that is. A missing one means an edit to that module would
leave the stage's outputs stale while `dvc status` calls them up to date.
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import grimp
import pytest
import yaml

from transcoder_lab.config import REPO_ROOT

PACKAGE = "transcoder_lab"
SOURCE_ROOT = REPO_ROOT / "src"
# Packages that import their submodules by name (importlib) rather than by an import statement:
# `organism.mechanisms.load_mechanism` loads the planted mechanism the corpus config names.
DYNAMIC_LOADERS = {"transcoder_lab.organism.mechanisms"}
# Package data (pyproject's package-data) and the module that reads each: a stage that runs the
# module depends on the data too.
PACKAGE_DATA = {
    "transcoder_lab.behaviour": "src/transcoder_lab/hanna_nouns.txt",
    "transcoder_lab.organism.lexicon": "src/transcoder_lab/organism/lexicon",
}


def module_file(module: str) -> Path:
    """The source file of a `transcoder_lab` module (a package's is its `__init__.py`)."""
    base = SOURCE_ROOT.joinpath(*module.split("."))
    return base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"


def needed_files(module: str) -> list[Path]:
    """The files a module needs: its source (unless empty: an empty `__init__.py` runs nothing, and
    once it holds code it is needed), and the package data it reads."""
    source = module_file(module)
    data = [REPO_ROOT / PACKAGE_DATA[module]] if module in PACKAGE_DATA else []
    return ([source] if source.stat().st_size else []) + data


def imported_modules(script: Path, known: set[str]) -> set[str]:
    """The `transcoder_lab` modules a script imports anywhere in its text (`from a.b import c` names
    module `a.b.c` when that is a module, else `a.b`)."""
    found = set()
    for node in ast.walk(ast.parse(script.read_text(), str(script))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in known}


def closure(direct: set[str], graph: grimp.ImportGraph) -> set[str]:
    """`direct`, everything they import transitively, their packages' `__init__`s, and the
    submodules of the dynamic loaders among them (which import in turn)."""
    todo, seen = list(direct), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # the packages above it
        todo += graph.find_modules_directly_imported_by(module)
        if module in DYNAMIC_LOADERS:
            todo += graph.find_children(module)
    return seen


def stage_scripts(stage: dict) -> list[Path]:
    """The scripts a stage runs: the one its command names, and the .py files of its dep folders
    outside src/ (e.g. the notebooks the `notebooks` stage executes)."""
    scripts = [REPO_ROOT / name for name in re.findall(r"python\s+(\S+\.py)", stage["cmd"])]
    for dep in stage.get("deps", []):
        path = REPO_ROOT / dep
        if "${" not in dep and path.is_dir() and not path.is_relative_to(SOURCE_ROOT):
            scripts += sorted(path.glob("*.py"))
    return scripts


def covered(path: Path, deps: list[str]) -> bool:
    return any(
        path == REPO_ROOT / dep or path.is_relative_to(REPO_ROOT / dep) for dep in deps if "${" not in dep
    )


def stage_needs(stages: dict[str, dict]) -> dict[str, tuple[list[str], list[Path]]]:
    """Each stage's (deps, files it runs): its modules' files and the package data they read."""
    graph = grimp.build_graph(PACKAGE)
    known = set(graph.modules)
    needs = {}
    for name, entry in stages.items():
        stage = entry.get("do", entry)  # a foreach stage's template
        direct = set().union(*(imported_modules(script, known) for script in stage_scripts(stage)))
        files = [path for module in sorted(closure(direct, graph)) for path in needed_files(module)]
        needs[name] = (stage.get("deps", []), files)
    return needs


def uncovered_files(stages: dict[str, dict]) -> list[tuple[str, str]]:
    """(stage, file) for every module file or package data file a stage runs that none of its deps
    covers."""
    return [
        (name, str(path.relative_to(REPO_ROOT)))
        for name, (deps, files) in stage_needs(stages).items()
        for path in files
        if not covered(path, deps)
    ]


def unneeded_modules(stages: dict[str, dict]) -> list[tuple[str, str]]:
    """(stage, dep) for every package module a stage lists among its deps but never runs: an edit
    there would rerun the stage for nothing."""
    return [
        (name, dep)
        for name, (deps, files) in stage_needs(stages).items()
        for dep in deps
        if dep.startswith("src/") and dep.endswith(".py") and REPO_ROOT / dep not in files
    ]


@pytest.fixture(scope="module")
def stages() -> dict[str, dict]:
    return yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]


def test_every_stage_depends_on_the_modules_it_runs(stages):
    missing = uncovered_files(stages)
    assert not missing, "files a stage runs but does not list in dvc.yaml's deps:\n" + "\n".join(
        f"  stage {stage}: - {path}" for stage, path in missing
    )


def test_no_stage_depends_on_a_module_it_does_not_run(stages):
    unneeded = unneeded_modules(stages)
    assert not unneeded, "modules a stage lists in dvc.yaml's deps but never runs:\n" + "\n".join(
        f"  stage {stage}: - {path}" for stage, path in unneeded
    )


def test_a_module_listed_but_not_run_is_reported(stages):
    """`corpus` trains nothing: listing the organism's training module among its deps is reported."""
    edited = copy.deepcopy(stages)
    edited["corpus"]["deps"].append("src/transcoder_lab/organism/train.py")
    assert unneeded_modules(edited) == [("corpus", "src/transcoder_lab/organism/train.py")]


def test_removing_a_needed_dep_is_reported(stages):
    """The check can fail: without `sources/models.py` among its deps, `evaluate` is reported;
    likewise a module reached only through a function-local import (`behaviour`, which the planted
    mechanisms import inside their `behaviour` methods, from the `corpus` stage), one loaded by name
    (the `citation` mechanism) and package data (Hanna et al.'s nouns)."""
    for stage, dep, reported in [
        ("evaluate", "src/transcoder_lab/sources/models.py", "src/transcoder_lab/sources/models.py"),
        ("corpus", "src/transcoder_lab/behaviour.py", "src/transcoder_lab/behaviour.py"),
        (
            "corpus",
            "src/transcoder_lab/organism/mechanisms",
            "src/transcoder_lab/organism/mechanisms/citation.py",
        ),
        ("behaviour", "src/transcoder_lab/hanna_nouns.txt", "src/transcoder_lab/hanna_nouns.txt"),
    ]:
        edited = copy.deepcopy(stages)
        deps = edited[stage].get("do", edited[stage])["deps"]
        assert dep in deps, f"{stage} no longer lists {dep}: pick another dep for this test"
        deps.remove(dep)
        assert (stage, reported) in uncovered_files(edited)


def test_dynamic_loaders_are_declared():
    """A package that imports modules by name must be in DYNAMIC_LOADERS, or its plugins' edits
    would go unseen by the check above."""
    graph = grimp.build_graph(PACKAGE)
    loading = {
        module for module in graph.modules if "importlib.import_module(" in module_file(module).read_text()
    }
    assert loading <= DYNAMIC_LOADERS, (
        f"packages that load modules by name: {sorted(loading - DYNAMIC_LOADERS)}"
    )


def test_package_data_is_declared():
    """Every package-data pattern of pyproject.toml matches a file PACKAGE_DATA names, so a new data
    file cannot go unseen by the check above."""
    import tomllib

    patterns = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    declared = [REPO_ROOT / path for path in PACKAGE_DATA.values()]
    for pattern in patterns[PACKAGE]:
        for path in (SOURCE_ROOT / PACKAGE).glob(pattern):
            assert any(path == d or path.is_relative_to(d) for d in declared), (
                f"{path} is not in PACKAGE_DATA"
            )
