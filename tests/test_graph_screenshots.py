"""The graph_screenshots stage on the tiny profile: a case study's graphs as the viewer draws them."""

import dataclasses

from transcoder_lab import case_studies
from transcoder_lab.circuits.circuit_tracer.assets import DEFAULT_ASSETS, MANIFEST
from transcoder_lab.stage import load_stage

from helpers.local_server import CHROMIUM, unavailable


def test_stage_writes_one_png_per_graph_of_each_listed_case_study(tiny_pipeline):
    # the stage launches its own browser (the `chromium` fixture's would hold Playwright's loop)
    if not (DEFAULT_ASSETS / MANIFEST).is_file():
        unavailable(f"{DEFAULT_ASSETS} has no front end (run `make frontend`)")
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (run `make browser`)")
    cfg, root = tiny_pipeline
    case_studies.run_case_study(cfg, "citation")
    profile = dataclasses.replace(cfg.profile, graph_screenshots=["citation"])
    written = load_stage("graph_screenshots").run(dataclasses.replace(cfg, profile=profile))
    folder = root / "figures" / "tiny" / "graph_screenshots" / "citation"
    assert sorted(written) == sorted(folder.iterdir())
    assert sorted(p.name for p in written) == ["citation.png", "citation_full.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
