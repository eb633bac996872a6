"""Reports: measured numbers beside the profile's expected values, as Markdown."""

from __future__ import annotations

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
        else:
            target = f"{expectation.value:g} ± {expectation.tolerance:g}"
        shown = f"{value:.4f}" if isinstance(value, int | float) else "—"
        lines.append(
            f"| `{key}` | {target} | {shown} | {verdict(expectation, value)} | {expectation.source} |"
        )
    return "\n".join(lines) + "\n"
