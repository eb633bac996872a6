"""DVC stage `families`: per-layer, cross-layer, skip and TopK transcoders on the organism's planted
circuits at matched total L0: graph size, replacement and completeness scores, faithfulness by
intervention, the ground-truth check and the hop structure of their attribution graphs, with
intervals over prompts and the verdicts fixed in advance
(`transcoder_lab.case_studies.families.compare_families`, whose module docstring states the
algorithm). Writes `results/<profile>/families.json` and `figures/<profile>/families/`; a profile
without a `families:` block writes a result saying so.

`python experiments/families.py [hydra overrides]`.
"""

from typing import Any

from transcoder_lab.case_studies.families import compare_families
from transcoder_lab.config import Config
from transcoder_lab.stage import stage_main


def run(cfg: Config) -> dict[str, Any]:
    return compare_families(cfg)


if __name__ == "__main__":
    stage_main(run)()
