"""Operator mix: from one extra traced iteration (torch.profiler), each phase's time by operator
category, the dominant one, CUDA launches and device idle time, and how much tracing slowed the
iteration; the main phase is marked."""

from __future__ import annotations

from typing import Any

from profiler.format import count, duration, percent, ratio
from profiler.plugin import ITERATION
from profiler.runmodel import OperatorMix

from .. import figures
from ..context import ReportContext
from ..table import Cell, Column, Row, Table, unavailable
from ..view import WorkloadView
from . import register_section

TOP = 4


@register_section(anchor="operator-mix", title="Operator mix", order=90, template="operator_mix.html.j2")
def build(ctx: ReportContext) -> dict[str, Any]:
    cuda = any(m.device_unavailable or any(e.kernel_launches is not None for e in m.phases.values()) for m in _mixes(ctx))
    columns = [Column("phase", "l"), Column("dominant", "l"), Column(f"shares (top {TOP})", "l")]
    columns += [Column("CUDA launches · device idle", "l")] if cuda else []
    columns += [Column("op time", title="the phase's op time (sum over categories); wall time beneath")]
    rows: list[Row] = []
    bars = []
    for name, view in ctx.views.items():
        mix = view.operator_mix
        if mix is None or not mix.phases:
            rows.append(Row(group=name, group_href=ctx.anchor(name)))
            rows.append(Row([unavailable(view.summary.unavailable.get("operator_mix") or "not traced", colspan=len(columns), show_why=True)]))
            continue
        rows.append(Row(group=name, group_href=ctx.anchor(name), group_sub=_traced(view)))
        for phase, e in mix.phases.items():
            if phase == ITERATION:
                continue
            rows.append(Row(_cells(view, phase, cuda)))
            bars.append({"label": f"{name} · {phase}", "shares": e.share_by_category})
    return {"table": Table(columns, rows, cls="wide"), "figure": ctx.figure(figures.operator_mix(bars), "opmix")}


def _mixes(ctx: ReportContext) -> list[OperatorMix]:
    return [v.operator_mix for v in ctx.views.values() if v.operator_mix is not None]


def _traced(view: WorkloadView) -> str:
    mix = view.operator_mix
    assert mix is not None
    slower = f", {ratio(mix.traced_over_timed_e2e)} the timed E2E" if mix.traced_over_timed_e2e else ""
    return f"traced iteration {duration(mix.traced_iteration_s)}{slower} · basis: {mix.time_basis} · trace: {view.run.path.name}/{mix.trace_file}"


def _cells(view: WorkloadView, phase: str, cuda: bool) -> list[Cell]:
    mix = view.operator_mix
    assert mix is not None
    e = mix.phases[phase]
    top = sorted(e.share_by_category.items(), key=lambda kv: -kv[1])[:TOP]
    if mix.device_unavailable:
        device = Cell("unavailable", cls="l na", title=mix.device_unavailable)
    elif e.kernel_launches is not None:
        idle = f" · idle {percent(e.device_idle_fraction)}" if e.device_idle_fraction is not None else ""
        device = Cell(f"{count(e.kernel_launches)} launches{idle}", cls="l")
    else:
        device = Cell("—", cls="l na", title="no CUDA trace (CPU run)")
    total = sum(e.time_us_by_category.values()) * 1e-6
    return [
        Cell(phase, sub="main phase" if phase == view.main_phase else None, cls="l"),
        Cell(e.dominant_category or "—", cls="l"),
        Cell(", ".join(f"{k} {percent(v)}" for k, v in top) or "—", cls="l"),
        *([device] if cuda else []),
        Cell(duration(total), sub=f"wall {duration(e.wall_us * 1e-6)}" if e.wall_us is not None else None),
    ]
