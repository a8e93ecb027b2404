"""Stages and stragglers: where a staged iteration spends its time, how long its synchronous batch
waits for its slowest requests, and what its memory holds by kind.

For workloads that declare a breakdown (Declaration.breakdown: an RL step's rollout, scoring,
training and weight sync), whose step spans mark a synchronous batch (`finished`), or whose spans
measure memory by kind (`memory_<kind>_bytes`): the summary's `breakdown`, `batch_tail` and
`memory.by_kind` (profiler/characterize/sync_batch.py), each stage's bound class from the counted
work, and the published figures they are read against (shared/guide/domain-facts.md section 6).
Left out when no workload has any of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from profiler.format import duration, nbytes, percent, sig
from profiler.plugin import Trait
from profiler.runmodel import Stats

from ..context import ReportContext
from ..figures import LAYOUT, label
from ..table import Cell, Column, Row, Table, unavailable
from ..view import WorkloadView
from . import register_section

PUBLISHED_SHARES = (
    "Published RL step breakdowns: rollout 84%, training 14%, weight update 2% on one model; 63%, 31%, 6% on another "
    "(Seer, arXiv 2511.14617, Table 1); about 80% generation (OpenRLHF), over 90% (APRIL)."
)
PUBLISHED_TAIL = "Published: the slowest 10% of requests take up to half of the rollout (Seer, arXiv 2511.14617)."
ZERO_BYTES_PER_PARAM = 16
"""Mixed-precision Adam's model state per parameter (ZeRO, Rajbhandari et al. 2020: 2 + 2 + 12 bytes)."""
MODEL_STATE = ("weights", "gradients", "optimizer_state")


@register_section(anchor="stages", title="Stages and stragglers", order=57, template="stages.html.j2")
def build(ctx: ReportContext) -> dict[str, Any] | None:
    views = {n: v for n, v in ctx.views.items() if v.summary.breakdown or v.summary.batch_tail or v.summary.memory.by_kind}
    if not views:
        return None
    training = any(Trait.TRAINING in v.declaration.traits for v in views.values())
    staged = {n: v for n, v in views.items() if v.summary.breakdown}
    tails = {n: v for n, v in views.items() if v.summary.batch_tail}
    memory = {n: v for n, v in views.items() if v.summary.memory.by_kind}
    return {
        "stages": _stage_table(ctx, staged) if staged else None,
        "stage_figure": ctx.figure(_stage_figure(staged, ctx.colours), "stages") if staged else None,
        "published_shares": PUBLISHED_SHARES if training else None,
        "tails": _tail_table(ctx, tails) if tails else None,
        "tail_sentences": [_tail_sentence(n, v) for n, v in tails.items()],
        "published_tail": PUBLISHED_TAIL if training and tails else None,
        "occupancy_figures": [f for f in (ctx.figure(_occupancy_figure(n, v, ctx.colours.get(n)), "occupancy") for n, v in tails.items()) if f],
        "memory": _memory_table(ctx, memory) if memory else None,
        "memory_sentences": [s for s in (_memory_sentence(n, v) for n, v in memory.items()) if s],
    }


def _share(s: Stats) -> str:
    if not s.count or s.median is None:
        return "—"
    lo, hi = s.ci95_median or (None, None)
    return percent(s.median) + (f" [{percent(lo)}, {percent(hi)}]" if lo is not None and hi is not None and s.count > 1 else "")


def _stage_table(ctx: ReportContext, views: dict[str, WorkloadView]) -> Table:
    columns = [
        Column("workload", "l"),
        Column("stage", "l"),
        Column("share of iteration", title="median over measured iterations, with its 95% interval"),
        Column("tokens/s", title="the stage's summed `tokens` over its summed time"),
        Column("bound class", "l", title="from the counted work of the stage's spans (see Work against the ceilings)"),
        Column("MFU"),
        Column("MBU", title="achieved bytes/s / copy bandwidth, on the stage's basis (see Work): counted traffic (upper bound) unless it is a decode step"),
    ]
    rows = []
    for name, v in views.items():
        work = v.work.phases if v.work else {}
        for stage, entry in v.summary.breakdown.items():
            w = work.get(stage)
            bound = w.bound.value if w and w.bound else None
            why = (
                (v.work.ceiling_exceeded.get(stage) if v.work else None) or (w.bound_basis if w else None) or v.summary.unavailable.get("work") or "not counted"
            )
            rows.append(
                Row(
                    [
                        Cell(name, cls="l", href=ctx.anchor(name)),
                        Cell(stage, cls="l"),
                        Cell(_share(entry.share)),
                        Cell(sig(entry.tokens_per_s) if entry.tokens_per_s is not None else "—"),
                        Cell(bound, cls="l") if bound else (unavailable(why, show_why=False) if stage != "other" else Cell("—")),
                        Cell(percent(w.mfu) if w and w.mfu is not None else "—"),
                        Cell(percent(w.mbu) if w and w.mbu is not None else "—"),
                    ]
                )
            )
    return Table(columns, rows)


def _stage_figure(views: dict[str, WorkloadView], colours: dict[str, str]) -> go.Figure:
    fig = go.Figure()
    stages = list(dict.fromkeys(s for v in views.values() for s in v.summary.breakdown))
    names = [label(n) for n in views]
    for stage in stages:
        shares = [(v.summary.breakdown[stage].share.median or 0.0) if stage in v.summary.breakdown else 0.0 for v in views.values()]
        fig.add_bar(
            y=names, x=[100 * s for s in shares], name=label(stage), orientation="h", hovertemplate="%{y}: %{x:.1f}%<extra>" + label(stage) + "</extra>"
        )
    layout = {**LAYOUT, "height": 140 + 40 * len(views), "legend": {**LAYOUT["legend"], "traceorder": "normal"}}
    fig.update_layout(**layout, barmode="stack", title="Share of an iteration by stage (median)")
    fig.update_xaxes(title="% of iteration time", range=[0, 100])
    return fig


def _tail_table(ctx: ReportContext, views: dict[str, WorkloadView]) -> Table:
    columns = [
        Column("workload", "l"),
        Column("requests", title="per iteration (synchronous batch)"),
        Column("batch time", title="first step start to last finish, median"),
        Column("tail", title="median request's finish to the last finish, median over iterations"),
        Column("tail share", title="tail / batch time, with its 95% interval"),
        Column("slowest 10%", title="time only the slowest 10% (at least one request) still run / batch time"),
        Column("occupancy", title="time-weighted sequences in the batch / peak, whole batch"),
        Column("occupancy in tail", title="the same after the median finish"),
        Column("iterations"),
    ]
    rows = []
    for name, v in views.items():
        t = v.summary.batch_tail
        assert t is not None  # the views with a tail only
        rows.append(
            Row(
                [
                    Cell(name, cls="l", href=ctx.anchor(name)),
                    Cell(f"{t.requests.median:.0f}" if t.requests.median is not None else "—"),
                    Cell(duration(t.batch_s.median)),
                    Cell(duration(t.tail_s.median)),
                    Cell(_share(t.tail_share)),
                    Cell(_share(t.p90_tail_share)),
                    Cell(_share(t.occupancy)),
                    Cell(_share(t.tail_occupancy)),
                    Cell(str(t.iterations)),
                ]
            )
        )
    return Table(columns, rows)


def _tail_sentence(name: str, v: WorkloadView) -> str:
    t = v.summary.batch_tail
    assert t is not None  # the views with a tail only
    few = " With fewer than 3 iterations the interval is not a claim." if t.iterations < 3 else ""
    n = f"{t.requests.median:.0f}" if t.requests.median is not None else "its"
    share, occupancy = t.tail_share.median, t.tail_occupancy.median
    if share is None:
        return f"{name}: the tail is not measurable (each batch took no time between its first step and its last finish)."
    if occupancy is None:
        return f"{name}: all {n} requests of a batch finished at the same step: no straggler tail.{few}"
    return (
        f"{name}: half of its {n} requests are done after {percent(1 - share)} of the batch time; the rest take the remaining "
        f"{percent(share)} ({duration(t.tail_s.median)}, {t.tail_steps.median:.0f} steps), while the batch runs {percent(occupancy)} full.{few}"
    )


def _occupancy_figure(name: str, v: WorkloadView, colour: str | None) -> go.Figure | None:
    step = v.declaration.step
    m = v.measured
    if step is None or m.empty or "finished" not in m:
        return None
    s = m.loc[(m["phase"] == step) & m["finished"].notna()].sort_values("start_ns")
    if s.empty:
        return None
    fig = go.Figure()
    dashes = ("solid", "dash", "dot", "dashdot", "longdash")
    for i, (iteration, g) in enumerate(s.groupby("iteration", sort=True)):
        t = (g["end_ns"].to_numpy() - g["start_ns"].iloc[0]) / 1e9
        fig.add_scatter(
            x=np.concatenate([[0.0], t]),
            y=np.concatenate([[g["sequences"].iloc[0]], g["sequences"].to_numpy(dtype=float)]),
            mode="lines",
            line=dict(shape="vh", color=colour, width=1.5, dash=dashes[i % len(dashes)]),
            opacity=1.0 if i == 0 else 0.45,
            name=f"iteration {int(iteration)}",
            hovertemplate="%{x:.3f} s: %{y} in the batch<extra>iteration " + str(int(iteration)) + "</extra>",
        )
    fig.update_layout(**LAYOUT, title=f"{label(name)}: requests in the batch over the batch's time (one line per iteration)")
    fig.update_xaxes(title="time since the batch's first step (s)")
    fig.update_yaxes(title="requests in the batch", rangemode="tozero")
    return fig


def _memory_table(ctx: ReportContext, views: dict[str, WorkloadView]) -> Table:
    columns = [
        Column("workload", "l"),
        Column("kind", "l"),
        Column("peak bytes", title="peak over the measured spans, measured from the tensors"),
        Column("per parameter", title="bytes / the model's parameter count (facts: param_count)"),
    ]
    rows = []
    for name, v in views.items():
        params = v.summary.facts.get("param_count")
        for kind, value in v.summary.memory.by_kind.items():
            per = f"{value / params:.2f} B" if params else "—"
            rows.append(Row([Cell(name, cls="l", href=ctx.anchor(name)), Cell(kind.replace("_", " "), cls="l"), Cell(nbytes(value)), Cell(per)]))
    return Table(columns, rows)


def _memory_sentence(name: str, v: WorkloadView) -> str | None:
    kinds = v.summary.memory.by_kind
    params = v.summary.facts.get("param_count")
    if not params or not all(k in kinds for k in MODEL_STATE):
        return None
    state = sum(kinds[k] for k in MODEL_STATE)
    return (
        f"{name}: weights, gradients and optimizer state hold {state / params:.2f} bytes per parameter "
        f"({nbytes(state)} for {params:,} parameters); mixed-precision Adam holds {ZERO_BYTES_PER_PARAM} in the ZeRO accounting "
        f"(2 weights + 2 gradients + 12 fp32 master, momentum, variance; Rajbhandari et al. 2020). "
        f"At {ZERO_BYTES_PER_PARAM} bytes per parameter a 7B model's state alone is {nbytes(7.0e9 * ZERO_BYTES_PER_PARAM)}."
    )
