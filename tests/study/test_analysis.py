"""The study's stages end to end on the tiny pipeline, then with human raters added."""

import json

import pytest

from transcoder_lab.paths import (
    ratings_dir,
    study_figures_dir,
    study_key_file,
    study_packet_dir,
    study_results_dir,
)
from transcoder_lab.stage import load_stage
from transcoder_lab.study.packet import KeyTamperedError, load_packet
from transcoder_lab.study.ratings import Rating, RatingsFile, load_ratings
from transcoder_lab.study.sample import live_features


def test_packet_and_analysis_stages_on_the_tiny_pipeline(tiny_study):
    cfg, _, summary = tiny_study
    n = cfg.profile.study.n_per_arm
    assert summary["n_cards"] == 2 * n and summary["n_per_arm"] == {"transcoder": n, "sae": n}
    assert (
        summary["arms"]["transcoder"]["kind"] == "transcoder"
        and summary["arms"]["sae"]["kind"] == "sae_mlp_in"
    )
    truth = summary["raters"]["ground_truth"]
    assert truth["complete"] and truth["n_rated"] == 2 * n
    for arm in ("transcoder", "sae"):
        counts = truth["counts"][arm]
        assert counts["yes"] + counts["maybe"] + counts["no"] == counts["n"] == n
        assert 0 <= counts["context_free"] <= n
    assert set(truth["fisher"]) == {"rows", "interpretable", "yes_or_maybe", "context_free"}
    assert 0 <= truth["fisher"]["interpretable"]["p_value"] <= 1
    assert set(truth["bootstrap"]["yes"]) == {"transcoder", "sae", "difference"}
    assert summary["ground_truth_rule"]["yes_f1"] == cfg.profile.study.ground_truth.yes_f1
    assert "agreement" not in summary  # one rater
    out = study_results_dir(cfg)
    assert json.loads((out / "summary.json").read_text()) == summary
    assert "| transcoder |" in (out / "table.md").read_text()
    assert (study_figures_dir(cfg) / "ratings.png").stat().st_size > 0
    assert load_ratings(out / "ground_truth_ratings.json").rater == "ground_truth"


def test_the_full_power_rating_covers_every_live_feature(tiny_study, monkeypatch):
    cfg, root, summary = tiny_study
    monkeypatch.chdir(root)  # the key's dictionary paths are relative to the repository root
    study = cfg.profile.study
    key = json.loads(study_key_file(cfg).read_text())
    full = summary["full_power"]
    stored = json.loads((study_results_dir(cfg) / "full_ratings.json").read_text())
    for arm in ("transcoder", "sae"):
        live = live_features(key["arms"][arm]["path"], study.min_log10_frequency).tolist()
        assert len(live) > 2 * study.n_per_arm  # more than the packet samples, or this tests little
        assert [f["feature"] for f in stored["arms"][arm]["features"]] == live
        assert full["n_rated"][arm] == full["counts"][arm]["n"] == len(live) == key["arms"][arm]["n_live"]
    # The sampled features' full-power ratings are their cards' ratings: same rule, same activations.
    assert full["cards_agree"] == {"n_cards": summary["n_cards"], "agree": summary["n_cards"], "disagree": []}
    primary = full["primary_test"]
    assert primary["name"] == study.primary_test.value
    assert primary["verdict"] == ("ok" if primary["difference"]["low"] > 0 else "BELOW")
    table = (study_results_dir(cfg) / "table.md").read_text()
    assert f"verdict {primary['verdict']}" in table and "context-free of yes/maybe" in table


def test_human_raters_are_added_and_compared_with_the_ground_truth(tiny_study, monkeypatch):
    cfg, root, _ = tiny_study
    monkeypatch.chdir(root)
    packet = load_packet(study_packet_dir(cfg))
    truth = load_ratings(study_results_dir(cfg) / "ground_truth_ratings.json")
    alice = RatingsFile("alice", packet.packet_id, dict(truth.ratings))
    alice.ratings[1] = Rating("yes" if truth.ratings[1].rating != "yes" else "no", True)
    del alice.ratings[2]  # an incomplete rater counts the cards it rated
    directory = ratings_dir(cfg)
    alice.save(directory / "alice.json")
    RatingsFile("bob", packet.packet_id, {c: Rating("yes") for c in range(1, packet.n_cards + 1)}).save(
        directory / "bob.json"
    )
    RatingsFile("carol", "f" * 64, {1: Rating("no")}).save(directory / "carol.json")
    try:
        summary = load_stage("study_analysis").run(cfg)
    finally:
        for name in ("alice", "bob", "carol"):
            (directory / f"{name}.json").unlink()
    assert set(summary["raters"]) == {"ground_truth", "alice", "bob"}
    assert (
        summary["raters"]["alice"]["n_rated"] == packet.n_cards - 1
        and not summary["raters"]["alice"]["complete"]
    )
    assert summary["raters"]["bob"]["counts"]["transcoder"]["yes"] == cfg.profile.study.n_per_arm
    assert [s["file"].endswith("carol.json") for s in summary["skipped_raters"]] == [True]
    pairs = {tuple(p["raters"]): p for p in summary["agreement"]["pairs"]}
    assert pairs[("alice", "ground_truth")]["n"] == packet.n_cards - 1
    assert pairs[("alice", "ground_truth")]["observed"] == pytest.approx(
        (packet.n_cards - 2) / (packet.n_cards - 1)
    )
    assert set(summary["ground_truth_vs_humans"]) == {"alice", "bob"}
    assert summary["agreement"]["krippendorff_alpha"]["raters"] == ["alice", "bob", "ground_truth"]


def test_the_analysis_stage_refuses_a_tampered_key(tiny_study, monkeypatch):
    cfg, root, _ = tiny_study
    monkeypatch.chdir(root)
    key_path = study_key_file(cfg)
    original = key_path.read_text()
    key = json.loads(original)
    key["cards"][0]["arm"] = "sae" if key["cards"][0]["arm"] == "transcoder" else "transcoder"
    key_path.write_text(json.dumps(key, indent=2) + "\n")
    try:
        with pytest.raises(KeyTamperedError, match="the key was changed"):
            load_stage("study_analysis").run(cfg)
    finally:
        key_path.write_text(original)
