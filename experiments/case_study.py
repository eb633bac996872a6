"""DVC stage `case_study@<name>`: run one case study (conf/case_study/<name>.yaml) on the profile.

`python experiments/case_study.py <name> [hydra overrides]`; writes
`results/<profile>/case_studies/<name>.json` and `figures/<profile>/case_studies/<name>/*.png`.

Case studies are analyses of GPT-2 small and of the organism; a profile without settings in the
study's config (e.g. pythia_410m: `transcoder_lab.case_studies.common.settings_for` finds no entry)
is not analysed. The stage then writes an honest result instead of failing, so the rest of the
pipeline runs: the JSON says the study is not configured for the profile and why, and the figures
folder DVC expects holds only a note saying the same
(`transcoder_lab.case_studies.not_configured.run_if_configured`, whose module docstring states how).
"""

import sys
from typing import Any

from transcoder_lab.case_studies.not_configured import run_if_configured
from transcoder_lab.config import Config
from transcoder_lab.stage import stage_main


def run(cfg: Config, name: str) -> dict[str, Any]:
    return run_if_configured(cfg, name)


if __name__ == "__main__":
    if len(sys.argv) < 2 or "=" in sys.argv[1]:
        sys.exit("usage: python experiments/case_study.py <name> [overrides]; names are in conf/case_study/")
    study_name = sys.argv.pop(1)
    stage_main(lambda cfg: run(cfg, study_name))()
