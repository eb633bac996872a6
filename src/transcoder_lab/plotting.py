"""Figures: each function takes plain data (a DataFrame or dicts) and writes PNG and SVG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # stages run headless; notebooks display the returned figure themselves
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import pandas as pd  # noqa: E402

from transcoder_lab import io  # noqa: E402

ARM_STYLE = {
    "transcoder": {"color": "#1f77b4", "marker": "o", "label": "transcoder"},
    "sae_mlp_out": {"color": "#d62728", "marker": "s", "label": "SAE (MLP out)"},
    "sae_mlp_in": {"color": "#2ca02c", "marker": "^", "label": "SAE (MLP in)"},
    "skip_transcoder": {"color": "#9467bd", "marker": "D", "label": "skip transcoder"},
    "topk_transcoder": {"color": "#ff7f0e", "marker": "v", "label": "TopK transcoder"},
    # the sets over every layer (rows without a layer): their panel plots total L0
    "splice_all": {"color": "#1f77b4", "marker": "o", "label": "per-layer transcoders, all spliced"},
    "clt": {"color": "#8c564b", "marker": "P", "label": "cross-layer transcoder"},
}


# SVG ids come from this salt instead of a random uuid, and no date is written, so the same figure
# gives the same bytes in every run (PNG from Agg already does)
SVG_REPRODUCIBLE = {"rc": {"svg.hashsalt": "transcoder-lab"}, "metadata": {"Date": None}}


def save_figure(figure: plt.Figure, stem: Path) -> list[Path]:
    """Write `stem`.png and `stem`.svg atomically and byte-reproducibly; returns the paths."""
    paths = []
    for suffix in (".png", ".svg"):
        target = Path(stem).with_suffix(suffix)
        svg = suffix == ".svg"
        with io.atomic_path(target) as tmp, plt.rc_context(SVG_REPRODUCIBLE["rc"] if svg else {}):
            metadata = SVG_REPRODUCIBLE["metadata"] if svg else None
            figure.savefig(tmp, format=suffix[1:], dpi=150, bbox_inches="tight", metadata=metadata)
        paths.append(target)
    return paths


def seed_summary(arm: pd.DataFrame) -> pd.DataFrame:
    """One arm's rows averaged over seeds, one row per sparsity setting: the mean `l0` and
    `ce_spliced`, their min and max over seeds (`l0_min`, ..., `ce_max`) and `n_seeds`."""
    setting = ["k"] if arm["k"].notna().any() else ["l1_coefficient"]
    grouped = arm.groupby(setting, dropna=False)
    out = grouped[["l0", "ce_spliced"]].mean()
    for column, short in (("l0", "l0"), ("ce_spliced", "ce")):
        out[f"{short}_min"], out[f"{short}_max"] = grouped[column].min(), grouped[column].max()
    out["n_seeds"] = grouped.size()
    return out.reset_index()


def pareto_figure(rows: pd.DataFrame, title: str, own_recipe: str | None = None) -> plt.Figure:
    """Mean L0 (log scale) against spliced cross-entropy, one panel per layer, one frontier per arm,
    the clean and zero-ablation losses as reference lines. An arm trained at several seeds (a
    `seed` column) is drawn at its seed mean with error bars spanning the seeds' min to max, in
    both L0 and CE; single-seed arms are plain points. An arm trained with a recipe other than
    `own_recipe` (a `recipe` column) is its own frontier, dotted and labelled with the recipe. Rows
    without a layer (sets spliced into every layer: a cross-layer transcoder, the per-layer
    transcoders together) get a last panel, their total L0 (summed over layers) against spliced
    cross-entropy."""
    if "recipe" not in rows:
        rows = rows.assign(recipe=own_recipe)
    layers = sorted(rows["layer"].dropna().unique())
    panels = [(layer, rows[rows["layer"] == layer]) for layer in layers]
    if rows["layer"].isna().any():
        panels.append((None, rows[rows["layer"].isna()]))
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for axis, (layer, panel) in zip(axes[0], panels, strict=True):
        for (kind, recipe), arm in panel.groupby(["kind", "recipe"], dropna=False):
            style = dict(ARM_STYLE.get(kind, {"label": kind}))
            if recipe != own_recipe and pd.notna(recipe):
                style |= {"label": f"{style['label']} ({recipe} recipe)", "linestyle": ":"}
            arm = seed_summary(arm if "seed" in arm else arm.assign(seed=0)).sort_values("l0")
            n_seeds = int(arm["n_seeds"].min())
            if n_seeds > 1:
                style["label"] = f"{style['label']} ({n_seeds} seeds: mean, min-max)"
                errors = {
                    "xerr": [arm["l0"] - arm["l0_min"], arm["l0_max"] - arm["l0"]],
                    "yerr": [arm["ce_spliced"] - arm["ce_min"], arm["ce_max"] - arm["ce_spliced"]],
                }
                axis.errorbar(arm["l0"], arm["ce_spliced"], **errors, linewidth=1.5, markersize=6,
                              capsize=2, elinewidth=1, **style)  # fmt: skip
            else:
                axis.plot(arm["l0"], arm["ce_spliced"], linewidth=1.5, markersize=6, **style)
            for _, row in arm.iterrows():
                point = (row["l0"], row["ce_spliced"])
                label = f"k={row['k']:g}" if pd.notna(row.get("k")) else f"{row['l1_coefficient']:g}"
                axis.annotate(label, point, fontsize=6, textcoords="offset points", xytext=(3, 3))
        axis.axhline(
            panel["ce_clean"].iloc[0], color="black", linestyle="--", linewidth=1, label="clean model"
        )
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(ticker.NullFormatter())
        if layer is None:
            axis.set(xlabel="total L0 (features active per token, summed over layers)")
            axis.set_title("every layer spliced at once (point labels: L1 coefficient)")
        else:
            axis.set(xlabel="mean L0 (features active per token)")
            axis.set_title(f"layer {int(layer)} (point labels: L1 coefficient, or TopK k)")
        axis.set(ylabel="next-token cross-entropy (nats)")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure
