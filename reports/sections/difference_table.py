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
    others = (
        sorted({b for b in (ctx.diffs["baseline"] if "baseline" in ctx.diffs else []) if isinstance(b, str) and b != ctx.baseline})
        if not ctx.diffs.empty
        else []
    )
    if others:
        title += f"; request pattern and objective against {', '.join(others)}"
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
        rows.append(Row(_cells(r, ctx.baseline)))
    return {"title": title, "table": Table(columns, rows, cls="wide")}


def _cells(r: dict[str, Any], baseline: str | None) -> list[Cell]:
    lines = tuple(f"{label}: {r[key]}" for key, label in (("lever", "lever"), ("source", "source")) if isinstance(r[key], str) and r[key])
    other = r["baseline"] if r["baseline"] != baseline else None  # the serving baseline, for request pattern and objective
    return [
        Cell(r["label"], sub=r["basis"] or None, cls="l"),
        Cell(format_value(_plain(r["baseline_value"]), r["baseline_unit"]), sub=f"({other})" if other else None),
        Cell(format_value(_plain(r["value"]), r["unit"])),
        Cell(ratio(number(r["ratio"]), number(r["ci_low"]), number(r["ci_high"])), cls="nw"),
        Cell(r["verdict"], cls=f"l nw {css_class(r['verdict'], r['better'])}"),
        Cell(r["reading"], cls="l", lines=lines),
    ]


def _plain(value: Any) -> Any:
    """A category stays text; a number that pandas holds as NaN is missing."""
    return value if isinstance(value, str) else number(value)
