"""DVC stage `graph_screenshots` (one instance per case study of `profile.graph_screenshots`; none
outside the organism): each case study's beam-search graph and pruned full graph as circuit-tracer's
viewer draws them, `figures/<profile>/graph_screenshots/<name>/<slug>.png`
(`circuits.circuit_tracer.screenshots`: headless Chromium, the viewer's files from `make frontend`)."""

import json
from pathlib import Path

from tqdm import tqdm

from transcoder_lab.circuits.circuit_tracer.graph_files import INDEX
from transcoder_lab.circuits.circuit_tracer.screenshots import screenshots
from transcoder_lab.config import Config
from transcoder_lab.paths import GRAPH_FOLDER, figures_dir
from transcoder_lab.stage import stage_main


def run(cfg: Config) -> list[Path]:
    written = []
    for name in tqdm(cfg.profile.graph_screenshots, desc="graph screenshots", unit="case study"):
        graphs = figures_dir(cfg) / "case_studies" / name / GRAPH_FOLDER
        if not (graphs / INDEX).is_file():
            raise FileNotFoundError(f"no graphs of {name!r} in {graphs}: run `dvc repro case_study@{name}`")
        slugs = [entry["slug"] for entry in json.loads((graphs / INDEX).read_text())["graphs"]]
        written += screenshots(graphs, slugs, figures_dir(cfg) / "graph_screenshots" / name)
    for path in written:
        print(f"wrote {path}")
    return written


if __name__ == "__main__":
    stage_main(run)()
