"""Unblinding and the study's summary: every rater's table, tests, intervals and agreement.

1. Raters: every `*.json` in the ratings directory (humans; a file made on another packet, or an
   invalid one, is skipped and listed under "skipped_raters" with the reason), plus the
   ground-truth rater's ratings when given (organism profiles).
2. Unblind (`packet.unblind`): the key's SHA-256 must match the packet's record; card -> arm.
3. Per rater (`rater_summary`): its rated cards split by arm, the counts (paper's layout), Fisher
   tests and bootstrap intervals (transcoder_lab.study.stats), and whether it rated every card.
4. With two or more raters: Cohen's kappa for every pair and Krippendorff's alpha over all; the
   pairs that include the ground-truth rater are also listed as "ground_truth_vs_humans".
5. A Markdown table per rater (`summary_table`) and a figure (`study_figure`): per rater, each
   arm's yes / maybe / no shares as stacked bars, with the context-free share marked.
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
    }


def analyse(
    packet: Packet,
    key: dict[str, Any],
    raters: list[RatingsFile],
    n_bootstrap: int,
    seed: int,
    skipped: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Steps 3-4 on an unblinded key; returns the summary (JSON-ready)."""
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


def _number(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def summary_table(summary: dict[str, Any]) -> str:
    """Step 5: the paper's table layout per rater, with the Fisher p-values."""
    lines = [f"# Blind study: {summary['profile']} ({summary['n_cards']} cards)", ""]
    for name, arm in summary["arms"].items():
        lines.append(
            f"- {name}: L{arm['layer']} {arm['kind']}, l1 {arm['l1_coefficient']:g}, "
            f"held-out L0 {arm['l0']:.1f}"
        )
    for rater, result in summary["raters"].items():
        counts, fisher = result["counts"], result["fisher"]
        lines += [
            "",
            f"## {rater} ({result['n_rated']} of {summary['n_cards']} cards rated)",
            "",
            "| arm | interpretable (yes) | maybe | not (no) | context-free |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {arm} | {c['yes']} | {c['maybe']} | {c['no']} | {c['context_free']} |"
            for arm, c in counts.items()
        ]
        lines += [
            "",
            f"Fisher exact (two-sided): yes vs maybe/no p = {fisher['interpretable']['p_value']:.3g}; "
            f"yes/maybe vs no p = {fisher['yes_or_maybe']['p_value']:.3g}; "
            f"context-free p = {fisher['context_free']['p_value']:.3g}.",
        ]
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
