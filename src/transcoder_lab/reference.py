"""Reference values: does a run agree with the run this repository's results came from?

1. Headline numbers (`headline_values`), read from a profile's result files: each mechanism's
   behaviour, every matched-L0 gap of pareto_gaps.json, the splice-all CE and loss recovered, the
   blind study's primary difference, per case study its root's ground-truth label and AUROC
   (feature studies), the planted-task share (greater-than) and the median sufficiency and
   necessity over its prompts (live model), and the dictionary families' CLT-minus-PLT features
   per path, each family's planted-context share and the hop verdict.
2. Freezing (`python -m transcoder_lab.reference freeze <profile>`) writes them to
   `references/<profile>.yaml` with a tolerance each, the commit and the environment: that run
   becomes the reference. The `report` stage sets every later run's numbers beside it (`compare`):
   **agrees** when |measured - reference| <= tolerance, else **differs**; a root is compared by its
   label (the majority ground-truth label of its top activations), never by its index.
3. A tolerance is the 95% bound on the difference between two independent runs' estimates:
   - with seed replicas (the layer-2 arms): `t(0.975, n-1) * s * sqrt(2/n)` for a mean over n seeds
     with seed sd s; a single-seed gap takes the replicated arms' pooled seed sd and its degrees of
     freedom, `t * s_pooled * sqrt(2)`. Splice-all: the layer-2 transcoder's seed sd of spliced CE
     at the splice-all coefficient, taken for each of the n spliced layers and added linearly
     (`n * s`, the bound for any correlation between layers), times `t * sqrt(2)`; loss recovered
     divides it by CE(zero ablation) - CE(clean).
   - from the units of one run (where no seed replicas exist): `1.96 * sqrt(2) * SE`, with SE
     - behaviour, a mean of n per-prompt values: their sd / sqrt(n); where the sd is not recorded
       (an accuracy), the Bhatia-Davis bound `sqrt((hi - mean)(mean - lo) / n)` for values within
       [lo, hi], which for 0/1 outcomes is exactly the binomial SE;
     - a share k/n (planted task): `sqrt(p(1 - p) / n)`;
     - an AUROC over n1 target and n2 contrast tokens: Hanley and McNeil (1982);
     - a median over n prompts: `1.2533 * (IQR / 1.349) / sqrt(n)` (the median's asymptotic SE,
       sigma estimated from the IQR);
     - the blind study's primary difference and the families' pooled means: their bootstrap
       interval's half-width / 1.96;
     and never below one unit's worth (range / n), so one prompt or feature flipping is not a
     difference. These see only sampling over units: a rerun elsewhere also retrains its
     dictionaries, whose seed spread (where measured, at layer 2: 0.3x to 3x the unit SE) comes on
     top, so a "differs" on them asks for a look before it condemns a run.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from scipy import stats

from transcoder_lab import io
from transcoder_lab.environment import describe_environment

Z95 = 1.959963984540054  # the two-sided 95% normal quantile
AGREES, DIFFERS, MISSING = "agrees", "differs", "not measured"
BEHAVIOUR_RANGES = {"greater_than": (-1.0, 1.0)}  # a probability difference; the others are in [0, 1]


@dataclass
class Headline:
    """One headline number: its value, the tolerance a rerun is held to, how that was derived, and
    how many units (prompts, tokens, features, seeds) it rests on. A label has no tolerance."""

    value: float | str
    tolerance: float | None
    basis: str
    n: int | None = None


# -- standard errors and tolerances (module docstring, step 3) -------------------------------------


def two_runs(se: float, floor: float = 0.0) -> float:
    """95% bound on the difference of two independent estimates with standard error `se` each."""
    return max(Z95 * math.sqrt(2) * se, floor)


def seed_tolerance(sd: float, n: int, df: int | None = None) -> float:
    """95% bound on the difference of two n-seed means with seed sd `sd` (t on `df`, default n-1)."""
    return float(stats.t.ppf(0.975, df or n - 1) * sd * math.sqrt(2 / n))


def bounded_mean_se(mean: float, n: int, lo: float, hi: float) -> float:
    """Bhatia-Davis: a variable within [lo, hi] with this mean has variance <= (hi - mean)(mean - lo)."""
    return math.sqrt(max(0.0, (hi - mean) * (mean - lo)) / n)


def auroc_se(auroc: float, n_target: int, n_contrast: int) -> float:
    """Hanley and McNeil (1982), the AUROC's standard error over n_target and n_contrast tokens."""
    a = auroc
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    variance = (a * (1 - a) + (n_target - 1) * (q1 - a * a) + (n_contrast - 1) * (q2 - a * a)) / (
        n_target * n_contrast
    )
    return math.sqrt(max(0.0, variance))


def median_se(q25: float, q75: float, n: int) -> float:
    """The median's asymptotic standard error, sqrt(pi/2) sigma / sqrt(n), sigma = IQR / 1.349."""
    return math.sqrt(math.pi / 2) * (q75 - q25) / 1.349 / math.sqrt(n)


# -- headline numbers (step 1) ---------------------------------------------------------------------


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _behaviour(behaviour: dict[str, Any]) -> dict[str, Headline]:
    out = {}
    for mechanism, entry in behaviour.items():
        if not isinstance(entry, dict) or "n_prompts" not in entry:
            continue
        key = "probability_difference" if "probability_difference" in entry else "value"
        lo, hi = BEHAVIOUR_RANGES.get(mechanism, (0.0, 1.0))
        mean, n = float(entry[key]), int(entry["n_prompts"])
        sd = entry.get(f"{key}_sd" if key != "value" else "sd")
        if sd is not None:
            se, basis = sd / math.sqrt(n), "prompts: SE of the mean"
        else:  # a share of 0/1 outcomes (accuracy), where the bound is its exact binomial SE
            se = bounded_mean_se(mean, n, lo, hi)
            basis = f"prompts: Bhatia-Davis SE bound within [{lo:g}, {hi:g}]"
        out[f"behaviour.{mechanism}.{key}"] = Headline(mean, two_runs(se, (hi - lo) / n), basis, n)
    return out


def _gaps(gaps: dict[str, Any]) -> dict[str, Headline]:
    replicated = [g["seed_spread"] for g in gaps["gaps"] if g.get("seed_spread")]
    df = sum(s["n"] - 1 for s in replicated)
    pooled = math.sqrt(sum((s["n"] - 1) * s["sd"] ** 2 for s in replicated) / df) if df else None
    out = {}
    for gap in gaps["gaps"]:
        key = f"pareto_gap.L{gap['layer']}.{gap['arm']}"
        spread = gap.get("seed_spread")
        if spread:
            tolerance = seed_tolerance(spread["sd"], spread["n"])
            basis = f"seeds: sd {spread['sd']:.2g} over {spread['n']} seeds"
            n = spread["n"]
        elif pooled is not None:
            tolerance = seed_tolerance(pooled, 1, df)
            basis = f"seeds: one seed, pooled sd {pooled:.2g} of the replicated arms ({df} df)"
            n = 1
        else:
            continue  # no seed replicas anywhere: no tolerance can be argued
        out[key] = Headline(float(gap["gap"]), tolerance, basis, n)
    return out


def _splice_all(
    splice: dict[str, Any], pareto: list[dict[str, str]], l1: float | None
) -> dict[str, Headline]:
    """Splice-all's seed spread from the layer-2 transcoder's seeds at the splice-all coefficient."""
    if l1 is None:
        return {}
    # the profile's own recipe: the most common in the file (pareto.csv may hold another beside it)
    recipe = Counter(row.get("recipe") for row in pareto).most_common(1)[0][0] if pareto else None
    ces = [
        float(row["ce_spliced"])
        for row in pareto
        if row["kind"] == "transcoder"
        and row.get("recipe") == recipe
        and int(row["layer"]) == 2
        and not row.get("k")
        and math.isclose(float(row["l1_coefficient"]), l1)
    ]
    if len(ces) < 2:
        return {}
    n_layers, n = len(splice["layers"]), len(ces)
    sd = float(stats.tstd(ces))
    ce_tolerance = seed_tolerance(n_layers * sd, n)
    basis = f"seeds: layer-2 transcoder sd {sd:.2g} over {n} seeds, x{n_layers} layers"
    span = splice["ce_zero_ablation"] - splice["ce_clean"]
    return {
        "splice_all.ce_spliced": Headline(splice["ce_spliced"], ce_tolerance, basis, n),
        "splice_all.loss_recovered": Headline(splice["loss_recovered"], ce_tolerance / span, basis, n),
    }


def _study(summary: dict[str, Any]) -> dict[str, Headline]:
    primary = (summary.get("full_power") or {}).get("primary_test")
    if not primary:
        return {}
    difference = primary["difference"]
    se = (difference["high"] - difference["low"]) / (2 * Z95)
    n = min(summary["full_power"]["n_rated"].values())
    return {
        f"study.{primary['name']}": Headline(
            difference["estimate"], two_runs(se, 1 / n), "features: bootstrap interval over rated features", n
        )
    }


def _families(result: dict[str, Any]) -> dict[str, Headline]:
    """The dictionary families' pooled numbers (case_studies.families): the CLT's difference from the
    per-layer transcoders in features per path, each family's planted-context share, and the hop
    verdict, which a rerun must reproduce."""
    if not result.get("compared"):
        return {}
    out: dict[str, Headline] = {}
    basis = "prompts: paired bootstrap interval"

    def headline(entry: dict[str, float], n: int) -> Headline:
        se = (entry["high"] - entry["low"]) / (2 * Z95)
        return Headline(entry["mean"], two_runs(se, 1 / n), basis, n)

    hops = result["pooled"]["mean_features_per_path"]
    n = int(hops["n_prompts"])
    if "CLT" in hops:
        out["families.CLT_minus_PLT_features_per_path"] = headline(hops["CLT"]["minus_PLT"], n)
    shares = result["pooled"]["context_share"]
    for family in ("PLT", "CLT", "skip", "TopK"):
        if family in shares:
            out[f"families.{family}.context_share"] = headline(shares[family], int(shares["n_prompts"]))
    verdict = result["verdicts"]["hops"]["verdict"]
    out["families.hops_verdict"] = Headline(verdict, None, "label: equal or not")
    return out


def root_label(study: dict[str, Any]) -> str | None:
    """The root's ground-truth label: the most frequent label among its top activations."""
    labels = (study.get("dashboard") or {}).get("top_labels") or {}
    return Counter(labels).most_common(1)[0][0] if labels else None


def _case_study(study: dict[str, Any]) -> dict[str, Headline]:
    prefix, out = f"case_study.{study['name']}", {}
    selection = study.get("selection")
    if selection and selection.get("auroc_vs_contrast") is not None:
        label = root_label(study)
        if label is not None:
            out[f"{prefix}.root_label"] = Headline(label, None, "label: equal or not", None)
        n1, n2 = int(selection["n_target"]), int(selection["n_contrast"])
        auroc = float(selection["auroc_vs_contrast"])
        out[f"{prefix}.auroc_vs_contrast"] = Headline(
            auroc, two_runs(auroc_se(auroc, n1, n2), 1 / min(n1, n2)), "tokens: Hanley-McNeil SE", n1 + n2
        )
    check = study.get("planted_task_check")
    if check and check.get("n_counted"):
        n = int(check["n_counted"])
        share = int(check["n_favouring_later_years"]) / n
        se = math.sqrt(share * (1 - share) / n)
        out[f"{prefix}.planted_task_share"] = Headline(share, two_runs(se, 1 / n), "features: binomial SE", n)
    live = ((study.get("faithfulness") or {}).get("over_prompts") or {}).get("live") or {}
    for measure in ("sufficiency", "necessity"):
        summary = live.get(measure)
        if summary and summary.get("n") and summary["median"] is not None:
            n = int(summary["n"])
            se = median_se(summary["q25"], summary["q75"], n)
            out[f"{prefix}.median_{measure}"] = Headline(
                summary["median"], two_runs(se, 1 / n), "prompts: median SE from the IQR", n
            )
    return out


def headline_values(results: Path, splice_all_l1: float | None = None) -> dict[str, Headline]:
    """Every headline number found under `results` (results/<profile>), with its tolerance."""
    out: dict[str, Headline] = {}
    if (behaviour := _read(results / "behaviour.json")) is not None:
        out |= _behaviour(behaviour)
    if (gaps := _read(results / "pareto_gaps.json")) is not None:
        out |= _gaps(gaps)
    if (splice := _read(results / "splice_all.json")) is not None and (results / "pareto.csv").exists():
        with (results / "pareto.csv").open() as handle:
            out |= _splice_all(splice, list(csv.DictReader(handle)), splice_all_l1)
    if (summary := _read(results / "study" / "summary.json")) is not None:
        out |= _study(summary)
    for path in sorted((results / "case_studies").glob("*.json")):
        out |= _case_study(json.loads(path.read_text()))
    if (families := _read(results / "families.json")) is not None:
        out |= _families(families)
    return out


# -- freezing and comparing (step 2) ---------------------------------------------------------------


def reference_path(repo: Path, profile: str) -> Path:
    return repo / "references" / f"{profile}.yaml"


def freeze(repo: Path, profile: str, results: Path, splice_all_l1: float | None) -> Path:
    """Write `references/<profile>.yaml` from the run under `results` (its commit and machine from
    the environment.json the report stage wrote beside it, else this checkout's)."""
    recorded = results / "environment.json"
    environment = json.loads(recorded.read_text()) if recorded.exists() else describe_environment(repo)
    document = {
        "profile": profile,
        "commit": environment.get("commit"),
        "environment": {key: environment.get(key) for key in ("cpu", "cpu_count", "torch_threads", "python")}
        | {"torch": environment["versions"].get("torch")},
        "values": {key: asdict(value) for key, value in headline_values(results, splice_all_l1).items()},
    }
    header = (
        f"# The reference run of profile `{profile}`: written by `python -m transcoder_lab.reference freeze "
        f"{profile}`;\n# the report stage sets each later run's numbers beside these (agrees / differs).\n"
    )
    path = reference_path(repo, profile)
    io.write_text(path, header + yaml.safe_dump(document, sort_keys=False))
    return path


def load_reference(path: Path) -> dict[str, Any] | None:
    return yaml.safe_load(path.read_text()) if path.exists() else None


def agreement(reference: dict[str, Any], measured: float | str | None) -> str:
    """agrees / differs for one frozen entry (`Headline` as a dict) against this run's value."""
    if measured is None:
        return MISSING
    if reference["tolerance"] is None:
        return AGREES if measured == reference["value"] else DIFFERS
    return AGREES if abs(float(measured) - float(reference["value"])) <= reference["tolerance"] else DIFFERS


def compare(reference: dict[str, Any], results: Path, splice_all_l1: float | None) -> list[dict[str, Any]]:
    """One row per frozen headline: reference, tolerance, this run's value and the verdict."""
    current = headline_values(results, splice_all_l1)
    rows = []
    for key, frozen in reference["values"].items():
        measured = current[key].value if key in current else None
        rows.append({"quantity": key, **frozen, "measured": measured, "verdict": agreement(frozen, measured)})
    return rows


def main(argv: list[str] | None = None) -> None:
    from transcoder_lab.config import compose, load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["freeze"])
    parser.add_argument("profile")
    args = parser.parse_args(argv)
    cfg = load_config(compose([f"profile={args.profile}"]))
    repo = Path.cwd()  # the repository's root, where `dvc repro` runs the stages
    results = repo / cfg.paths.results / args.profile
    if not (results / "behaviour.json").exists():
        raise SystemExit(f"{results} holds no run of profile {args.profile!r}: run `make repro` first.")
    path = freeze(repo, args.profile, results, cfg.profile.evaluation.splice_all_l1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
