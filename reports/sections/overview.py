"""Overview: one row per workload, in its own units, built from its declaration and metrics:
request latency, step latency, throughput in output units per second, the control loop where
there are deadlines, the main phase's bound class, state growth, energy per output unit."""

from __future__ import annotations

from typing import Any

from profiler.format import duration, format_value, percent, rate, si
from profiler.runmodel import StateShape, Stats, Status, WorkloadSummary

from ..context import ReportContext
from ..table import Cell, Column, Row, Table, unavailable
from ..view import WorkloadView
from . import register_section


@register_section(anchor="overview", title="Overview", order=10, template="overview.html.j2", first_screen=True)
def build(ctx: ReportContext) -> dict[str, Any]:
    loops = any(v.summary.deadlines is not None for v in ctx.views.values())
    columns = [
        Column("workload", "l"),
        Column("status", "l"),
        Column("latency / request", title="median latency of the declared request phase"),
        Column("latency / step", title="median latency of the declared step phase"),
        Column("throughput", title="median output units per second per request"),
        *([Column("control rate · deadline-miss rate", title="achieved control rate (median) and share of deadlines missed")] if loops else []),
        Column("bound class (main phase)", "l", title="of the declared step, else the request phase"),
        Column("state growth", title="per-request state added per position of the step"),
        Column("energy / output", title="NVML energy over the measured window per output unit"),
    ]
    rows = [Row(_cells(ctx, name, view, loops)) for name, view in ctx.views.items()]
    return {"table": Table(columns, rows, cls="overview")}


def _cells(ctx: ReportContext, name: str, view: WorkloadView, loops: bool) -> list[Cell]:
    s = view.summary
    ok = s.status == Status.OK
    chars = ctx.chars.get(name, {})
    return [
        Cell(name, sub="baseline" if name == ctx.baseline else None, cls="l", href=ctx.anchor(name)),
        Cell(s.status.value, cls="l" if ok else "l v-bad"),
        _median(s.metrics.request_latency_s, duration, s.unavailable.get("request_latency_s")),
        _step(view),
        _median(s.metrics.output_units_per_s, lambda v: rate(v, view.unit), s.unavailable.get("output_units_per_s")),
        *([_control(s)] if loops else []),
        _bound(view),
        _char(chars, "state_per_token"),
        _energy(s, view.unit),
    ]


def _median(stats: Stats | None, fmt: Any, why: str | None) -> Cell:
    if stats is None or stats.median is None:
        return unavailable(why or "not measured", "—")
    return Cell(fmt(stats.median))


def _step(view: WorkloadView) -> Cell:
    step = view.declaration.step
    if step is None:
        return unavailable("the workload declares no step phase", "no step")
    phase = view.summary.phases.get(step)
    if phase is None or phase.latency_s.median is None:
        return unavailable(f"no measured span of the step phase '{step}'", "—")
    return Cell(duration(phase.latency_s.median), title=f"step phase '{step}'")


def _control(s: WorkloadSummary) -> Cell:
    d = s.deadlines
    if d is None:
        return Cell("—", cls="na", title="no deadlines")
    hz = si(d.control_rate_hz.median, "Hz") if d.control_rate_hz else "—"
    missed = percent(d.miss_rate.mean) if d.miss_rate and d.miss_rate.count else "—"
    return Cell(f"{hz} · {missed} missed")


def _bound(view: WorkloadView) -> Cell:
    work = view.main_work
    if work is None or work.bound is None:
        why = view.summary.unavailable.get("work") or f"no bound class for the main phase '{view.main_phase}'"
        return unavailable(why, "—")
    return Cell(work.bound.value, cls="l", title=f"main phase '{view.main_phase}'" + (f": {work.bound_basis}" if work.bound_basis else ""))


def _char(chars: dict[str, Any], key: str) -> Cell:
    value = chars.get(key)
    if value is None:
        return Cell("—", cls="na")
    if value.value is None:
        return unavailable(value.why, "—")
    shape = StateShape(value.state_shape).label if value.state_shape else None  # state growth: how it grows, declared
    return Cell(format_value(value.value, value.unit), sub=shape)


def _energy(s: WorkloadSummary, unit: str) -> Cell:
    if s.energy is None or s.energy.j_per_output_unit is None:
        return unavailable(s.unavailable.get("energy") or "not measured", "n/a")
    return Cell(format_value(s.energy.j_per_output_unit, f"J/{unit}"))
