"""Reports: measured numbers beside the profile's expected values, as Markdown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transcoder_lab.config import Expectation


def lookup(results: dict[str, Any], dotted_key: str) -> Any:
    """`lookup(r, "splice_all.kl")` is r["splice_all"]["kl"]; None when any part is missing."""
    value: Any = results
    for part in dotted_key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def verdict(expectation: Expectation, measured: float | None) -> str:
    if measured is None:
        return "not measured"
    if expectation.comparison == "at_least":
        return "ok" if measured >= expectation.value else "BELOW"
    if expectation.comparison == "at_most":
        return "ok" if measured <= expectation.value else "ABOVE"
    return "ok" if abs(measured - expectation.value) <= expectation.tolerance else "OUTSIDE"


def expected_vs_measured(profile: str, expected: dict[str, Expectation], measured: dict[str, Any]) -> str:
    lines = [f"# Expected vs measured: profile `{profile}`", ""]
    if not expected:
        lines.append("This profile carries no expected values; measured numbers are in the stage outputs.")
        return "\n".join(lines) + "\n"
    lines += ["| quantity | expected | measured | verdict | source |", "|---|---|---|---|---|"]
    for key, expectation in expected.items():
        value = lookup(measured, key)
        if expectation.comparison == "at_least":
            target = f">= {expectation.value:g}"
        elif expectation.comparison == "at_most":
            target = f"<= {expectation.value:g}"
        else:
            target = f"{expectation.value:g} ± {expectation.tolerance:g}"
        shown = f"{value:.4f}" if isinstance(value, int | float) else "—"
        lines.append(
            f"| `{key}` | {target} | {shown} | {verdict(expectation, value)} | {expectation.source} |"
        )
    return "\n".join(lines) + "\n"


# -- results/<profile>/REPORT.md ---------------------------------------------------------------------


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_number(cell) for cell in row) + " |" for row in rows]


def _behaviour_section(behaviour: dict[str, Any]) -> list[str]:
    rows = []
    for mechanism, entry in behaviour.items():
        if not isinstance(entry, dict):
            continue
        value = entry.get("probability_difference", entry.get("value"))
        chance = entry.get("chance_probability_difference", entry.get("chance"))
        rows.append(
            [mechanism, entry.get("metric", "probability difference (paper convention)"), value, chance]
        )
    return ["## Behaviour", "", *_table(["mechanism", "metric", "measured", "chance"], rows), ""]


# headline entries of a case study's JSON, by analysis: (dotted key, what it is)
CASE_STUDY_HEADLINES = {
    "greater_than": [
        ("protocol", "headline protocol (zero: the paper's; mean: last-token mean ablation)"),
        ("layer", "MLP layer studied (largest drop under that protocol's ablation)"),
        ("probability_difference.original", "probability difference, original model"),
        ("probability_difference.transcoder_spliced", "... MLP replaced by its transcoder"),
        ("probability_difference.mlp_removed", "... MLP removed (zeroed)"),
        ("probability_difference.mlp_last_token_mean_ablated", "... MLP's last-token output mean-ablated"),
        ("probability_difference.every_mlp_after_layer_0_zeroed", "... MLPs 1 and up zeroed together"),
        ("hanna_probability_difference.original", "Hanna et al.'s convention, original model"),
        ("curves.features_to_90pct_of_spliced", "features to reach 90% of the spliced value"),
        ("curves.neurons_to_90pct_of_original", "neurons to reach 90% of the original value"),
        ("curves.neurons_to_90pct_of_spliced", "neurons to reach 90% of the spliced value"),
        ("curves.components_by_threshold.95%", "features / neurons to 95% of their full values"),
        ("curves.components_by_threshold.99%", "features / neurons to 99%"),
        ("curves.features_needed_for_the_mark", "features needed at all (ablating all falls below the mark)"),
        ("curves.gap_recovered_by_threshold.90%", "features / neurons to recover 90% of the n = 0 gap"),
        ("prompt_resamples.share_meeting_criterion", "share of fresh prompt draws meeting the 90% criterion"),
        ("other_protocol.protocol", "other protocol"),
        ("other_protocol.layer", "... its layer"),
        ("other_protocol.curves.components_by_threshold.90%", "... features / neurons to 90%"),
        ("other_protocol.curves.components_by_threshold.99%", "... features / neurons to 99%"),
        ("planted_task_check.share_favouring_later_years", "top features promoting later years"),
        ("graph.heads_on_paths", "heads on the paths of the logit graph"),
    ],
    "feature": [
        ("root.label", "root feature"),
        ("selection.auroc_vs_rest", "AUROC: target labels vs every other token"),
        ("selection.auroc_vs_contrast", "AUROC: target vs contrast labels"),
        ("activations.prompts_mean", "mean activation on the prompts"),
        ("activations.contrast_mean", "mean activation on the contrast prompts"),
        ("circuit.root_token_features_in_top5", "root token's own features among the top 5 contributors"),
        ("circuit.fraction_explained", "fraction of the root explained by the graph"),
        ("circuit.ablation_spearman", "Spearman(attribution, ablation) over graph features"),
        ("intervention.mean_before", "intervention: activation before the token swap"),
        ("intervention.mean_after", "intervention: activation after the token swap"),
        ("splice.clean", "splice experiment: clean activation"),
        ("blind.hypothesis.statement", "blind hypothesis (weights only)"),
        ("blind.confirmed_by_dashboard", "hypothesis confirmed by the dashboard"),
    ],
}


def _case_study_section(study: dict[str, Any], analysis: str, figures_link: str) -> list[str]:
    lines = [f"### {study['title']} (`{study['name']}`)", "", f"*{study.get('question', '').strip()}*", ""]
    rows = [[what, lookup(study, key)] for key, what in CASE_STUDY_HEADLINES.get(analysis, [])]
    if analysis == "feature":
        rows += [
            [f"splice experiment: {key}", value]
            for key, value in study.get("splice", {}).items()
            if key != "clean"
        ]
    lines += _table(["quantity", "measured"], [row for row in rows if row[1] is not None]) + [""]
    if study.get("expected"):
        checks = [
            [
                f"`{key}`",
                _expectation_text(check["expected"]),
                check["measured"],
                check["verdict"],
                check["expected"].get("source", ""),
            ]
            for key, check in study["expected"].items()
        ]
        lines += _table(["expected quantity", "expected", "measured", "verdict", "source"], checks) + [""]
    figures = study.get("figures", [])
    if figures:
        lines += [" ".join(f"[{Path(f).stem}]({figures_link}/{Path(f).name})" for f in figures), ""]
    return lines


def _expectation_text(expected: dict[str, Any]) -> str:
    comparison = expected.get("comparison", "approx")
    if comparison == "at_least":
        return f">= {expected['value']:g}"
    if comparison == "at_most":
        return f"<= {expected['value']:g}"
    return f"{expected['value']:g} ± {expected.get('tolerance', 0):g}"


def build_report(
    profile: str,
    expected: dict[str, Expectation],
    results: Path,
    figures_link: str,
    analyses: dict[str, str],
) -> str:
    """REPORT.md for one profile from the JSON/CSV files under `results` (results/<profile>).

    `figures_link`: figures/<profile> relative to the report; `analyses`: case study -> analysis.
    """
    import pandas as pd

    lines = [
        f"# Report: profile `{profile}`",
        "",
        "Regenerated by the `report` stage from the files beside it.",
        "",
    ]
    measured: dict[str, Any] = {}
    if (results / "behaviour.json").exists():
        measured["behaviour"] = json.loads((results / "behaviour.json").read_text())
        lines += _behaviour_section(measured["behaviour"])
    if (results / "pareto.csv").exists():
        pareto = pd.read_csv(results / "pareto.csv")
        columns = [
            "layer",
            "kind",
            "l1_coefficient",
            "l0",
            "ce_spliced",
            "loss_recovered",
            "fvu",
            "dead_fraction",
        ]
        lines += [
            "## Dictionaries: sparsity vs fidelity",
            "",
            f"Clean CE {pareto['ce_clean'].iloc[0]:.4f} nats.",
            "",
        ]
        lines += _table(columns, pareto[columns].values.tolist()) + [
            "",
            f"![Pareto]({figures_link}/pareto.png)",
            "",
        ]
    if (results / "splice_all.json").exists():
        measured["splice_all"] = json.loads((results / "splice_all.json").read_text())
        s = measured["splice_all"]
        lines += [
            "## All transcoders spliced together",
            "",
            *_table(
                ["layers", "CE clean", "CE spliced", "loss recovered", "KL"],
                [[s["layers"], s["ce_clean"], s["ce_spliced"], s["loss_recovered"], s["kl"]]],
            ),
            "",
        ]
    lines += (
        expected_vs_measured(profile, expected, measured).replace("# Expected", "## Expected").splitlines()
    )
    lines.append("")
    case_dir = results / "case_studies"
    studies = sorted(case_dir.glob("*.json")) if case_dir.exists() else []
    if studies:
        lines += ["## Case studies", ""]
        for path in studies:
            study = json.loads(path.read_text())
            lines += _case_study_section(
                study, analyses.get(study["name"], "feature"), f"{figures_link}/case_studies/{study['name']}"
            )
    table = results / "study" / "table.md"  # written by study_analysis beside summary.json
    if table.exists():
        body = table.read_text().strip().splitlines()[1:]  # its own title becomes ours
        demoted = [f"#{line}" if line.startswith("#") else line for line in body]
        lines += ["## Blind interpretability study", "", *demoted]
        lines += ["", f"![ratings]({figures_link}/study/ratings.png)", ""]
    return "\n".join(lines).rstrip() + "\n"
