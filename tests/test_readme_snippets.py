"""The README's Python blocks run as written, on the tiny profile's outputs; its shell blocks name
make targets, modules and scripts that exist.

The blocks are written for the organism profile; the only edits are the ones that point them at
the tiny profile (TINY_EDITS: its name and its two layers), each of which must apply. The blocks
run in order in one namespace (later blocks use earlier names, as a reader would in one session),
from the directory the tiny pipeline wrote its outputs to.
"""

import importlib.util
import os
import re

from transcoder_lab.config import REPO_ROOT

PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
TINY_EDITS = {  # README text -> what the tiny profile needs instead
    "compose()": 'compose(["profile=tiny"])',
    "dictionaries/organism/": "dictionaries/tiny/",
    "for layer in range(4)": "for layer in range(2)",
}


def readme_python_blocks() -> list[str]:
    return PYTHON_BLOCK.findall((REPO_ROOT / "README.md").read_text())


def for_tiny(block: str) -> str:
    for written, tiny in TINY_EDITS.items():
        block = block.replace(written, tiny)
    return block


def test_every_tiny_edit_applies_to_some_block():
    blocks = "\n".join(readme_python_blocks())
    assert [written for written in TINY_EDITS if written not in blocks] == []


def test_the_readme_python_blocks_run_on_the_tiny_profile(tiny_pipeline):
    _, root = tiny_pipeline
    assert len(readme_python_blocks()) >= 3, "the README's Python blocks went missing"
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for number, block in enumerate(readme_python_blocks(), start=1):
            exec(compile(for_tiny(block), f"README.md python block {number}", "exec"), namespace)
    finally:
        os.chdir(cwd)
    # What the blocks promise: string prompts, an ablation check per kept feature of the beam
    # search's graph, and the full graph's two scores (shares, so in [0, 1]).
    assert namespace["model"].to_str_tokens("The siege")[0] == "<|endoftext|>"
    assert namespace["check"]["root"] == namespace["root"].label and namespace["check"]["nodes"]
    assert 0.0 <= namespace["replacement"] <= 1.0 and 0.0 <= namespace["completeness"] <= 1.0


BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)


def readme_commands() -> list[str]:
    """Each command of the README's bash blocks, continuation lines joined, comments dropped."""
    text = "\n".join(BASH_BLOCK.findall((REPO_ROOT / "README.md").read_text())).replace("\\\n", " ")
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [command for line in lines for command in line.split("&&") if command.strip()]


def unresolved(command: str) -> list[str]:
    """What a command names that this checkout lacks: a make target, a module, a script."""
    words = command.split()
    makefile = (REPO_ROOT / "Makefile").read_text()
    if words[0] == "make":
        return [t for t in words[1:] if "=" not in t and not re.search(rf"^{t}:", makefile, re.M)]
    if words[0] == "python" and words[1] == "-m":
        return [] if importlib.util.find_spec(words[2]) else [words[2]]
    if words[0] == "python":
        return [] if (REPO_ROOT / words[1]).is_file() else [words[1]]
    return []  # dvc and environment assignments: the DVC tests run the stage graph


def test_every_readme_command_names_what_exists():
    commands = readme_commands()
    assert any(c.startswith("make repro") for c in commands) and any(
        c.startswith("make test") for c in commands
    )
    missing = {command: unresolved(command) for command in commands if unresolved(command)}
    assert missing == {}


def test_a_renamed_module_in_a_command_is_reported():
    assert unresolved("python -m transcoder_lab.export_circuit_tracer OUT") == [
        "transcoder_lab.export_circuit_tracer"
    ]
    assert unresolved("make no-such-target") == ["no-such-target"]
