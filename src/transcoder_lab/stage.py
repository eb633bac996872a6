"""Thin Hydra entry points for DVC stages.

Each script in experiments/ is `stage_main(run)`: Hydra reads `params.yaml` from the working
directory (DVC runs every stage at the repository root, beside dvc.yaml; the file is the
composition of conf/ that DVC writes, see DESIGN §5), `load_config` checks it against the
typed schema, and the plain function `run(cfg)` does the work, so tests and notebooks call `run` directly.
Stages run with `hydra.run.dir=.` and no `.hydra/` output folder, so every output lands where
dvc.yaml says; command-line overrides (`python experiments/x.py profile.training.max_steps=10`)
still work because they come after these defaults.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import hydra
from omegaconf import DictConfig

from transcoder_lab.config import REPO_ROOT, Config, load_config

STAGE_OVERRIDES = [
    "hydra.run.dir=.",
    "hydra.output_subdir=null",
    "hydra/job_logging=none",
    "hydra/hydra_logging=none",
]


def stage_main(run: Callable[[Config], object]) -> Callable[[], None]:
    @hydra.main(config_path=str(Path.cwd()), config_name="params", version_base="1.3")
    def main(raw: DictConfig) -> None:
        run(load_config(raw))

    def entry() -> None:
        sys.argv[1:1] = STAGE_OVERRIDES
        main()

    return entry


def load_stage(name: str) -> ModuleType:
    """The module of `experiments/<name>.py`, so tests and notebooks can call its `run(cfg)`."""
    path = REPO_ROOT / "experiments" / f"{name}.py"
    if not path.exists():
        raise FileNotFoundError(
            f"no stage script {path}; the stages are {sorted(p.stem for p in path.parent.glob('*.py'))}"
        )
    spec = importlib.util.spec_from_file_location(f"stage_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
