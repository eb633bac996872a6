"""REPORT.md's case-study sections: every configured expectation of the paper profile appears as a
row beside its measurement, built from a small fake results folder (no model is run)."""

import json

import pytest

from transcoder_lab.config import Expectation, load_profile
from transcoder_lab.report import REFERENCE_VERDICT, build_report, check_expectations, verdict


def _set(result: dict, dotted_key: str, value) -> None:
    *parents, last = dotted_key.split(".")
    for part in parents:
        result = result.setdefault(part, {})
    result[last] = value


def _shown(value) -> str:
    """How the report's tables print a measured number."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _target(expectation: Expectation) -> str:
    return {
        "at_least": f">= {expectation.value:g}",
        "at_most": f"<= {expectation.value:g}",
        "reference": f"{expectation.value:g} (reference)",
    }.get(expectation.comparison, f"{expectation.value:g} ± {expectation.tolerance:g}")


@pytest.fixture(scope="module")
def gpt2_report(tmp_path_factory):
    """(report text, {study: {key: (expectation, measured)}}) for fake gpt2_small case-study results:
    every expected key holds a distinct measured number, except one greater-than curve count that
    never reached its mark (None)."""
    root = tmp_path_factory.mktemp("report")
    cfg = load_profile("gpt2_small", root)
    results = root / "results" / "gpt2_small"
    (results / "case_studies").mkdir(parents=True)
    rows: dict[str, dict] = {}
    for index, (name, study) in enumerate(sorted(cfg.case_study.items())):
        settings = study.profiles.get("gpt2_small")
        if settings is None:
            continue
        result = {"name": name, "title": study.title, "question": study.question, "profile": "gpt2_small"}
        measured = {}
        for offset, key in enumerate(settings.expected):
            measured[key] = round(1.0 + index + 0.125 * offset, 4)  # distinct, exactly printable
        if name == "greater_than":
            measured["curves.paper_marks.neurons_to_mark"] = None  # the neuron curve never got there
            _set(result, "layer", 10)
            _set(result, "curves.n", list(range(101)))
            result["expected_features"] = [
                {"feature": feature, "paper_rank": rank, "rank": 2 * rank, "in_top10": 2 * rank <= 10}
                for rank, feature in enumerate(settings.expected_features, start=1)
            ]
            _set(
                result,
                "graph.expected_heads",
                [{"head": "attn9.1", "found": True, "rank": 3, "n_heads_on_paths": 7}],
            )
            _set(result, "probability_difference.transcoder_bias_only", 0.58)
            _set(result, "probability_difference.mlp_bias_only", 0.66)
        for key, value in measured.items():
            _set(result, key, value)
        result["expected"] = check_expectations(result, settings.expected)
        (results / "case_studies" / f"{name}.json").write_text(json.dumps(result))
        rows[name] = {key: (settings.expected[key], measured[key]) for key in settings.expected}
    analyses = {name: study.analysis for name, study in cfg.case_study.items()}
    return build_report("gpt2_small", {}, results, "../../figures/gpt2_small", analyses), rows


def test_every_paper_expectation_of_the_case_studies_is_a_report_row(gpt2_report):
    text, rows = gpt2_report
    # the paper's case-study numbers that the code measures (its figures and text, quoted in conf/case_study/)
    wanted = {
        "caught": {19.97, 0.81},
        "walkthrough": {7.52, 5.81, 2.36},
        "greater_than": {0.8829, 0.7978, 0.8453, 0.63, 12.5, 45},
        "citation": {12.48, 12.13, 0.972},
    }
    for name, values in wanted.items():
        assert {expectation.value for expectation, _ in rows[name].values()} >= values, name
    for name, checks in rows.items():
        for key, (expectation, measured) in checks.items():
            if measured is None:
                continue
            row = (
                f"| `{key}` | {_target(expectation)} | {_shown(measured)} | "
                f"{verdict(expectation, measured)} | {expectation.source} |"
            )
            assert row in text, f"{name}: no row {row!r}"


def test_citation_numbers_are_references_not_verdicts(gpt2_report):
    text, rows = gpt2_report
    assert {expectation.comparison for expectation, _ in rows["citation"].values()} == {"reference"}
    assert text.count(REFERENCE_VERDICT) == len(rows["citation"])
    assert "| `intervention.after_over_before` | 0.972 (reference) |" in text


def test_greater_than_report_names_published_components_and_what_n0_is(gpt2_report):
    text, rows = gpt2_report
    removed = rows["greater_than"]["probability_difference.mlp_removed"][1]
    # the fixture wrote each paper feature at twice its paper rank
    assert "| feature tc10[1954] | rank 1 by activation variance | 2 | yes |" in text
    assert "| feature tc10[6969] | rank 10 by activation variance | 20 | no |" in text
    assert "| head attn9.1 | on the paths of the logit graph | 3 of 7 heads on the paths | yes |" in text
    assert f"| ... MLP removed (whole output zeroed, bias included) | {_shown(removed)} |" in text
    assert "| ... curve n = 0, features: transcoder bias b_dec_out only | 0.58 |" in text
    assert "| ... curve n = 0, neurons: MLP output bias b_out only | 0.66 |" in text
    # a curve that never reaches the paper's mark says so instead of "not measured"
    assert "| `curves.paper_marks.neurons_to_mark` | 45 ± 5 | — | not reached (n <= 100) |" in text


def test_reference_expectations_carry_no_verdict():
    reference = Expectation(value=12.48, comparison="reference", source="paper")
    assert verdict(reference, 3.0) == verdict(reference, 12.48) == REFERENCE_VERDICT
    assert verdict(reference, None) == "not measured"
    assert verdict(Expectation(value=0.63, tolerance=0.03), 0.70) == "OUTSIDE"
