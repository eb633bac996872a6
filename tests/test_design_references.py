"""Citations of docs/design.md name sections it has, and nothing points outside the repository.

Comments, docstrings, configs and notebooks cite the design document as `docs/design.md §N` or
`docs/design.md §N.M` (several sections as `docs/design.md §4.6, §6.3` or `... §4.6 and §6.3`). Each
cited number must be the number of a heading of docs/design.md (`## N. Title`, `### N.M Title`), so a
renumbered or deleted section cannot leave stale citations behind. Inside docs/design.md, bare
cross-references (`§5.2`) are checked the same way.

The repository must also stand alone: the design once lived in a file outside it, in a `shared`
folder beside the checkout, and was cited by that file's upper-case name and a section number
(`FORBIDDEN` spells out the three markers). A clone has no such folder, so no file may point there
any more, neither by the old citation form, nor by the file's name, nor by the relative path.
Files under `results/` are exempt: they are generated (executed notebooks) and are fixed by rerunning
their stage from `notebooks/*.py`, which are checked here. Files are those git tracks or would track
(tracked, plus untracked ones not ignored), so DVC outputs, caches and the venv are not read.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from transcoder_lab.config import REPO_ROOT

from helpers.repository import repository_files

DESIGN = REPO_ROOT / "docs" / "design.md"
# Where citations may appear (the folders' files and the named files).
CITING = ("src", "conf", "notebooks", "docs", "tests", "README.md", "pyproject.toml", "dvc.yaml")
SECTION = r"§\d+(?:\.\d+)?"
CITATION = re.compile(rf"docs/design\.md ({SECTION}(?:(?:, | and ){SECTION})*)")
HEADING = re.compile(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", re.MULTILINE)
# Spelled in pieces so that this file does not match itself.
FORBIDDEN = ("DESIGN" + " §", "DESIGN" + ".md", ".." + "/shared")
EXEMPT = ("results/",)


def read_text(path: Path) -> str | None:
    """The file's text, or None for a binary file."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def design_sections(text: str) -> set[str]:
    return set(HEADING.findall(text))


def cited_sections(text: str) -> list[str]:
    """Every section number cited as docs/design.md §N[.M] (with its continuations) in `text`."""
    return [number for group in CITATION.findall(text) for number in re.findall(r"§(\d+(?:\.\d+)?)", group)]


def is_citing(path: Path) -> bool:
    relative = path.relative_to(REPO_ROOT)
    return relative.parts[0] in CITING or str(relative) in CITING


def test_design_document_has_numbered_sections():
    sections = design_sections(DESIGN.read_text(encoding="utf-8"))
    assert {"1", "1.1", "5", "5.2", "8"} <= sections, sorted(sections)


def test_every_citation_names_a_section_of_the_design_document():
    sections = design_sections(DESIGN.read_text(encoding="utf-8"))
    bad, n_citations = [], 0
    for path in (REPO_ROOT / name for name in repository_files()):
        if not is_citing(path) or (text := read_text(path)) is None:
            continue
        for number in cited_sections(text):
            n_citations += 1
            if number not in sections:
                bad.append(f"{path.relative_to(REPO_ROOT)}: docs/design.md §{number}")
        if path == DESIGN:  # its own bare cross-references
            own = re.findall(r"§(\d+(?:\.\d+)?)", text)
            bad += [f"docs/design.md: §{number}" for number in own if number not in sections]
    assert n_citations > 0, "no citation of docs/design.md found: is the pattern still right?"
    listing = "\n".join(bad)
    assert not bad, f"citations of sections docs/design.md lacks (it has {sorted(sections)}):\n{listing}"


def test_no_file_points_outside_the_repository():
    bad = []
    for path in (REPO_ROOT / name for name in repository_files()):
        relative = str(path.relative_to(REPO_ROOT))
        if relative.startswith(EXEMPT) or (text := read_text(path)) is None:
            continue
        for line_number, line in enumerate(text.splitlines(), 1):
            bad += [f"{relative}:{line_number}: {marker!r}" for marker in FORBIDDEN if marker in line]
    assert not bad, "files that point at a design file outside the repository:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("see docs/design.md §4.1.", ["4.1"]),
        ("(docs/design.md §4.6, §6.3)", ["4.6", "6.3"]),
        ("docs/design.md §5 and §7.1", ["5", "7.1"]),
        ("paper §5.1; docs/design.md §6.3", ["6.3"]),
    ],
)
def test_citation_pattern(text, numbers):
    assert cited_sections(text) == numbers
