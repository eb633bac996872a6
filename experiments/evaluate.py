"""DVC stage `evaluate`: splice every dictionary into the model on one fixed held-out token set
(`profile_evaluation.evaluate_profile`, whose module docstring states the algorithm).

Writes `results/<profile>/pareto.csv` (one row per dictionary of the grid; with cross-layer
transcoders, also a "clt" row per CLT spliced into every layer and a "splice_all" row per L1 value:
every layer's transcoder spliced together, at total L0), `splice_all.json`
(every layer's transcoder spliced together: the paper's "all transcoders" experiment),
`dictionary_metrics.json` (everything measured per dictionary), `figures/<profile>/pareto.{png,svg}`
and `expected_vs_measured.md` (the profile's expected values beside what was measured).
`python experiments/evaluate.py [hydra overrides]`.
"""

from transcoder_lab.config import Config
from transcoder_lab.dictionaries.profile_evaluation import evaluate_profile
from transcoder_lab.stage import stage_main


def run(cfg: Config) -> dict:
    return evaluate_profile(cfg)


if __name__ == "__main__":
    stage_main(run)()
