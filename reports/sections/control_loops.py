"""Control loops: for workloads whose spans carry deadlines (metrics.md, VLA), the achieved rate,
deadline-miss rate, lateness, tick jitter, action staleness, inference latency and the inference
duty cycle (the declared inference phase's share of the iteration), and tick lateness in time.
Left out when no workload has deadlines."""

from __future__ import annotations

from typing import Any

from profiler.format import duration, percent, si

from .. import figures
from ..context import ReportContext
from ..table import Cell, Column, Row, Table, unavailable
from ..view import WorkloadView
from . import register_section


@register_section(anchor="control-loops", title="Control loops", order=60, template="control_loops.html.j2")
def build(ctx: ReportContext) -> dict[str, Any] | None:
    loops = {name: v for name, v in ctx.views.items() if v.summary.deadlines is not None}
    if not loops:
        return None
    columns = [
        Column("workload", "l"),
        Column("achieved rate"),
        Column("deadline-miss rate"),
        Column("lateness p50 · p99"),
        Column("tick jitter p99−p50 · std"),
        Column("action staleness (median)"),
        Column("inference latency (median)"),
        Column("inference duty cycle", title="share of the iteration spent in the declared inference phase"),
    ]
    rows = [Row(_cells(ctx, name, v)) for name, v in loops.items()]
    lateness = figures.tick_lateness({name: v.deadline_spans for name, v in loops.items() if not v.deadline_spans.empty}, ctx.colours)
    return {"table": Table(columns, rows), "figure": ctx.figure(lateness, "lateness")}


def _cells(ctx: ReportContext, name: str, view: WorkloadView) -> list[Cell]:
    d = view.summary.deadlines
    assert d is not None
    lateness = d.lateness_s
    interval = d.tick_interval_s
    return [
        Cell(name, cls="l", href=ctx.anchor(name)),
        Cell(si(d.control_rate_hz.median, "Hz") if d.control_rate_hz else "—"),
        Cell(percent(d.miss_rate.mean) if d.miss_rate and d.miss_rate.count else "—", sub=f"{d.miss_rate.count} episodes" if d.miss_rate else None),
        Cell(f"{duration(lateness.median)} · {duration(lateness.p99)}" if lateness and lateness.count else "—"),
        Cell(f"{duration(d.jitter_p99_minus_p50_s)} · {duration(interval.std) if interval else '—'}"),
        Cell(duration(d.staleness_s.median) if d.staleness_s else "—"),
        Cell(duration(d.inference_latency_s.median) if d.inference_latency_s else "—"),
        _duty_cycle(view),
    ]


def _duty_cycle(view: WorkloadView) -> Cell:
    phase = view.declaration.inference
    if phase is None:
        return unavailable("the workload declares no inference phase (Declaration.inference)", "—")
    stats = view.summary.phases.get(phase)
    if stats is None or stats.share_of_iteration is None:
        return unavailable(f"no measured span of the inference phase '{phase}'", "—")
    return Cell(percent(stats.share_of_iteration), title=f"inference phase '{phase}'")
