"""DVC stage `case_study@<name>`: run one case study (conf/case_study/<name>.yaml) on the profile.

`python experiments/case_study.py <name> [hydra overrides]`; writes
`results/<profile>/case_studies/<name>.json` and `figures/<profile>/case_studies/<name>/*.png`.

Case studies are analyses of GPT-2 small and of the organism; a profile without settings in the
study's config (e.g. pythia_410m: `transcoder_lab.case_studies.common.settings_for` finds no entry)
is not analysed. The stage then writes an honest result instead of failing, so the rest of the
pipeline runs: the JSON says the study is not configured for the profile and why, and the figures
folder DVC expects holds only a note saying the same.
"""

import json
import sys
from typing import Any

from transcoder_lab import io
from transcoder_lab.case_studies import run_case_study
from transcoder_lab.case_studies.common import output_paths, settings_for
from transcoder_lab.config import Config
from transcoder_lab.stage import stage_main

NOT_CONFIGURED_NOTE = "not_configured.txt"  # the one file in the figures folder of a skipped study


def not_configured_reason(cfg: Config, name: str) -> str | None:
    """Why study `name` has no settings for this profile (None when it has), from the same lookup
    `run_case_study` uses."""
    if name not in cfg.case_study:
        return None  # run_case_study names the configured studies
    try:
        settings_for(cfg, cfg.case_study[name], name)
    except ValueError as error:
        return str(error)
    return None


def write_not_configured(cfg: Config, name: str, reason: str) -> dict[str, Any]:
    """The result of a study that does not apply to the profile: no numbers, the reason, no figures."""
    study = cfg.case_study[name]
    result: dict[str, Any] = {
        "name": name,
        "title": f"{study.title} (not configured for profile {cfg.profile.name})",
        "question": study.question,
        "profile": cfg.profile.name,
        "status": "not configured",
        "reason": reason,
        "configured_profiles": sorted(study.profiles),
        "expected": {},
        "figures": [],
    }
    json_path, figure_dir = output_paths(cfg, name)
    io.write_text(json_path, json.dumps(result, indent=2) + "\n")
    io.write_text(figure_dir / NOT_CONFIGURED_NOTE, f"case study '{name}' was not run: {reason}\n")
    return result


def run(cfg: Config, name: str) -> dict[str, Any]:
    reason = not_configured_reason(cfg, name)
    if reason is not None:
        print(f"{name}: not configured for profile '{cfg.profile.name}'; wrote a result saying so ({reason})")
        return write_not_configured(cfg, name, reason)
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
