"""Reports: measured numbers beside the profile's expected values, as Markdown.

An expectation (`config.Expectation`) is judged by its `comparison`: "approx" (within
`tolerance`), "at_least", "at_most", or "reference": a published number shown beside our
measurement without a verdict, for quantities measured under conditions that differ from the
paper's (another prompt, say), where no tolerance could be argued from the numerics.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from transcoder_lab.config import Comparison, Expectation, ReferencePoint


def lookup(results: dict[str, Any], dotted_key: str) -> Any:
    """`lookup(r, "splice_all.kl")` is r["splice_all"]["kl"]; None when any part is missing."""
    value: Any = results
    for part in dotted_key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


REFERENCE_VERDICT = "reference (no pass/fail)"


def verdict(expectation: Expectation, measured: float | None) -> str:
    if expectation.comparison == Comparison.reference:
        return REFERENCE_VERDICT if measured is not None else "not measured"
    if measured is None:
        return "not measured"
    if expectation.comparison == Comparison.at_least:
        return "ok" if measured >= expectation.value else "BELOW"
    if expectation.comparison == Comparison.at_most:
        return "ok" if measured <= expectation.value else "ABOVE"
    return "ok" if abs(measured - expectation.value) <= expectation.tolerance else "OUTSIDE"


def check_expectations(result: dict[str, Any], expected: dict[str, Expectation]) -> dict[str, Any]:
    """Each dotted key of `expected` looked up in `result`, beside its expectation and verdict
    (the `expected` block of a case study's JSON, which the report shows)."""
    return {
        key: {
            "expected": vars(expectation),
            "measured": lookup(result, key),
            "verdict": verdict(expectation, lookup(result, key)),
        }
        for key, expectation in expected.items()
    }


def expected_vs_measured(profile: str, expected: dict[str, Expectation], measured: dict[str, Any]) -> str:
    lines = [f"# Expected vs measured: profile `{profile}`", ""]
    if not expected:
        lines.append("This profile carries no expected values; measured numbers are in the stage outputs.")
        return "\n".join(lines) + "\n"
    lines += ["| quantity | expected | measured | verdict | source |", "|---|---|---|---|---|"]
    for key, expectation in expected.items():
        value = lookup(measured, key)
        target = _expectation_text(vars(expectation))
        shown = f"{value:.4f}" if isinstance(value, int | float) else "—"
        lines.append(
            f"| `{key}` | {target} | {shown} | {verdict(expectation, value)} | {expectation.source} |"
        )
    return "\n".join(lines) + "\n"


def matched_l0_gaps(pareto: Any, reference: str = "transcoder") -> list[list[Any]]:
    """Where each arm lies against the `reference` arm's frontier, layer by layer: for every point of
    another arm whose L0 falls inside the reference's L0 range at that layer, its spliced CE minus
    the reference's, interpolated linearly in log L0 between the reference's neighbouring points
    (negative: better than the reference at the same sparsity). Rows: layer, arm, points compared,
    points outside the range, mean, min and max of the gap in nats."""
    rows = []
    for layer in sorted(pareto["layer"].unique()):
        at_layer = pareto[pareto["layer"] == layer]
        ref = at_layer[at_layer["kind"] == reference].sort_values("l0")
        if len(ref) < 2:
            continue
        log_l0 = [math.log(v) for v in ref["l0"]]
        for arm in [a for a in at_layer["kind"].unique() if a != reference]:
            gaps = []
            points = at_layer[at_layer["kind"] == arm]
            for l0, ce in zip(points["l0"], points["ce_spliced"], strict=True):
                x = math.log(l0) if l0 > 0 else -math.inf
                if not log_l0[0] <= x <= log_l0[-1]:
                    continue
                i = max(j for j in range(len(log_l0) - 1) if log_l0[j] <= x)
                w = (x - log_l0[i]) / (log_l0[i + 1] - log_l0[i])
                ce_ref = (1 - w) * ref["ce_spliced"].iloc[i] + w * ref["ce_spliced"].iloc[i + 1]
                gaps.append(ce - ce_ref)
            outside = len(points) - len(gaps)
            if gaps:
                mean = sum(gaps) / len(gaps)
                rows.append([int(layer), arm, len(gaps), outside, mean, min(gaps), max(gaps)])
            else:
                rows.append([int(layer), arm, 0, outside, None, None, None])
    return rows


# -- results/<profile>/REPORT.md ---------------------------------------------------------------------


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.4g}"  # NaN: an empty CSV cell (TopK's L1)
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
        ("probability_difference.mlp_removed", "... MLP removed (whole output zeroed, bias included)"),
        (
            "probability_difference.transcoder_bias_only",
            "... curve n = 0, features: transcoder bias b_dec_out only",
        ),
        ("probability_difference.mlp_bias_only", "... curve n = 0, neurons: MLP output bias b_out only"),
        (
            "probability_difference.transcoder_last_token_mean_ablated",
            "... every feature mean-ablated at the last token",
        ),
        ("probability_difference.mlp_last_token_mean_ablated", "... MLP's last-token output mean-ablated"),
        ("probability_difference.every_mlp_after_layer_0_zeroed", "... MLPs 1 and up zeroed together"),
        (
            "hanna_probability_difference.original",
            "full-vocabulary softmax (Hanna et al.'s formula on these prompts, not their prompts)",
        ),
        ("curves.paper_marks.features_to_mark", "features to reach the paper's mark (0.84)"),
        ("curves.paper_marks.neurons_to_mark", "neurons to reach the paper's mark (0.83)"),
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
        ("planted_task_check.n_favouring_later_years", "top features promoting later years"),
        ("planted_task_check.n_counted", "... of the top features that fire on the prompts"),
        ("planted_task_check.binomial_p", "... one-sided binomial p against a coin"),
        ("graph.heads_on_paths", "heads on the paths of the logit graph"),
    ],
    "feature": [
        ("root.label", "root feature"),
        ("selection.auroc_vs_rest", "AUROC: target labels vs every other token"),
        ("selection.auroc_vs_contrast", "AUROC: target vs contrast labels"),
        ("activations.prompts_mean", "mean activation on the prompts"),
        ("activations.contrast_mean", "mean activation on the contrast prompts"),
        ("circuit.fraction_explained", "fraction of the root explained by the graph"),
        ("circuit.ablation_spearman", "Spearman(attribution, ablation) over graph features"),
        ("intervention.mean_before", "intervention: activation before the token swap"),
        ("intervention.mean_after", "intervention: activation after the token swap"),
        ("intervention.after_over_before", "intervention: after / before"),
        ("splice.clean", "splice experiment: clean activation"),
        ("blind.hypothesis.statement", "blind hypothesis (weights only)"),
        ("blind.confirmed_by_dashboard", "hypothesis confirmed by the dashboard (its token and its context)"),
    ],
}


def _unreached(study: dict[str, Any], key: str) -> str | None:
    """Greater-than's counts under `curves` (the first n at which a curve reaches a mark) are None
    when the curve never gets there within n <= n_components: the text saying so, else None."""
    parent_key, _, last = key.rpartition(".")
    parent = lookup(study, parent_key) if parent_key else study
    if not isinstance(parent, dict) or last not in parent or parent[last] is not None:
        return None
    for prefix in ("curves.", "other_protocol.curves."):
        if key.startswith(prefix):
            n = lookup(study, prefix + "n")
            return f"not reached (n <= {n[-1]})" if n else "not reached"
    return None


def _published_components(study: dict[str, Any]) -> list[str]:
    """Greater-than: the paper's features (by its variance ranking) and heads, where we find them."""
    rows = [
        [
            f"feature tc{study.get('layer')}[{entry['feature']}]",
            f"rank {entry['paper_rank']} by activation variance",
            entry["rank"] if entry["rank"] is not None else "not in this transcoder",
            "yes" if entry["in_top10"] else "no",
        ]
        for entry in study.get("expected_features", [])
    ]
    rows += [
        [
            f"head {entry['head']}",
            "on the paths of the logit graph",
            f"{entry['rank']} of {entry['n_heads_on_paths']} heads on the paths" if entry["found"] else "—",
            "yes" if entry["found"] else "no (not on the kept paths)",
        ]
        for entry in lookup(study, "graph.expected_heads") or []
    ]
    if not rows:
        return []
    header = ["published component", "paper", "our rank", "found (features: in our top 10)"]
    return ["Published components:", "", *_table(header, rows), ""]


def _case_study_section(study: dict[str, Any], analysis: str, figures_link: str) -> list[str]:
    lines = [f"### {study['title']} (`{study['name']}`)", "", f"*{study.get('question', '').strip()}*", ""]
    rows = [
        [what, lookup(study, key) if lookup(study, key) is not None else _unreached(study, key)]
        for key, what in CASE_STUDY_HEADLINES.get(analysis, [])
    ]
    if analysis == "feature":
        rows += [
            [f"splice experiment: {key}", value]
            for key, value in study.get("splice", {}).items()
            if key != "clean"
        ]
    lines += _table(["quantity", "measured"], [row for row in rows if row[1] is not None]) + [""]
    lines += _published_components(study)
    if study.get("expected"):
        checks = [
            [
                f"`{key}`",
                _expectation_text(check["expected"]),
                check["measured"],
                (check["measured"] is None and _unreached(study, key)) or check["verdict"],
                check["expected"].get("source", ""),
            ]
            for key, check in study["expected"].items()
        ]
        lines += _table(["expected quantity", "expected", "measured", "verdict", "source"], checks) + [""]
    figures = study.get("figures", [])
    if figures:
        lines += [" ".join(f"[{Path(f).stem}]({figures_link}/{Path(f).name})" for f in figures), ""]
    return lines


def _full_graph_section(studies: list[dict[str, Any]]) -> list[str]:
    """One row per case study with a full graph (`case_studies.run_case_study`, step 5)."""
    rows = []
    for study in studies:
        graph = study.get("full_graph")
        if graph and "skipped" in graph:
            skipped = f"skipped: {graph['skipped']}"
            rows.append([f"`{study['name']}`", "", graph["n_active_features"], skipped, "", ""])
        elif graph:
            kept = f"{graph['n_nodes_kept']} of {graph['n_nodes']}"
            rows.append([f"`{study['name']}`", graph["n_tokens"], graph["n_active_features"], kept,
                         graph["replacement_score"], graph["completeness_score"]])  # fmt: skip
    if not rows:
        return []
    built = [study["full_graph"] for study in studies if "node_threshold" in study.get("full_graph", {})]
    first = built[0] if built else {"node_threshold": 0.8, "edge_threshold": 0.98}
    thresholds = f"node threshold {first['node_threshold']:g}, edge threshold {first['edge_threshold']:g}"
    return [
        "### Full attribution graphs",
        "",
        "Each case study's graph prompt as a full graph (every active transcoder feature, error and",
        "embedding node; circuit-tracer's salient-logit targets at the last position), pruned by",
        f"influence ({thresholds}). Replacement and completeness scores as",
        "circuit-tracer defines them, on the unpruned graph (`circuits.full_graph`). The pruned graph",
        "opens in circuit-tracer's viewer from the study's `attribution_graph/` folder (slug `<name>_full`).",
        "",
        *_table(
            ["case study", "tokens", "active features", "nodes kept", "replacement", "completeness"], rows
        ),  # fmt: skip
        "",
    ]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _faithfulness_section(studies: list[dict[str, Any]]) -> list[str]:
    """Each study's circuit tested by intervention and its attention against ground truth
    (case_studies.faithfulness): the measures, then every verdict with its bar."""
    measured, verdicts, truths, contrasts = [], [], [], []
    for study in studies:
        f = study.get("faithfulness")
        if not f:
            continue
        main, over = f["graph_prompt"], f["over_prompts"]
        name = f"`{study['name']}`"
        for measure in ("sufficiency", "necessity"):
            live, frozen = main["live"], main["frozen"]
            random = live[f"random_{measure}"]
            sets = f"n={random['n_sets']}, size {random['set_size']}"
            spread = over["live"][measure]
            measured.append([
                name, measure, _pct(live[measure]), _pct(frozen[measure]),
                f"{_pct(random['mean'])} / {_pct(random['p95'])} ({sets})",
                _pct(random["percentile_of_circuit"]),
                f"{_pct(spread['median'])} [{_pct(spread['q25'])}, {_pct(spread['q75'])}] (n={spread['n']})",
            ])  # fmt: skip
        live, frozen = main["live"], main["frozen"]
        measured.append([
            name, f"Spearman over {main['n_active_features']} active features", _pct(live.get("spearman")),
            _pct(frozen.get("spearman")), "", "",
            f"{_pct(over['live']['spearman']['median'])} (n={over['live']['spearman']['n']})",
        ])  # fmt: skip
        for key, v in f["verdicts"].items():
            percentile = "" if v["percentile"] is None else f", percentile {v['percentile']:.0f}"
            verdicts.append([name, key, f"{_pct(v['value'])}{percentile}", f">= {v['bar']:g}", v["verdict"]])
        truth = study.get("ground_truth")
        if truth:
            share, knock = truth["attention_share_from_context"], truth["loss_without_attention_from_context"]
            truths.append([
                name, ", ".join(truth["context_labels"]), truth["n_prompts"],
                f"{_pct(share['median'])} [{_pct(share['q25'])}, {_pct(share['q75'])}]",
                _pct(knock["mean"]), _pct(truth["loss_with_context_tokens_neutral"]["median"]),
                truth["verdict"],
            ])  # fmt: skip
        contrast = study.get("contrastive")
        if contrast:
            contrasts.append([
                name, contrast["n_pairs"], _pct(contrast["attributed_context_share"]["median"]),
                _pct(contrast["patched_context_share_at_root_layer"]["median"]), contrast["verdict"],
            ])  # fmt: skip
    if not measured:
        return []
    bar = studies[0].get("faithfulness", {}).get("bars", {}).get("min_percentile", 95)
    lines = [
        "### Faithfulness by intervention",
        "",
        "Each circuit (the graph's feature nodes) on its graph prompt: the share of the root it",
        "recovers alone with every other feature mean-ablated (sufficiency) and the share lost when it is",
        "mean-ablated (necessity), in the live model and with attention and LayerNorm frozen, beside",
        "random feature sets of the same size (mean / 95th percentile, and the circuit's percentile",
        "among them); over the study's prompts, each with its own circuit: median [IQR]. Spearman:",
        "attribution (total effect) against the effect of ablating each active feature alone.",
        "",
        *_table(
            ["study", "measure", "live", "frozen", "random sets (live)", "percentile", "over prompts (live)"],
            measured,
        ),
        "",
        f"Verdicts (live model; bars fixed in the study's config before the run, and above the {bar:g}th",
        "percentile of the random sets where one is given):",
        "",
        *_table(["study", "verdict", "measured", "bar", "verdict"], verdicts),
        "",
    ]
    if truths:
        lines += [
            "Ground truth: of the root's direct input carried by attention from other tokens, the share",
            "from the planted context tokens (median [IQR]); the share of the root's activation lost",
            "when no head attends from the root's token to them (mean), or when they become a neutral",
            "token (median); ok when the share and the loss both reach their bars.",
            "",
            *_table(
                [
                    "study",
                    "planted context",
                    "prompts",
                    "attention share",
                    "loss, attention cut",
                    "loss, token neutral",
                    "verdict",
                ],
                truths,
            ),  # fmt: skip
            "",
        ]
    if contrasts:
        lines += [
            "Matched pairs (case_studies.contrastive): each prompt with a planted context token beside the",
            "same prompt with it made the neutral token. Of the root's difference between them (medians",
            "over pairs): the share the exact attribution places at the context positions, the share lost",
            "when the neutral residual stream is patched in at those positions at the root's layer; ok",
            "when the patched share reaches `min_context_loss`.",
            "",
            *_table(
                ["study", "pairs", "attributed share", "patched share", "verdict"], contrasts
            ),
            "",
        ]
    return lines


def _expectation_text(expected: dict[str, Any]) -> str:
    comparison = expected.get("comparison", Comparison.approx)
    if comparison == Comparison.at_least:
        return f">= {expected['value']:g}"
    if comparison == Comparison.at_most:
        return f"<= {expected['value']:g}"
    if comparison == Comparison.reference:
        return f"{expected['value']:g} (reference)"
    return f"{expected['value']:g} ± {expected.get('tolerance', 0):g}"


def build_report(
    profile: str,
    expected: dict[str, Expectation],
    results: Path,
    figures_link: str,
    analyses: dict[str, str],
    reference: dict[str, Any] | None = None,
    agreement: list[dict[str, Any]] | None = None,
) -> str:
    """REPORT.md for one profile from the JSON/CSV files under `results` (results/<profile>).

    `figures_link`: figures/<profile> relative to the report; `analyses`: case study -> analysis;
    `reference`, `agreement`: the profile's frozen reference run, if it has one, and this run's
    headline numbers beside it (transcoder_lab.reference.compare).
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
        if "seed" in pareto:  # the seed replicas appear in the interval table below, not here
            pareto = pareto[pareto["seed"] == 0]
        recipes = pareto
        if "recipe" in pareto:  # the profile's own recipe (most cells'); the others in their own table
            pareto = pareto[pareto["recipe"] == pareto["recipe"].mode().iloc[0]]
        columns = [
            "layer",
            "kind",
            "l1_coefficient",
            *(["k"] if "k" in pareto and pareto["k"].notna().any() else []),
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
        gaps = matched_l0_gaps(pareto)
        if gaps:
            lines += [
                "Each arm against the transcoder frontier at the same layer and L0: spliced CE minus the "
                "transcoder's, interpolated in log L0 (negative: better than the transcoder), over the "
                "arm's points inside the transcoder's L0 range.",
                "",
                *_table(
                    ["layer", "arm", "points compared", "points outside", "mean gap (nats)", "min", "max"],
                    gaps,
                ),  # fmt: skip
                "",
            ]
        if "recipe" in pareto:  # pareto.csv written before recipe replicas has no column
            lines += _recipes_section(recipes, pareto)
    if (results / "pareto_gaps.json").exists():
        lines += _pareto_gaps_section(json.loads((results / "pareto_gaps.json").read_text()))
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
        loaded = [json.loads(path.read_text()) for path in studies]
        for study in loaded:
            lines += _case_study_section(
                study, analyses.get(study["name"], "feature"), f"{figures_link}/case_studies/{study['name']}"
            )
        lines += _full_graph_section(loaded)
        lines += _faithfulness_section(loaded)
    families = results / "families.md"  # written by the families stage beside families.json
    if families.exists():
        lines += [*families.read_text().strip().splitlines(), ""]
    table = results / "study" / "table.md"  # written by study_analysis beside summary.json
    if table.exists():
        body = table.read_text().strip().splitlines()[1:]  # its own title becomes ours
        demoted = [f"#{line}" if line.startswith("#") else line for line in body]
        lines += ["## Blind interpretability study", "", *demoted]
        lines += ["", f"![ratings]({figures_link}/study/ratings.png)", ""]
    if reference is not None and agreement is not None:
        lines += _agreement_section(reference, agreement)
    if (results / "environment.json").exists():
        lines += _environment_section(json.loads((results / "environment.json").read_text()))
    return "\n".join(lines).rstrip() + "\n"


def _agreement_section(reference: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """Every headline number beside the reference run's, agrees / differs (transcoder_lab.reference)."""

    def text(value: Any) -> str:
        return "—" if value is None else value if isinstance(value, str) else f"{value:.4g}"

    environment = reference.get("environment") or {}
    counts = {verdict: sum(row["verdict"] == verdict for row in rows) for verdict in ("agrees", "differs")}
    return [
        "## Agreement with the reference run",
        "",
        f"The reference is the run frozen in `references/{reference['profile']}.yaml` (commit "
        f"{str(reference.get('commit'))[:12]}; {environment.get('cpu')}, torch {environment.get('torch')} on "
        f"{environment.get('torch_threads')} threads). A number agrees when it lies within the tolerance "
        "of the reference: the 95% bound on the difference of two independent runs, from seed replicas "
        "where they exist, else from the spread over the number's units (basis; `transcoder_lab.reference` "
        f"states each formula). {counts['agrees']} agree, {counts['differs']} differ.",
        "",
        *_table(
            ["quantity", "reference", "tolerance", "this run", "verdict", "units", "basis"],
            [[f"`{row['quantity']}`", text(row["value"]),
              "equal" if row["tolerance"] is None else f"± {row['tolerance']:.2g}",
              text(row["measured"]), row["verdict"], text(row["n"]), row["basis"]]
             for row in rows],
        ),  # fmt: skip
        "",
    ]


def _recipes_section(rows: Any, own: Any) -> list[str]:
    """Each other recipe's rows beside the profile's own recipe's (`own`) at the same layer, arm and
    sparsity (pareto.csv's `recipe` column; seed 0): one table per other recipe."""
    others = rows[~rows.index.isin(own.index)]
    setting, measures = ["layer", "kind", "l1_coefficient", "k"], ["l0", "ce_spliced", "fvu", "dead_fraction"]
    name, lines = own["recipe"].iloc[0] if len(own) else "own", []
    for recipe, of_recipe in others.groupby("recipe", sort=False):
        both = of_recipe.merge(own, on=setting, how="left", suffixes=("", "_own"))
        header = ["layer", "arm", "λ (L1)", *(f"{m} ({r})" for m in measures for r in (name, recipe))]
        columns = ["layer", "kind", "l1_coefficient", *(c for m in measures for c in (f"{m}_own", m))]
        table = both[columns].values.tolist()
        layers = ", ".join(str(layer) for layer in sorted(of_recipe["layer"].unique()))
        lines += [
            f"### Both recipes at layer {layers}",
            "",
            f"The {recipe} recipe's dictionaries (cells `<cell>_{recipe}`, "
            f"conf/dictionary_recipe/{recipe}.yaml) beside the {name} recipe's at the same layer, arm "
            "and λ: the same seed, initialisation and batches; only the recipe's settings differ.",
            "",
            *_table(header, table),
            "",
        ]
    return lines


def _pareto_gaps_section(gaps: dict[str, Any]) -> list[str]:
    """The matched-L0 gaps with their intervals (pareto_gaps.json; dictionaries.matched_gaps)."""
    level = f"{gaps['confidence']:.0%}"

    def interval(entry: dict[str, Any] | None) -> list[str]:
        if entry is None:
            return ["— (single seed)", "—"]
        return [f"[{entry['low']:+.4f}, {entry['high']:+.4f}]", "yes" if entry["significant"] else "no"]

    def rows(entries: list[dict[str, Any]]) -> list[list[Any]]:
        return [
            [row["layer"], row["arm"], ", ".join(str(s) for s in row["seeds"]),
             "—" if row["gap"] is None else f"{row['gap']:+.4f}",
             ", ".join(f"{g:+.4f}" for g in row["per_seed"].values()),
             *interval(row["context_bootstrap"]), *interval(row["seed_spread"])]
            for row in entries
        ]  # fmt: skip

    header = ["layer", "arm", "seeds", "mean gap (nats)", "per seed", f"contexts {level}", "significant",
              f"seeds {level}", "significant"]  # fmt: skip
    other_recipes = []
    for recipe, entries in gaps.get("recipes", {}).items():
        other_recipes += [f"The {recipe} recipe's arms against its own {gaps['reference']}, alike:", "",
                          *_table(header, rows(entries)), ""]  # fmt: skip
    return [
        f"### Matched-L0 gaps with {level} intervals",
        "",
        f"Each arm's spliced CE minus the {gaps['reference']}'s at the same layer and L0 (as above), seed "
        "against seed and averaged over seeds. Contexts: a paired percentile bootstrap over the "
        f"{gaps['n_contexts']} held-out contexts ({gaps['n_bootstrap']} draws, the same draws for both "
        "arms). Seeds: Student's t interval over the per-seed gaps. Significant: the interval excludes 0.",
        "",
        *_table(header, rows(gaps["gaps"])),
        "",
        *other_recipes,
    ]


def _environment_section(environment: dict[str, Any]) -> list[str]:
    """What the report ran on (transcoder_lab.environment): compare it before comparing numbers."""
    commit = environment.get("commit") or "unknown"
    if environment.get("code_changes"):
        commit += " (with uncommitted code changes)"
    versions = ", ".join(f"{name} {version}" for name, version in environment["versions"].items() if version)
    return [
        "## Environment",
        "",
        f"Written by the `report` stage (`environment.json`): commit {commit}; {environment['cpu']} "
        f"({environment['cpu_count']} CPUs, torch kernels for {environment['torch_cpu_capability']}), "
        f"torch on {environment['torch_threads']} threads; Python {environment['python']}; {versions}. "
        "Numbers agree byte for byte only on the same processor, thread count and versions.",
        "",
    ]


# -- a published sweep beside the grid (profile.evaluation.reference_points) -------------------------


def reference_table(points: list[ReferencePoint], pareto: Any) -> str:
    """Markdown: each published sweep point beside the grid's dictionary trained at the same (layer,
    kind, l1_coefficient), read from the Pareto rows (a DataFrame with those columns and `l0`,
    `ce_spliced`). Reference values, without a verdict: the L0 a coefficient gives depends on the
    training run, so the curves are compared, not single points. A point whose coefficient is not in
    the grid shows "—"."""
    header = ["kind", "layer", "l1", "L0 (reference)", "L0 (measured)", "CE spliced (reference)",
              "CE spliced (measured)", "source"]  # fmt: skip
    lines = [
        "## Reference sweep (published points beside the grid's dictionary at the same coefficient)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    rows = pareto.to_dict("records")
    for point in points:
        same = [
            row
            for row in rows
            if row["kind"] == point.kind
            and row["layer"] == point.layer
            and math.isclose(row["l1_coefficient"], point.l1_coefficient, rel_tol=1e-9)
        ]
        l0, ce = (f"{same[0]['l0']:.2f}", f"{same[0]['ce_spliced']:.4f}") if same else ("—", "—")
        lines.append(
            f"| {point.kind} | {point.layer} | {point.l1_coefficient:g} | {point.l0:g} | {l0} | "
            f"{point.ce_spliced:g} | {ce} | {point.source} |"
        )
    return "\n".join(lines) + "\n"
