"""Figures: the declared step's latency and state against position (one figure per position
unit: tokens and denoising steps never share an axis), latency CDFs, and each workload's
sampler timeline with the child's stages shaded."""

from __future__ import annotations

from typing import Any, cast

import pandas as pd

from .. import figures
from ..context import ReportContext
from . import register_section


@register_section(anchor="figures", title="Figures", order=110, template="plots.html.j2")
def build(ctx: ReportContext) -> dict[str, Any]:
    by_unit: dict[str, dict[str, pd.DataFrame]] = {}
    for name, view in ctx.views.items():
        table = view.step_position_table
        if not table.empty:
            by_unit.setdefault(view.declaration.position_unit or "position", {})[name] = table
    position = []
    for unit, tables in by_unit.items():
        position += [
            ctx.figure(figures.latency_vs_position(tables, unit, ctx.colours), "position"),
            ctx.figure(figures.state_vs_position(tables, unit, ctx.colours), "state"),
        ]
    metrics = {name: v.request_metrics for name, v in ctx.views.items() if v.request_metrics}
    cdfs = [
        ctx.figure(
            figures.latency_cdf({n: m["itl_s"] for n, m in metrics.items()}, "Inter-token (inter-delivery) latency, CDF", "ITL (ms)", ctx.colours), "cdf"
        ),
        ctx.figure(figures.latency_cdf({n: m["e2e_s"] for n, m in metrics.items()}, "End-to-end latency per iteration, CDF", "E2E (ms)", ctx.colours), "cdf"),
    ]
    cores = ctx.run.env.get("cpu_cores_logical")
    timelines, reduced = [], False
    for name, view in ctx.views.items():
        samples = view.run.samples
        last = int(cast(pd.Series, samples["t_ns"]).max()) if not samples.empty and "t_ns" in samples else 0
        bands = figures.stage_bands(view.summary.stages, last) if view.summary.stages else figures.iteration_bands(view.run.iterations)
        fig, r = figures.sampler_timeline(name, samples, bands, cores if isinstance(cores, int) else None)
        reduced |= r
        timelines.append(ctx.figure(fig, "timeline"))
    return {
        "position": [f for f in position if f],
        "cdfs": [f for f in cdfs if f],
        "timelines": [f for f in timelines if f],
        "reduced": reduced,
        "stages_from_iterations": any(not v.summary.stages for v in ctx.views.values()),
    }
