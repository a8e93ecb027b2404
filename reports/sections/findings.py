"""Findings: the differences against the baseline at a glance, a matrix of workloads by
characteristics whose cells show the verdict and the ratio ("↑ 1.74×"), coloured better or
worse, with the reading in the tooltip. Only verdicts that are findings are shown as such; no
difference is "=", anything that claims nothing is a muted dot."""

from __future__ import annotations

import math
from typing import Any

from profiler.format import format_value, ratio

from ..context import ReportContext
from ..differences import Verdict
from ..table import Cell, Column, Row, Table
from ..verdicts import css_class, is_finding, symbol
from . import register_section

NOT_COMPARED = {Verdict.UNAVAILABLE.value, Verdict.BASELINE_UNAVAILABLE.value}


@register_section(anchor="findings", title="Findings", order=20, template="findings.html.j2", first_screen=True)
def build(ctx: ReportContext) -> dict[str, Any]:
    diffs = ctx.diffs
    if diffs.empty:
        return {"table": None, "baseline": ctx.baseline}
    records = diffs.to_dict("records")
    keys = list(dict.fromkeys(r["characteristic"] for r in records))
    verdicts = {k: {r["verdict"] for r in records if r["characteristic"] == k} for k in keys}
    shown = [k for k in keys if not verdicts[k] <= NOT_COMPARED]
    by_cell = {(r["workload"], r["characteristic"]): r for r in records}
    first = {r["characteristic"]: r for r in reversed(records)}
    columns = [Column("workload", "l")] + [Column(first[k]["short"].replace("/", "/\u200b"), title=first[k]["label"]) for k in shown]
    rows = []
    for name in dict.fromkeys(r["workload"] for r in records):
        cells = [Cell(name, cls="l", href=ctx.anchor(name))]
        cells += [matrix_cell(by_cell.get((name, k))) for k in shown]
        rows.append(Row(cells))
    hidden = [first[k]["short"] for k in keys if k not in shown]
    # request-pattern and objective columns are read against the serving baseline (reports/differences.py)
    others = sorted({r["baseline"] for r in records if isinstance(r["baseline"], str) and r["baseline"] != ctx.baseline})
    against_others = sorted({r["short"] for r in records if r["baseline"] in others and r["characteristic"] in shown})
    return {
        "table": Table(columns, rows, cls="matrix"),
        "baseline": ctx.baseline,
        "hidden": hidden,
        "serving_baseline": ", ".join(others),
        "serving_columns": against_others,
    }


def number(value: Any) -> float | None:
    """A finite float from a differences cell (pandas holds a missing ratio as NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def matrix_cell(r: dict[str, Any] | None) -> Cell:
    """One verdict: symbol and ratio (or the category, or the value present) with the reading as tooltip."""
    if r is None:
        return Cell("", cls="v-na", title="not applicable: neither this workload nor the baseline has it")
    verdict, title = r["verdict"], r["reading"] + (f" Lever: {r['lever']}" if r["lever"] else "")
    cls = css_class(verdict, r["better"])
    if not is_finding(verdict):
        return Cell(symbol(verdict), cls=cls, title=f"{verdict}: {title}")
    if verdict == Verdict.DIFFERS.value:
        text = f"≠ {r['value']}"
    elif verdict == Verdict.PRESENT.value:
        text = f"+ {format_value(r['value'], r['unit'])}"
    elif number(r["ratio"]) is not None:
        text = f"{symbol(verdict)}\u00a0{ratio(number(r['ratio']))}"  # the arrow stays with its ratio
    else:
        text = f"{symbol(verdict)} {verdict}"
    return Cell(text, cls=cls, title=title)
