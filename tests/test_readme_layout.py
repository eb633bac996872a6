"""The README's Layout section against the tree: it names every module and folder of the package,
and every file or folder it names exists, so a move or a new module cannot leave it stale."""

from __future__ import annotations

import re

from transcoder_lab.config import REPO_ROOT

README = REPO_ROOT / "README.md"
PACKAGE = REPO_ROOT / "src" / "transcoder_lab"
# a file or folder name as the Layout block writes it: `grid.py`, `sources/`, `lexicon/`
NAMED = re.compile(r"(?<![\w./-])([a-z_][a-z0-9_]*(?:\.py|/))")


def layout_block() -> str:
    """The fenced block under the README's `## Layout` heading."""
    text = README.read_text()
    section = text.split("\n## Layout\n", 1)[1]
    return section.split("```", 2)[1]


def package_entries() -> list[str]:
    """The package's own modules and subpackages, as the Layout block writes them."""
    entries = []
    for path in sorted(PACKAGE.iterdir()):
        if path.is_dir() and (path / "__init__.py").exists():
            entries.append(f"{path.name}/")
        elif path.suffix == ".py" and path.name != "__init__.py":
            entries.append(path.name)
    return entries


def unnamed_entries(block: str) -> list[str]:
    named = set(NAMED.findall(block))
    return [entry for entry in package_entries() if entry not in named]


def test_layout_names_every_module_and_subpackage() -> None:
    missing = unnamed_entries(layout_block())
    assert not missing, f"README's Layout does not name {missing}: add a line for each"


def test_every_name_in_the_layout_exists() -> None:
    existing = {path.name for path in REPO_ROOT.glob("*") if path.is_dir()} | {
        path.name for path in PACKAGE.rglob("*") if "__pycache__" not in path.parts
    }
    existing |= {path.name for path in (REPO_ROOT / "benchmarks").glob("*.py")}
    existing |= {path.name for path in (REPO_ROOT / "tests").iterdir()}
    existing |= {path.name for path in (REPO_ROOT / "conf").rglob("*")}
    stale = sorted({name for name in NAMED.findall(layout_block()) if name.rstrip("/") not in existing})
    assert not stale, f"README's Layout names {stale}, which the repository does not have"


def test_a_module_missing_from_the_layout_is_reported() -> None:
    block = layout_block()
    assert "localhost.py" in block  # the module this check removes
    assert unnamed_entries(block.replace("localhost.py", "base.py")) == ["localhost.py"]
