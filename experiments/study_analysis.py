"""DVC stage `study_analysis`: the ground-truth rater (organism profiles), unblinding, statistics.

Reads the packet, the key (its SHA-256 must match the packet's record), the scan data and every
ratings file in `ratings/<profile>/`; on organism profiles also the model and the arms'
dictionaries, for the full-power rating of every live feature. Writes
`results/<profile>/study/summary.json` (metrics), `table.md`, `ground_truth_ratings.json` and
`full_ratings.json` (organism profiles; for pretrained ones a note that there is no ground-truth
rater) and `figures/<profile>/study/ratings.{png,svg}`. See transcoder_lab.study.analysis and
transcoder_lab.study.full_power.
"""

import time

from transcoder_lab import io
from transcoder_lab.config import Config
from transcoder_lab.paths import (
    ratings_dir,
    study_figures_dir,
    study_key_file,
    study_packet_dir,
    study_results_dir,
    study_scan_file,
)
from transcoder_lab.plotting import save_figure
from transcoder_lab.sources.models import load_model
from transcoder_lab.stage import stage_main
from transcoder_lab.study.analysis import analyse, load_raters, study_figure, summary_table
from transcoder_lab.study.full_power import (
    cards_agree,
    full_power_summary,
    full_ratings_json,
    rate_every_live_feature,
)
from transcoder_lab.study.packet import load_packet, load_scan, unblind
from transcoder_lab.study.rater import rate_all

GROUND_TRUTH_FILE = "ground_truth_ratings.json"
FULL_RATINGS_FILE = "full_ratings.json"


def run(cfg: Config) -> dict:
    start = time.perf_counter()
    study = cfg.profile.study
    packet = load_packet(study_packet_dir(cfg))
    key = unblind(packet, study_key_file(cfg))
    raters, skipped = load_raters(ratings_dir(cfg), packet)
    out = study_results_dir(cfg)
    full_power = None
    if cfg.profile.corpus is not None:
        scan = load_scan(study_scan_file(cfg))
        ground_truth = rate_all(scan, study.ground_truth, packet.packet_id)
        ground_truth.save(out / GROUND_TRUTH_FILE)
        raters = [ground_truth, *raters]
        arms = rate_every_live_feature(load_model(cfg.profile, cfg.paths.models), scan, key, study)
        io.write_json(out / FULL_RATINGS_FILE, full_ratings_json(arms, study.ground_truth, packet.packet_id))
        full_power = full_power_summary(arms, study)
        full_power["cards_agree"] = cards_agree(ground_truth, key, arms)
    else:  # the files are DVC outputs of every profile: say why a pretrained profile has no such rater
        reason = (
            f"profile '{cfg.profile.name}' has no ground-truth labels (pretrained model): human raters only"
        )
        io.write_json(out / GROUND_TRUTH_FILE, {"rater": None, "ratings": None, "reason": reason})
        io.write_json(out / FULL_RATINGS_FILE, {"rater": None, "arms": None, "reason": reason})
    summary = analyse(packet, key, raters, study.n_bootstrap, study.seed, skipped, full_power)
    io.write_json(out / "summary.json", summary)
    table = summary_table(summary)
    io.write_text(out / "table.md", table)
    save_figure(study_figure(summary), study_figures_dir(cfg) / "ratings")
    print(table)
    print(f"study analysis: {len(raters)} raters in {time.perf_counter() - start:.1f} s")
    return summary


if __name__ == "__main__":
    stage_main(run)()
