"""The reference run: tolerances that hold their 95% coverage, verdicts that turn to "differs", and
the committed reference frozen from the committed results."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from transcoder_lab.config import REPO_ROOT
from transcoder_lab.reference import (
    AGREES,
    DIFFERS,
    auroc_se,
    compare,
    freeze,
    headline_values,
    load_reference,
    median_se,
    reference_path,
    seed_tolerance,
    two_runs,
)
from transcoder_lab.report import build_report

ORGANISM = REPO_ROOT / "results" / "organism"
SPLICE_ALL_L1 = 1e-3  # conf/profile/organism.yaml evaluation.splice_all_l1
N_TRIALS = 4000
# 95% coverage seen over N_TRIALS simulated pairs of runs: the binomial sd is 0.0034, so 0.94-0.96
# is about 3 sd either side; an approximation (Hanley-McNeil, the median's asymptotic SE) gets 0.03.
EXACT, APPROXIMATE = 0.012, 0.03


def coverage(differences: np.ndarray, tolerance: float) -> float:
    return float(np.mean(np.abs(differences) <= tolerance))


def test_seed_tolerance_covers_95_percent_of_replicate_differences():
    rng = np.random.default_rng(0)
    n, sd = 3, 0.002
    first = rng.normal(0, sd, size=(N_TRIALS, n))
    second = rng.normal(0, sd, size=(N_TRIALS, n))
    # each run estimates its own seed sd: the tolerance a reference frozen from `first` sets
    tolerances = np.array([seed_tolerance(float(np.std(row, ddof=1)), n) for row in first])
    inside = np.abs(first.mean(1) - second.mean(1)) <= tolerances
    # (mean1 - mean2) / (s1 sqrt(2/n)) is Student's t on n-1 df (s1 is independent of both means)
    assert abs(inside.mean() - 0.95) < EXACT, inside.mean()


def test_unit_tolerances_cover_95_percent_of_replicate_differences():
    rng = np.random.default_rng(1)
    n = 200
    means = rng.normal(0.3, 0.2, size=(2, N_TRIALS, n)).mean(-1)
    assert abs(coverage(means[0] - means[1], two_runs(0.2 / np.sqrt(n))) - 0.95) < EXACT
    # medians of 21 prompts: the IQR-based SE of the median
    samples = rng.normal(0.0, 1.0, size=(2, N_TRIALS, 21))
    q25, q75 = stats.norm.ppf([0.25, 0.75])
    medians = np.median(samples, -1)
    assert abs(coverage(medians[0] - medians[1], two_runs(median_se(q25, q75, 21))) - 0.95) < APPROXIMATE


def test_hanley_mcneil_se_matches_the_spread_of_simulated_aurocs():
    rng = np.random.default_rng(2)
    n1, n2, shift = 150, 120, 1.2  # binormal scores: AUROC = Phi(shift / sqrt(2)) ~ 0.80
    aurocs = []
    for _ in range(1000):
        target, contrast = rng.normal(shift, 1, n1), rng.normal(0, 1, n2)
        aurocs.append(stats.mannwhitneyu(target, contrast).statistic / (n1 * n2))
    expected = auroc_se(float(stats.norm.cdf(shift / np.sqrt(2))), n1, n2)
    assert np.std(aurocs) == pytest.approx(expected, rel=0.1)


@pytest.fixture
def run_copy(tmp_path) -> Path:
    """The committed organism results, as a second run to compare with the reference."""
    results = tmp_path / "results" / "organism"
    shutil.copytree(ORGANISM, results, ignore=shutil.ignore_patterns("notebooks", "*.safetensors"))
    return results


def _frozen(tmp_path: Path, results: Path) -> dict:
    return load_reference(freeze(tmp_path, "organism", results, SPLICE_ALL_L1))


def test_every_headline_number_has_a_tolerance_and_the_same_run_agrees(tmp_path, run_copy):
    reference = _frozen(tmp_path, run_copy)
    keys = set(reference["values"])
    for prefix in ("behaviour.", "pareto_gap.", "splice_all.", "study.", "case_study.", "families."):
        assert any(key.startswith(prefix) for key in keys), prefix
    for study in ("caught", "citation", "local_context", "walkthrough"):
        measures = ("root_label", "auroc_vs_contrast", "median_sufficiency", "median_necessity")
        assert {f"case_study.{study}.{measure}" for measure in measures} <= keys
    numbers = [entry for entry in reference["values"].values() if entry["tolerance"] is not None]
    assert all(entry["tolerance"] > 0 for entry in numbers)
    assert {row["verdict"] for row in compare(reference, run_copy, SPLICE_ALL_L1)} == {AGREES}


def _edit(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_numbers_outside_their_tolerance_and_other_root_labels_differ(tmp_path, run_copy):
    reference = _frozen(tmp_path, run_copy)
    tolerance = reference["values"]["behaviour.citation.value"]["tolerance"]

    def rows() -> dict[str, str]:
        return {row["quantity"]: row["verdict"] for row in compare(reference, run_copy, SPLICE_ALL_L1)}

    def lower_citation(by: float):
        return lambda behaviour: behaviour["citation"].update(value=behaviour["citation"]["value"] - by)

    _edit(run_copy / "behaviour.json", lower_citation(tolerance / 2))
    assert rows()["behaviour.citation.value"] == AGREES
    _edit(run_copy / "behaviour.json", lower_citation(tolerance))  # 1.5 tolerances off in all
    assert rows()["behaviour.citation.value"] == DIFFERS

    def other_index_same_label(study):  # a root found at another index with the same role agrees
        study["root"]["feature"] += 1
        study["selection"]["feature"] += 1

    _edit(run_copy / "case_studies" / "caught.json", other_index_same_label)
    assert rows()["case_study.caught.root_label"] == AGREES
    caught = run_copy / "case_studies" / "caught.json"
    _edit(caught, lambda study: study["dashboard"].update(top_labels={"prose/other": 20}))
    assert rows()["case_study.caught.root_label"] == DIFFERS

    def flip_hops(families):  # the hop claim coming out the other way is a different result
        families["verdicts"]["hops"]["verdict"] = "BELOW"

    _edit(run_copy / "families.json", flip_hops)
    assert rows()["families.hops_verdict"] == DIFFERS


def test_report_sets_each_number_beside_the_reference_with_a_verdict(tmp_path, run_copy):
    reference = _frozen(tmp_path, run_copy)
    _edit(run_copy / "splice_all.json", lambda s: s.update(loss_recovered=s["loss_recovered"] - 0.05))
    rows = compare(reference, run_copy, SPLICE_ALL_L1)
    text = build_report("organism", {}, run_copy, "../../figures/organism", {}, reference, rows)
    section = text.split("## Agreement with the reference run")[1].split("\n## ")[0]
    loss_row = next(line for line in section.splitlines() if "`splice_all.loss_recovered`" in line)
    assert "| differs |" in loss_row
    assert f"{len(reference['values']) - 1} agree, 1 differ" in section


def test_committed_reference_is_frozen_from_the_committed_results():
    """REPORT.md's verdicts compare with these numbers: after a new committed run, refreeze
    (`python -m transcoder_lab.reference freeze organism`) so the reference is that run."""
    reference = yaml.safe_load(reference_path(REPO_ROOT, "organism").read_text())
    current = headline_values(ORGANISM, SPLICE_ALL_L1)
    assert set(reference["values"]) == set(current)
    for key, entry in reference["values"].items():
        assert entry["value"] == current[key].value, key
        assert entry["tolerance"] == current[key].tolerance, key
    environment = json.loads((ORGANISM / "environment.json").read_text())
    assert reference["commit"] == environment["commit"]
