"""The case-study stage's dispatch: an honest "not configured" result, or the study itself."""

import json

import pytest

from transcoder_lab.case_studies import not_configured
from transcoder_lab.case_studies.common import output_paths
from transcoder_lab.case_studies.not_configured import (
    NOT_CONFIGURED_NOTE,
    not_configured_reason,
    run_if_configured,
)
from transcoder_lab.config import load_profile


def test_a_study_without_settings_for_the_profile_writes_a_result_saying_so(tmp_path, capsys):
    cfg = load_profile("pythia_410m", tmp_path)  # the case studies have gpt2_small and organism entries
    reason = not_configured_reason(cfg, "citation")
    assert reason is not None and "no settings for profile 'pythia_410m'" in reason
    result = run_if_configured(cfg, "citation")
    assert result["status"] == "not configured" and result["reason"] == reason
    assert result["configured_profiles"] == ["gpt2_small", "organism"]
    assert result["expected"] == {} and result["figures"] == []
    json_path, figure_dir = output_paths(cfg, "citation")
    assert json.loads(json_path.read_text()) == result
    assert [path.name for path in figure_dir.iterdir()] == [NOT_CONFIGURED_NOTE]
    assert (figure_dir / NOT_CONFIGURED_NOTE).read_text() == f"case study 'citation' was not run: {reason}\n"
    assert capsys.readouterr().out == (
        f"citation: not configured for profile 'pythia_410m'; wrote a result saying so ({reason})\n"
    )


def test_a_configured_study_runs_and_prints_each_expectation(tmp_path, monkeypatch, capsys):
    cfg = load_profile("tiny", tmp_path)  # an organism profile: the `organism` entries apply
    assert not_configured_reason(cfg, "citation") is None
    ran = {"title": "Citations", "expected": {"selection.auroc": {"measured": 0.97, "verdict": "pass"}}}
    monkeypatch.setattr(not_configured, "run_case_study", lambda cfg, name: ran)
    assert run_if_configured(cfg, "citation") is ran
    assert capsys.readouterr().out == "citation: Citations\n  selection.auroc: measured 0.97 (pass)\n"
    assert not (tmp_path / "results").exists()  # writing is run_case_study's


def test_an_unknown_study_is_left_to_run_case_study_which_names_the_configured_ones(tmp_path):
    cfg = load_profile("pythia_410m", tmp_path)
    assert not_configured_reason(cfg, "no_such_study") is None
    with pytest.raises(KeyError, match="no case study 'no_such_study'; configured: .*citation"):
        run_if_configured(cfg, "no_such_study")
