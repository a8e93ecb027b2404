"""Energy: NVML total-energy counter differences over the measured window (metrics.md: never
integrated power readings), per output unit, with the average power, the energy above idle and
the GPU's idle power; per phase where a phase totals long enough to be measured."""

from __future__ import annotations

from typing import Any

from profiler.format import duration, format_value, si

from ..context import ReportContext
from ..table import Cell, Column, Row, Table, unavailable
from ..view import WorkloadView
from . import register_section


@register_section(anchor="energy", title="Energy", order=80, template="energy.html.j2")
def build(ctx: ReportContext) -> dict[str, Any]:
    columns = [
        Column("workload", "l"),
        Column("energy per output"),
        Column("average power"),
        Column("measured window"),
        Column("above idle"),
        Column("idle power"),
    ]
    rows = [Row(_cells(ctx, name, v, len(columns))) for name, v in ctx.views.items()]
    phase_rows = [Row(cells) for name, v in ctx.views.items() for cells in _phase_cells(name, v)]
    idle = ctx.run.info.gpu_idle_power
    return {
        "table": Table(columns, rows),
        "phases": Table(
            [Column("workload", "l"), Column("phase", "l"), Column("time"), Column("energy"), Column("average power"), Column("per output")], phase_rows
        )
        if phase_rows
        else None,
        "idle": {"power": si(idle.idle_power_w, "W"), "window": duration(idle.window_s), "method": idle.method or ""}
        if idle.idle_power_w is not None
        else None,
        "idle_why": idle.unavailable,
    }


def _cells(ctx: ReportContext, name: str, view: WorkloadView, width: int) -> list[Cell]:
    e = view.summary.energy
    head = Cell(name, cls="l", href=ctx.anchor(name))
    if e is None:
        return [head, unavailable(view.summary.unavailable.get("energy") or "not measured", colspan=width - 1, show_why=True)]
    per_unit = format_value(e.j_per_output_unit, f"J/{view.unit}") if e.j_per_output_unit is not None else "no output units"
    return [
        head,
        Cell(per_unit, title=e.method),
        Cell(si(e.average_power_w, "W")),
        Cell(f"{si(e.energy_j, 'J')} over {duration(e.window_s)}"),
        Cell(si(e.energy_above_idle_j, "J")),
        Cell(si(e.idle_power_w, "W")),
    ]


def _phase_cells(name: str, view: WorkloadView) -> list[list[Cell]]:
    e = view.summary.energy
    if e is None:
        return []
    out = []
    for phase, p in e.phases.items():
        if p.unavailable:
            out.append([Cell(name, cls="l"), Cell(phase, cls="l"), unavailable(p.unavailable, colspan=4, show_why=True)])
            continue
        per_unit = format_value(p.j_per_output_unit, f"J/{view.unit}") if p.j_per_output_unit is not None else "—"
        out.append(
            [Cell(name, cls="l"), Cell(phase, cls="l"), Cell(duration(p.seconds)), Cell(si(p.energy_j, "J")), Cell(si(p.average_power_w, "W")), Cell(per_unit)]
        )
    return out
