"""Case studies on profiles they have no settings for: an honest result instead of a failure.

Case studies are analyses of GPT-2 small and of the organism; a profile without an entry in the
study's config (e.g. pythia_410m: `common.settings_for` finds none) is not analysed. The DVC stage
`case_study@<name>` runs `run_if_configured`, which

1. asks the same lookup `run_case_study` uses why the study has no settings for the profile
   (`not_configured_reason`; None when it has, or when the study is not configured at all, which
   `run_case_study` then reports by naming the configured studies);
2. with a reason, writes the result of a study that does not apply (`write_not_configured`): the
   JSON at `results/<profile>/case_studies/<name>.json` says "not configured" and why, with no
   numbers, and the figures folder DVC expects holds only a note saying the same
   (`NOT_CONFIGURED_NOTE`), so the rest of the pipeline runs;
3. without one, runs the study (`run_case_study`, steps 1-5 of the package docstring);
4. prints one line naming the outcome, then for a study that ran one line per expectation.
"""

from __future__ import annotations

import json
from typing import Any

from transcoder_lab import io
from transcoder_lab.case_studies import run_case_study
from transcoder_lab.case_studies.common import output_paths, settings_for
from transcoder_lab.config import Config

NOT_CONFIGURED_NOTE = "not_configured.txt"  # the one file in the figures folder of a skipped study


def not_configured_reason(cfg: Config, name: str) -> str | None:
    """Step 1: why study `name` has no settings for this profile, from the same lookup
    `run_case_study` uses:
    1. a study not in `cfg.case_study` gives None (run_case_study names the configured studies);
    2. otherwise `common.settings_for`'s ValueError message is the reason, and no error is None."""
    if name not in cfg.case_study:
        return None  # run_case_study names the configured studies
    try:
        settings_for(cfg, cfg.case_study[name], name)
    except ValueError as error:
        return str(error)
    return None


def write_not_configured(cfg: Config, name: str, reason: str) -> dict[str, Any]:
    """Step 2: the result of a study that does not apply to the profile: no numbers, the reason, no
    figures.
    1. the result names the study, its question, the profile, `status: "not configured"`, the
       reason and the profiles the study is configured for; `expected` and `figures` are empty;
    2. it is written as indented JSON to the study's results path (`common.output_paths`);
    3. the study's figures folder gets `NOT_CONFIGURED_NOTE`, one line with the reason."""
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


def run_if_configured(cfg: Config, name: str) -> dict[str, Any]:
    """Steps 1-4 of the module docstring: the result of `write_not_configured` when the study has
    no settings for the profile, else that of `run_case_study` (KeyError for an unknown study)."""
    reason = not_configured_reason(cfg, name)
    if reason is not None:
        print(f"{name}: not configured for profile '{cfg.profile.name}'; wrote a result saying so ({reason})")
        return write_not_configured(cfg, name, reason)
    result = run_case_study(cfg, name)
    print(f"{name}: {result['title']}")
    for key, check in result["expected"].items():
        print(f"  {key}: measured {check['measured']} ({check['verdict']})")
    return result
