"""DVC stage `case_study@<name>`: run one case study (conf/case_study/<name>.yaml) on the profile.

`python experiments/case_study.py <name> [hydra overrides]`; writes
`results/<profile>/case_studies/<name>.json` and `figures/<profile>/case_studies/<name>/*.png`.
"""

import sys

from transcoder_lab.case_studies import run_case_study
from transcoder_lab.config import Config
from transcoder_lab.stage import stage_main


def run(cfg: Config, name: str) -> dict:
    result = run_case_study(cfg, name)
    print(f"{name}: {result['title']}")
    for key, check in result["expected"].items():
        print(f"  {key}: measured {check['measured']} ({check['verdict']})")
    return result


if __name__ == "__main__":
    if len(sys.argv) < 2 or "=" in sys.argv[1]:
        sys.exit("usage: python experiments/case_study.py <name> [overrides]; names are in conf/case_study/")
    study_name = sys.argv.pop(1)
    stage_main(lambda cfg: run(cfg, study_name))()
