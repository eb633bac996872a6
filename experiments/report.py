"""DVC stage `report`: `results/<profile>/REPORT.md`, every headline number (behaviour, Pareto,
splice-all, case studies, dictionary families, the blind study when present) beside its expected
value, with links to the figures, and beside the reference run's (`references/<profile>.yaml`:
agrees / differs);
`environment.json` beside it records what the run ran on."""

import os
from pathlib import Path

from transcoder_lab import io
from transcoder_lab.config import REPO_ROOT, Config
from transcoder_lab.environment import describe_environment
from transcoder_lab.paths import figures_dir, results_dir
from transcoder_lab.reference import compare, load_reference, reference_path
from transcoder_lab.report import build_report
from transcoder_lab.stage import stage_main


def run(cfg: Config) -> str:
    out = results_dir(cfg) / "REPORT.md"
    reference = load_reference(reference_path(Path.cwd(), cfg.profile.name))
    splice_all_l1 = cfg.profile.evaluation.splice_all_l1
    io.write_json(results_dir(cfg) / "environment.json", describe_environment(REPO_ROOT))
    text = build_report(
        cfg.profile.name,
        cfg.profile.evaluation.expected,
        results_dir(cfg),
        os.path.relpath(figures_dir(cfg), out.parent),
        {name: study.analysis for name, study in cfg.case_study.items()},
        reference,
        compare(reference, results_dir(cfg), splice_all_l1) if reference else None,
    )
    io.write_text(out, text)
    print(f"wrote {out}")
    return text


if __name__ == "__main__":
    stage_main(run)()
