"""Scaling: growth with position within each run (linear fits of the per-position medians of
state and step latency, in the workload's declared position unit) and batching across sweep
points that differ only in batch size."""

from __future__ import annotations

from typing import Any

from profiler.format import duration, format_value, nbytes, ratio, sig
from profiler.runmodel import Fit, RatioCI

from .. import figures
from ..context import ReportContext
from ..table import Cell, Column, Row, Table
from ..view import WorkloadView
from . import register_section


@register_section(anchor="scaling", title="Scaling", order=100, template="scaling.html.j2")
def build(ctx: ReportContext) -> dict[str, Any]:
    growth = [Row(_growth_cells(ctx, name, v, phase)) for name, v in ctx.views.items() for phase in v.summary.scaling]
    batch_rows, curves = [], {}
    for group in ctx.run.sweeps.values():
        for b in group.batch:
            batch_rows.append(
                Row(
                    [
                        Cell(b.point, cls="l"),
                        Cell(b.base, cls="l"),
                        Cell(f"{b.batch_size} vs {b.base_batch_size}"),
                        _ratio(b.throughput_gain),
                        _ratio(b.e2e_growth),
                    ]
                )
            )
            curves.setdefault(b.base, [(b.base_batch_size, 1.0)]).append((b.batch_size, b.throughput_gain.ratio))
    return {
        "growth": Table(
            [Column("workload", "l"), Column("phase", "l"), Column("position unit", "l"), Column("state per position"), Column("step latency per position")],
            growth,
        )
        if growth
        else None,
        "batching": Table(
            [Column("point", "l"), Column("against", "l"), Column("batch"), Column("throughput gain [95% CI]"), Column("E2E growth [95% CI]")], batch_rows
        )
        if batch_rows
        else None,
        "figure": ctx.figure(figures.batching(curves), "batching") if curves else None,
    }


def _growth_cells(ctx: ReportContext, name: str, view: WorkloadView, phase: str) -> list[Cell]:
    fits = view.summary.scaling[phase]
    unit = view.declaration.position_unit if phase == view.declaration.step and view.declaration.position_unit else "position"
    short = "token" if unit.startswith("token") else unit
    return [
        Cell(name, cls="l", href=ctx.anchor(name)),
        Cell(phase, sub="declared step" if phase == view.declaration.step else None, cls="l"),
        Cell(unit, cls="l"),
        _fit(fits.state_bytes_per_position, f"B/{short}"),
        _fit(fits.latency_s_per_position, f"s/{short}"),
    ]


def _fit(fit: Fit | None, unit: str) -> Cell:
    if fit is None:
        return Cell("—", cls="na", title="no such samples on this phase")
    return Cell(
        format_value(fit.slope, unit),
        sub=f"r² {sig(fit.r2)} · {fit.points} positions",
        title=f"intercept {nbytes(fit.intercept) if unit.startswith('B/') else duration(fit.intercept)}",
    )


def _ratio(r: RatioCI) -> Cell:
    lo, hi = r.ci95 or (None, None)
    return Cell(ratio(r.ratio, lo, hi), sub=f"n = {r.n[0]}, {r.n[1]}" if r.n else None)
