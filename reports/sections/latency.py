"""Latency: per workload, the median of each request metric (vLLM's definitions, metrics.md) with
its 95% interval, and p90 and p99 on a second line; the declared request and step phases first."""

from __future__ import annotations

from typing import Any

from profiler.format import duration, duration_ci, rate, sig
from profiler.runmodel import Stats

from ..context import ReportContext
from ..table import Cell, Column, Row, Table, unavailable
from ..view import WorkloadView
from . import register_section

METRICS = (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("itl_s", "ITL"), ("e2e_s", "E2E"))


@register_section(anchor="latency", title="Latency", order=50, template="latency.html.j2")
def build(ctx: ReportContext) -> dict[str, Any]:
    columns = [
        Column("workload", "l"),
        Column("request", title="the declared request phase"),
        Column("step", title="the declared step phase"),
        *(Column(label) for _, label in METRICS),
        Column("throughput", title="output units per second per request"),
    ]
    rows = [Row(_cells(ctx, name, v)) for name, v in ctx.views.items()]
    return {"table": Table(columns, rows, cls="wide")}


def _cells(ctx: ReportContext, name: str, view: WorkloadView) -> list[Cell]:
    s, m = view.summary, view.summary.metrics
    step = view.declaration.step
    step_stats = s.phases[step].latency_s if step and step in s.phases else None
    step_why = "the workload declares no step phase" if step is None else f"no measured span of '{step}'"
    return [
        Cell(name, sub=f"{s.loop.measured_iters} iterations" if s.loop else s.status.value, cls="l", href=ctx.anchor(name)),
        latency_cell(m.request_latency_s, s.unavailable.get("request_latency_s")),
        latency_cell(step_stats, step_why),
        *(latency_cell(getattr(m, key), s.unavailable.get(key)) for key, _ in METRICS),
        rate_cell(m.output_units_per_s, view.unit, s.unavailable.get("output_units_per_s")),
    ]


def latency_cell(stats: Stats | None, why: str | None) -> Cell:
    """'12.3 ms [12.1, 12.5]' with 'p90 13.0 ms · p99 14.1 ms' beneath: the interval in the median's unit."""
    if stats is None or stats.median is None:
        return unavailable(why or "not measured", show_why=True)
    lo, hi = stats.ci95_median or (None, None)
    return Cell(
        duration_ci(stats.median, lo, hi),
        sub=f"p90 {duration(stats.p90)} · p99 {duration(stats.p99)}",
        title=f"median of {stats.count} samples [95% CI]; mean {duration(stats.mean)}, IQR {duration(stats.iqr)}",
    )


def rate_cell(stats: Stats | None, unit: str, why: str | None) -> Cell:
    """'66.4 token/s [65.1, 67.0]' with p90 and p99 beneath."""
    if stats is None or stats.median is None:
        return unavailable(why or "not measured", show_why=True)
    interval = f" [{sig(stats.ci95_median[0])}, {sig(stats.ci95_median[1])}]" if stats.ci95_median else ""
    return Cell(
        rate(stats.median, unit) + interval, sub=f"p90 {rate(stats.p90, unit)} · p99 {rate(stats.p99, unit)}", title=f"median of {stats.count} requests"
    )
