"""Unblinding and the study's summary: every rater's table, tests, intervals and agreement.

1. Raters: every `*.json` in the ratings directory (humans; a file made on another packet, or an
   invalid one, is skipped and listed under "skipped_raters" with the reason), plus the
   ground-truth rater's ratings when given (organism profiles).
2. Unblind (`packet.unblind`): the key's SHA-256 must match the packet's record; card -> arm.
3. Per rater (`rater_summary`): its rated cards split by arm, the counts (paper's layout), Fisher
   tests and bootstrap intervals (transcoder_lab.study.stats), and whether it rated every card.
   Context-free is counted twice, with the denominator named: over all rated cards ("counts") and
   among the yes-or-maybe cards ("context_free_among_interpretable", the paper's count).
4. With two or more raters: Cohen's kappa for every pair and Krippendorff's alpha over all; the
   pairs that include the ground-truth rater are also listed as "ground_truth_vs_humans".
5. A Markdown table per rater (`summary_table`) and a figure (`study_figure`): per rater, each
   arm's yes / maybe / no shares as stacked bars, with the context-free share (of all) marked.
   On organism profiles the full-power rating (transcoder_lab.study.full_power: every live
   feature, not the packet's cards) is kept apart under "full_power" and gets its own section:
   counts, the primary test with its interval and verdict, then the secondary numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from transcoder_lab.study import stats  # noqa: E402
from transcoder_lab.study.packet import Packet  # noqa: E402
from transcoder_lab.study.ratings import CATEGORIES, GROUND_TRUTH, RatingError, RatingsFile, load_ratings  # noqa: E402
from transcoder_lab.study.sample import ARMS  # noqa: E402


def load_raters(ratings_dir: str | Path, packet: Packet) -> tuple[list[RatingsFile], list[dict[str, str]]]:
    """Step 1: (valid ratings files of this packet, skipped files with reasons)."""
    raters, skipped = [], []
    directory = Path(ratings_dir)
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            ratings = load_ratings(path, packet.n_cards)
        except RatingError as error:
            skipped.append({"file": str(path), "reason": str(error)})
            continue
        if ratings.packet_id != packet.packet_id:
            skipped.append({
                "file": str(path),
                "reason": f"made on packet {ratings.packet_id[:12]}..., not on {packet.packet_id[:12]}...",
            })  # fmt: skip
        elif ratings.rater == GROUND_TRUTH or ratings.rater in {r.rater for r in raters}:
            skipped.append(
                {"file": str(path), "reason": f"rater name '{ratings.rater}' is reserved or repeated"}
            )
        else:
            raters.append(ratings)
    return raters, skipped


def rater_summary(
    ratings: RatingsFile, card_arm: dict[int, str], n_bootstrap: int, seed: int
) -> dict[str, Any]:
    arms = {arm: [ratings.ratings[c] for c in sorted(ratings.ratings) if card_arm[c] == arm] for arm in ARMS}
    counts = stats.arm_counts(arms)
    return {
        "n_rated": len(ratings.ratings),
        "complete": len(ratings.ratings) == len(card_arm),
        "counts": counts,
        "fisher": stats.fisher_tests(counts),
        "bootstrap": stats.bootstrap_shares(arms, n_bootstrap, seed),
        # its own stream (seed + 1), so adding it left the intervals above as they were
        "context_free_among_interpretable": stats.context_free_among_interpretable(
            arms, n_bootstrap, seed + 1
        ),
    }


def analyse(
    packet: Packet,
    key: dict[str, Any],
    raters: list[RatingsFile],
    n_bootstrap: int,
    seed: int,
    skipped: list[dict[str, str]] | None = None,
    full_power: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Steps 3-4 on an unblinded key; returns the summary (JSON-ready). `full_power`: the
    full-power rating's summary (transcoder_lab.study.full_power), kept under its own key."""
    card_arm = {int(entry["card"]): entry["arm"] for entry in key["cards"]}
    by_name = {r.rater: r for r in raters}
    summary: dict[str, Any] = {
        "profile": key.get("profile"),
        "packet_id": packet.packet_id,
        "n_cards": packet.n_cards,
        "n_per_arm": {arm: sum(a == arm for a in card_arm.values()) for arm in ARMS},
        "arms": {
            name: {
                k: arm[k]
                for k in ("layer", "kind", "l1_coefficient", "l0", "fvu", "n_live", "d_sae")
                if k in arm
            }
            for name, arm in key.get("arms", {}).items()
        },
        "raters": {r.rater: rater_summary(r, card_arm, n_bootstrap, seed) for r in raters},
        "skipped_raters": skipped or [],
    }
    if full_power is not None:
        summary["full_power"] = full_power
    if GROUND_TRUTH in by_name:
        summary["ground_truth_rule"] = by_name[GROUND_TRUTH].extra.get("rule")
    if len(raters) >= 2:
        rated = {r.rater: r.ratings for r in raters}
        pairs = stats.pairwise_agreement(rated)
        summary["agreement"] = {
            "pairs": pairs,
            "krippendorff_alpha": stats.krippendorff_all(rated, packet.n_cards),
        }
        if GROUND_TRUTH in by_name:
            summary["ground_truth_vs_humans"] = {
                next(name for name in p["raters"] if name != GROUND_TRUTH): {
                    k: p[k] for k in ("n", "observed", "kappa", "kappa_context_free")
                }
                for p in pairs
                if GROUND_TRUTH in p["raters"]
            }
    return summary


def _number(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def _interval(ci: dict[str, float] | None, percent: bool = True) -> str:
    if ci is None:
        return "undefined"
    # shares in percentage points, other means (F1) as they are
    scale, unit, digits = (100, " pp", 1) if percent else (1, "", 3)
    value = lambda v: f"{v * scale:+.{digits}f}"  # noqa: E731
    return f"{value(ci['estimate'])}{unit} [{value(ci['low'])}, {value(ci['high'])}]"


def _counts_table(counts: dict[str, dict[str, int]], context_free: dict[str, Any]) -> list[str]:
    """The paper's layout, context-free both over all rated features and among yes-or-maybe ones."""
    share = context_free["share"]
    rows = [
        "| arm | n | interpretable (yes) | maybe | not (no) | context-free (of all n) "
        "| context-free of yes/maybe (share, 95% CI) |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, c in counts.items():
        n_free, n_interpretable = context_free["n_context_free"][arm], context_free["n_interpretable"][arm]
        ci = share.get(arm)
        shown = "undefined" if ci is None else f"{ci['estimate']:.2f} [{ci['low']:.2f}, {ci['high']:.2f}]"
        rows.append(
            f"| {arm} | {c['n']} | {c['yes']} | {c['maybe']} | {c['no']} | {c['context_free']} "
            f"| {n_free} of {n_interpretable}: {shown} |"
        )
    return rows


def full_power_table(full: dict[str, Any]) -> list[str]:
    """Step 5 for the full-power rating: counts, the primary test and its verdict, the rest."""
    primary = full["primary_test"]
    name = primary["name"]
    other = next(n for n in full["differences"] if n != name)
    percent = {"yes_share_difference": True, "mean_f1_difference": False}
    fisher = full["fisher"]
    n_rated = ", ".join(f"{arm} {n}" for arm, n in full["n_rated"].items())
    few = ", ".join(f"{arm} {n}" for arm, n in full["n_few_activating"].items())
    return [
        "",
        f"## Full power: ground_truth on every live feature ({n_rated} rated)",
        "",
        f"Population: {full['population']}. Features active on fewer than "
        f"{full['min_activating_tokens']} scanned tokens (rated too): {few}.",
        "",
        *_counts_table(full["counts"], full["context_free_among_interpretable"]),
        "",
        f"**Primary test (named in the config before the run): {name}, transcoder - SAE = "
        f"{_interval(primary['difference'], percent.get(name, False))} (95% bootstrap CI, "
        f"{full['n_bootstrap']} resamples): verdict {primary['verdict']}** ({primary['rule']}).",
        "",
        f"Secondary: {other} = "
        f"{_interval(full['differences'][other]['difference'], percent.get(other, False))}; "
        "context-free share of yes/maybe, transcoder - SAE = "
        f"{_interval(full['context_free_among_interpretable']['share'].get('difference'))}; "
        f"Fisher exact (two-sided): yes vs maybe/no p = {fisher['interpretable']['p_value']:.3g}, "
        f"yes/maybe vs no p = {fisher['yes_or_maybe']['p_value']:.3g}, "
        f"context-free (of all n) p = {fisher['context_free']['p_value']:.3g}.",
    ]


def summary_table(summary: dict[str, Any]) -> str:
    """Step 5: the paper's table layout per rater, with the Fisher p-values."""
    lines = [f"# Blind study: {summary['profile']} ({summary['n_cards']} cards)", ""]
    for name, arm in summary["arms"].items():
        lines.append(
            f"- {name}: L{arm['layer']} {arm['kind']}, l1 {arm['l1_coefficient']:g}, "
            f"held-out L0 {arm['l0']:.1f}, FVU {_number(arm.get('fvu'))}, {arm.get('n_live', '?')} live "
            f"of {arm.get('d_sae', '?')}"
        )
    for rater, result in summary["raters"].items():
        counts, fisher = result["counts"], result["fisher"]
        lines += [
            "",
            f"## {rater} ({result['n_rated']} of {summary['n_cards']} cards rated)",
            "",
        ]
        lines += _counts_table(counts, result["context_free_among_interpretable"])
        lines += [
            "",
            f"Fisher exact (two-sided): yes vs maybe/no p = {fisher['interpretable']['p_value']:.3g}; "
            f"yes/maybe vs no p = {fisher['yes_or_maybe']['p_value']:.3g}; "
            f"context-free p = {fisher['context_free']['p_value']:.3g}.",
        ]
    if "full_power" in summary:
        lines += full_power_table(summary["full_power"])
    if "agreement" in summary:
        alpha = summary["agreement"]["krippendorff_alpha"]
        lines += [
            "",
            f"Krippendorff's alpha (nominal): rating {_number(alpha['rating'])}, "
            f"context-free {_number(alpha['context_free'])}",
        ]
        for pair in summary["agreement"]["pairs"]:
            a, b = pair["raters"]
            lines.append(
                f"- {a} vs {b}: {pair['n']} cards, agreement {_number(pair['observed'])}, "
                f"Cohen's kappa {_number(pair['kappa'])} (context-free {_number(pair['kappa_context_free'])})"
            )
    if summary["skipped_raters"]:
        lines += ["", "Skipped ratings files:"] + [
            f"- {s['file']}: {s['reason']}" for s in summary["skipped_raters"]
        ]
    return "\n".join(lines) + "\n"


COLOURS = {"yes": "#2ca02c", "maybe": "#ffbf00", "no": "#d62728"}


def study_figure(summary: dict[str, Any]) -> plt.Figure:
    """Step 5: one panel per rater; bars per arm stacked yes / maybe / no; a dot at the context-free share."""
    raters = list(summary["raters"])
    figure, axes = plt.subplots(
        1, max(1, len(raters)), figsize=(3.2 * max(1, len(raters)), 3.4), squeeze=False
    )
    for axis, rater in zip(axes[0], raters or [None], strict=False):
        if rater is None:
            axis.text(0.5, 0.5, "no ratings yet", ha="center", va="center")
            axis.set_axis_off()
            continue
        counts = summary["raters"][rater]["counts"]
        arms = list(counts)
        bottom = [0.0] * len(arms)
        for category in CATEGORIES:
            shares = [counts[a][category] / max(counts[a]["n"], 1) for a in arms]
            axis.bar(arms, shares, bottom=bottom, color=COLOURS[category], label=category)
            bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
        free = [counts[a]["context_free"] / max(counts[a]["n"], 1) for a in arms]
        axis.scatter(arms, free, color="black", marker="D", zorder=3, label="context-free")
        axis.set_ylim(0, 1)
        axis.set_title(f"{rater} (n={summary['raters'][rater]['n_rated']})", fontsize=10)
        axis.set_ylabel("share of rated features")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    figure.suptitle(f"Blind study: {summary['profile']}", fontsize=11)
    figure.tight_layout()
    return figure
