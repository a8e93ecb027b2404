"""Differences from the baseline, in full: every characteristic of every workload with both
values, the ratio and its 95% interval, the verdict, and the reading, lever and source (the
same rows as differences.csv)."""

from __future__ import annotations

from typing import Any

from profiler.format import format_value, ratio

from ..context import ReportContext
from ..table import Cell, Column, Row, Table
from ..verdicts import css_class
from . import register_section
from .findings import number


@register_section(anchor="differences", title="Differences from the baseline", order=30, template="differences.html.j2")
def build(ctx: ReportContext) -> dict[str, Any]:
    title = f"Differences from the baseline ({ctx.baseline})" if ctx.baseline else "Differences from the baseline"
    if ctx.diffs.empty:
        return {"title": title, "table": None}
    columns = [
        Column("characteristic", "l"),
        Column("baseline"),
        Column("value"),
        Column("ratio [95% CI]"),
        Column("verdict", "l"),
        Column("reading · lever · source", "l"),
    ]
    rows: list[Row] = []
    current = None
    for r in ctx.diffs.to_dict("records"):
        if r["workload"] != current:
            current = r["workload"]
            rows.append(Row(group=current, group_href=ctx.anchor(current)))
        rows.append(Row(_cells(r)))
    return {"title": title, "table": Table(columns, rows, cls="wide")}


def _cells(r: dict[str, Any]) -> list[Cell]:
    lines = tuple(f"{label}: {r[key]}" for key, label in (("lever", "lever"), ("source", "source")) if isinstance(r[key], str) and r[key])
    return [
        Cell(r["label"], sub=r["basis"] or None, cls="l"),
        Cell(format_value(_plain(r["baseline_value"]), r["baseline_unit"])),
        Cell(format_value(_plain(r["value"]), r["unit"])),
        Cell(ratio(number(r["ratio"]), number(r["ci_low"]), number(r["ci_high"])), cls="nw"),
        Cell(r["verdict"], cls=f"l nw {css_class(r['verdict'], r['better'])}"),
        Cell(r["reading"], cls="l", lines=lines),
    ]


def _plain(value: Any) -> Any:
    """A category stays text; a number that pandas holds as NaN is missing."""
    return value if isinstance(value, str) else number(value)
