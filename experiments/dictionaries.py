"""DVC stage `dictionaries`: train the configured cells ("L<layer>_<kind>") at every L1 coefficient,
all on one shared batch stream, and write each dictionary's held-out metrics beside it
(`dictionaries.grid.train_grid`, whose module docstring states the algorithm).

dvc.yaml runs one instance per cell by narrowing the list on the command line
(`profile.dictionaries.cells=[L2_transcoder]`); all L1 values of that cell train side by side on
one pass over the activations. Run without the override, every cell trains on one shared pass,
e.g. the paper profile's 12 transcoders from one streamed GPT-2 pass:
`python experiments/dictionaries.py "profile.dictionaries.cells=[L0_transcoder,...,L11_transcoder]"`.
Each dictionary's weights do not depend on which other cells share its pass (training.job_seeds),
so `dvc commit dictionaries` can then record the results as the per-cell stage outputs.
Hydra multirun sweeps (`-m`, e.g. through the submitit launcher) run one job per override
combination; see docs/scale_out.md.
"""

from transcoder_lab.config import Config
from transcoder_lab.dictionaries.grid import train_grid
from transcoder_lab.dictionaries.training import JobResult
from transcoder_lab.stage import stage_main


def run(cfg: Config) -> list[JobResult]:
    return train_grid(cfg)


if __name__ == "__main__":
    stage_main(run)()
