"""Thin Hydra entry points for DVC stages.

Each script in experiments/ is `stage_main(run)`: Hydra reads `params.yaml` from the working
directory (DVC runs every stage at the repository root, beside dvc.yaml; the file is the
composition of conf/ that DVC writes, see docs/design.md §2.2), `load_config` checks it against the
typed schema, torch's CPU thread count is pinned to `profile.cpu_threads` (CPU results depend on it),
and the plain function `run(cfg)` does the work, so tests and notebooks call `run` directly.
Stages run with `hydra.run.dir=.` and no `.hydra/` output folder, so every output lands where
dvc.yaml says; command-line overrides (`python experiments/x.py profile.training.max_steps=10`)
still work because they come after these defaults.

Multirun sweeps work too (`python experiments/dictionaries.py -m hydra/launcher=local
"profile.dictionaries.l1_coefficients=[1e-3],[1e-2]"`): the defaults are inserted before the
first override, after Hydra's own flags such as `-m`, and the repository's `conf/` (beside the
script's `experiments/`) is on Hydra's search path, so the launcher configs in
`conf/hydra/launcher/` (submitit: `local`, `slurm`) are found. Jobs run in the working directory
(Hydra 1.3 does not change into the job's folder), so outputs land where dvc.yaml says; only the
launcher's logs go to `hydra.sweep.dir` (default `multirun/<date>/<time>/`, git-ignored).
See docs/scale_out.md.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import hydra
import torch
from omegaconf import DictConfig

from transcoder_lab.config import REPO_ROOT, Config, load_config

STAGE_OVERRIDES = [
    "hydra.run.dir=.",
    "hydra.output_subdir=null",
    "hydra/job_logging=none",
    "hydra/hydra_logging=none",
]


def with_stage_overrides(args: list[str], conf_dir: Path | None = None) -> list[str]:
    """`args` with STAGE_OVERRIDES (and conf_dir on Hydra's search path) placed before the first
    override, so flags such as `-m` or `--cfg job` stay in front and the user's overrides win."""
    defaults = list(STAGE_OVERRIDES)
    if conf_dir is not None and conf_dir.is_dir():
        defaults.append(f"hydra.searchpath=[file://{conf_dir.resolve()}]")
    first = next((i for i, arg in enumerate(args) if "=" in arg and not arg.startswith("-")), 0)
    return [*args[:first], *defaults, *args[first:]]


# Elementwise functions that torch's CPU build can hand to MKL's vector math library (VML), in
# chunks of 2,048 elements spread over the intra-op threads.
VECTOR_MATH_FUNCTIONS = (
    "sqrt", "rsqrt", "exp", "expm1", "log", "log1p", "log2", "log10", "sin", "cos", "tan", "tanh",
    "asin", "acos", "atan", "sinh", "cosh", "erf", "erfc", "erfinv", "lgamma", "trunc", "sigmoid",
)  # fmt: skip


def initialise_vector_math() -> None:
    """Call every function of VECTOR_MATH_FUNCTIONS once, on one element, on this thread.

    Why: the first time such a function runs in a process, the chunks that the intra-op threads
    compute at the same moment did not always round alike. Measured on the tiny profile's
    dictionaries stage: about one run in 25 ended with different weights, always through the first
    Adam step of the first dictionary, where `sqrt` of its 4,096-element second moment took two
    chunks and the main thread's chunk (elements 0-2,047) differed by a few ulps from every other
    run. Once each function has run on one thread, later multi-threaded calls agree from run to run
    (tests/test_stage.py)."""
    for dtype in (torch.float32, torch.float64):
        one = torch.full((1,), 0.5, dtype=dtype)
        for name in VECTOR_MATH_FUNCTIONS:
            getattr(torch, name)(one)


def pin_cpu_threads(n_threads: int) -> None:
    """Run torch on `n_threads` CPU threads (0: leave torch's default), with its vector math
    initialised first (`initialise_vector_math`). CPU results depend on the count, so stages pin
    the profile's `cpu_threads` and give the same numbers on any machine."""
    if n_threads < 0:
        raise ValueError(f"profile.cpu_threads must be >= 0 (0: torch's default), got {n_threads}")
    initialise_vector_math()
    if n_threads:
        torch.set_num_threads(n_threads)


def stage_main(run: Callable[[Config], object]) -> Callable[[], None]:
    @hydra.main(config_path=str(Path.cwd()), config_name="params", version_base="1.3")
    def main(raw: DictConfig) -> None:
        cfg = load_config(raw)
        pin_cpu_threads(cfg.profile.cpu_threads)
        run(cfg)

    def entry() -> None:
        conf_dir = Path(inspect.getfile(run)).resolve().parents[1] / "conf"  # experiments/../conf
        sys.argv[1:] = with_stage_overrides(sys.argv[1:], conf_dir)
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
