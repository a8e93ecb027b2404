"""Serving under load (metrics.md "Serving under load"): for every workload run under a `load:`
block, how its requests fared, read from summary.json's `serving` record, requests.parquet (one row
per request) and engine.parquet (the engine's scheduler samples).

- Two tables: the load and its outcome (pattern, burstiness, offered rate, requests by end state,
  throughput, SLO attainment, goodput, QoE, the load generator's own error), and latency from
  arrival with the engine's state (queueing, TTFT, TPOT, ITL, E2E; concurrency, KV occupancy).
- Per workload (at most MAX_TIMELINES, sweep points only when nothing else ran under a load): every
  measured request as a bar in three segments (queueing, scheduled to first token, decoding), the
  engine's batch (running, waiting) and KV occupancy beneath on the same time axis.
- Distributions: per-request QoE (Andes), TTFT and TPOT as ECDFs, each against its stated objective.
- Rate sweeps (points that differ in `load.rate`): latency percentiles and goodput against the
  offered rate, the knee (Kneedle on p90 TTFT) and the highest rate meeting the attainment target.

Every figure and table states the SLO and QoE parameters it is judged against. Left out when no
workload has a `serving` record. The figures are built here (plotly, in reports/figures.py's style:
labels escaped, a colour per workload shared with every other figure of the page).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from profiler.characterize.serving import FINISHED, NS, andes_qoe, interpolate_max_rate, knee, meets_slo, per_request
from profiler.format import count, duration, nbytes, percent, rate, sig
from profiler.runmodel import Serving, Stats

from .. import figures
from ..context import ReportContext
from ..figures import LAYOUT, label
from ..table import Cell, Column, Row, Table, unavailable
from . import register_section

RATE_KEY = "load.rate"
MAX_TIMELINES = 4
"""Request timelines drawn at most (one figure each); the table lists every workload."""
MAX_BARS = 2000
"""Requests drawn per timeline at most (the first, by arrival); every request stays in requests.parquet."""
MAX_LINES = 12
"""Workloads per distribution figure at most."""
QOE_LEVEL = 0.9
"""Andes compares serving capacity at the share of requests with QoE >= 0.9."""
NOT_FINISHED = {"failed": ("crimson", "failed"), "timed_out": ("darkorange", "timed out"), "lost": ("black", "lost (the engine died)")}
SEGMENTS = (
    ("queue", "queueing (arrival → scheduled)", "rgba(150,150,150,0.85)"),
    ("first", "scheduled → first token", "rgba(31,119,180,0.9)"),
    ("decoding", "decoding (first → last token)", "rgba(44,160,44,0.75)"),
)
PERCENTILES = (("median", "p50", "solid"), ("p90", "p90", "dash"), ("p99", "p99", "dot"))


@dataclass
class Served:
    """One workload under a load, as this section reads it."""

    name: str
    serving: Serving
    table: pd.DataFrame
    """per_request(requests.parquet): every request with queue_s, ttft_s, tpot_s, e2e_s, tokens, meets_slo and qoe."""
    engine: pd.DataFrame
    qoe: tuple[float, float] | None
    """(expected TTFT s, tokens/s) the QoE is judged against; None when the run does not say."""
    point: dict[str, Any] | None
    group: str | None

    @property
    def measured(self) -> pd.DataFrame:
        t = self.table
        return t.loc[t["measured"].astype(bool)] if not t.empty else t

    @property
    def slo_text(self) -> str:
        return f"SLO {self.serving.slo}"

    @property
    def qoe_text(self) -> str:
        return f"QoE {self.serving.qoe_stated}"


@register_section(anchor="serving", title="Serving under load", order=55, template="serving.html.j2")
def build(ctx: ReportContext) -> dict[str, Any] | None:
    if not any(v.summary.serving is not None for v in ctx.views.values()):
        return None
    problems: list[str] = []
    served: dict[str, Served] = {}
    missing: dict[str, str] = {}
    for name, view in ctx.views.items():
        if view.summary.serving is None:
            if _has_load(ctx, name):
                missing[name] = f"no serving record: the workload {view.status} before its requests were summarised"
            continue
        served[name] = served_workload(ctx, name, view.run)
        problems += [p for p in view.run.problems if p not in ctx.problems]  # read here first: not yet listed with the others
    outcome = Table(
        [
            Column("workload", "l"),
            Column("pattern", "l", title="the load: block's arrival process (rate as configured), or the trace replayed"),
            Column("burstiness", title="coefficient of variation of the gaps between measured sends (1 for Poisson)"),
            Column("offered", title="achieved send rate of the measured requests: (sent − 1) / (last send − first send)"),
            Column("requests", title="finished / measured (warmup and cooldown excluded); failed, timed out and lost beneath"),
            Column("throughput", title="finished measured requests and their output tokens per second of the measured window"),
            Column("SLO attainment", title="share of measured requests meeting every stated SLO (the SLO in each cell's tooltip)"),
            Column("goodput", title="requests meeting every SLO per second of the measured window (DistServe)"),
            Column("QoE", title=f"Andes QoE: median over finished measured requests, and the share at or above {QOE_LEVEL:g}"),
            Column("sender error", title="the load generator's achieved − scheduled send time, p99 (max beneath)"),
        ],
        [Row(_outcome_cells(ctx, s)) for s in served.values()] + [_missing_row(ctx, n, why, 10) for n, why in missing.items()],
        cls="wide",
    )
    latency = Table(
        [
            Column("workload", "l"),
            Column("queueing delay", title="engine scheduled − arrival, p50 · p99; its median share of E2E beneath"),
            Column("TTFT", title="first token − arrival (queueing included), p50 · p99"),
            Column("TPOT", title="(E2E − TTFT) / (output tokens − 1), p50 · p99"),
            Column("ITL", title="every gap between consecutive tokens, p50 · p99"),
            Column("E2E", title="last token − arrival, p50 · p99"),
            Column("concurrency", title="requests running in the engine, median · max over the measured window (waiting beneath)"),
            Column("KV occupancy", title="peak share of the engine's KV cache held in the measured window"),
        ],
        [Row(_latency_cells(ctx, s)) for s in served.values()] + [_missing_row(ctx, n, why, 8) for n, why in missing.items()],
        cls="wide",
    )
    sweeps, sweep_figures = _sweeps(ctx, served)
    shown = _timeline_workloads(served)
    timelines = [ctx.figure(request_timeline(s, ctx.colours.get(s.name)), "serving-timeline") for s in shown]
    left_out = [n for n in served if n not in {s.name for s in shown}]
    return {
        "outcome": outcome,
        "latency": latency,
        "judged": _judged(served),
        "timelines": [f for f in timelines if f],
        "timelines_left_out": left_out,
        "max_bars": MAX_BARS if any(len(s.measured) > MAX_BARS for s in shown) else None,
        "distributions": [f for f in _distributions(ctx, served) if f],
        "sweeps": sweeps,
        "sweep_figures": [f for f in sweep_figures if f],
        "problems": problems,
    }


# ---------------------------------------------------------------- reading


def served_workload(ctx: ReportContext, name: str, run: Any) -> Served:
    """One workload under a load, read for this section: its requests with their latencies, SLO verdict and QoE."""
    s = run.summary.serving
    requests = run.requests
    table = per_request(requests) if not requests.empty else pd.DataFrame()
    qoe = _qoe_parameters(ctx, name, s)
    if not table.empty:
        table["meets_slo"] = meets_slo(table, _SLO(*(s.slo_values.get(k) for k in ("ttft_s", "tpot_s", "e2e_s"))))
        table["qoe"] = np.nan
        if qoe is not None:
            done = table["measured"].astype(bool) & (table["status"] == FINISHED) & (table["tokens"] > 0)
            table.loc[done, "qoe"] = [
                andes_qoe((np.asarray(t, dtype=float) - a) / NS, qoe[0], qoe[1])
                for t, a in zip(table.loc[done, "token_ns"], table.loc[done, "arrival_ns"], strict=True)
            ]
    sweep = run.summary.sweep
    return Served(name, s, table, run.engine, qoe, dict(sweep.point) if sweep else None, sweep.group if sweep else None)


@dataclass(frozen=True)
class _SLO:
    """The stated SLO values, as meets_slo reads them."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None


def _entry(ctx: ReportContext, name: str) -> dict[str, Any] | None:
    """The workload's entry of config.resolved.yaml (sweep points are entries of their own)."""
    entries = ctx.run.config.get("workloads") if isinstance(ctx.run.config, dict) else None
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    return None


def _has_load(ctx: ReportContext, name: str) -> bool:
    entry = _entry(ctx, name)
    return bool(entry and entry.get("load"))


def _qoe_parameters(ctx: ReportContext, name: str, s: Serving) -> tuple[float, float] | None:
    """(expected TTFT, tokens/s) from the resolved config, else from the stated text (the summary keeps only that)."""
    entry = _entry(ctx, name) or {}
    qoe = ((entry.get("objective") or {}) if isinstance(entry.get("objective"), dict) else {}).get("qoe") or {}
    ttft, speed = qoe.get("expected_ttft_s"), qoe.get("tokens_per_s")
    if isinstance(ttft, (int, float)) and isinstance(speed, (int, float)) and ttft > 0 and speed > 0:
        return float(ttft), float(speed)
    m = re.fullmatch(r"expected TTFT ([0-9.eE+-]+) s, ([0-9.eE+-]+) tokens/s", s.qoe_stated.strip())
    try:
        return (float(m.group(1)), float(m.group(2))) if m else None
    except ValueError:
        return None


# ---------------------------------------------------------------- tables


def _name_cell(ctx: ReportContext, s: Served) -> Cell:
    return Cell(s.name, cls="l", href=ctx.anchor(s.name), sub=f"window {duration(s.serving.window_s)}" if s.serving.window_s else None)


def _missing_row(ctx: ReportContext, name: str, why: str, width: int) -> Row:
    return Row([Cell(name, cls="l", href=ctx.anchor(name)), unavailable(why, colspan=width - 1, show_why=True)])


def _pattern(load: dict[str, Any]) -> Cell:
    p = load.get("pattern")
    r = load.get("rate")
    if p == "trace":
        trace = str(load.get("trace") or "")
        scales = []
        if load.get("time_scale", 1) != 1:
            scales.append(f"times ÷ {sig(load['time_scale'])}")
        if load.get("token_scale", 1) != 1:
            scales.append(f"tokens × {sig(load['token_scale'])}")
        return Cell(f"trace {Path(trace).name}", cls="l", sub=" · ".join(scales) or None, title=trace)
    if p == "closed":
        return Cell(f"closed loop · {count(load.get('concurrency'))} in flight", cls="l", sub="each request sent when one ends")
    text = f"{p} · {rate(r, 'req')}" if isinstance(r, (int, float)) else str(p)
    sub = f"gamma shape k {sig(load['burstiness'])}" if p == "gamma" and load.get("burstiness") else None
    return Cell(text, cls="l", sub=sub)


def _status_counts(s: Served) -> tuple[int, dict[str, int], str]:
    """(measured requests, their count per end state, where the counts come from)."""
    m = s.measured
    if not m.empty:
        return len(m), {str(k): int(v) for k, v in m["status"].value_counts().items()}, "measured requests, from requests.parquet"
    return s.serving.measured_requests, dict(s.serving.status_counts), "all requests, warmup included (requests.parquet unreadable)"


def _outcome_cells(ctx: ReportContext, s: Served) -> list[Cell]:
    v = s.serving
    closed = v.load.get("pattern") == "closed"
    if v.arrival_cv is not None:
        ci = getattr(v, "arrival_cv_ci95", None)
        interval = f"[{sig(ci[0])}, {sig(ci[1])}]" if ci else None
        cv = Cell(
            sig(v.arrival_cv),
            sub=interval,
            title="CV of the achieved gaps between measured sends (1 for Poisson)" + ("; 95% bootstrap interval beneath" if ci else ""),
        )
    else:
        cv = unavailable("a closed loop has no arrival process: each user sends when its last request ends" if closed else "fewer than 3 measured sends")
    offered = (
        Cell(rate(v.offered_rate_rps, "req"), sub="paced by the engine" if closed else None)
        if v.offered_rate_rps
        else unavailable("fewer than 3 measured sends")
    )
    measured, counts, source = _status_counts(s)
    finished = counts.get(FINISHED, 0)
    others = [f"{counts.get(k, 0)} {word}" for k, word in (("failed", "failed"), ("timed_out", "timed out"), ("lost", "lost"))]
    others += [f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if k not in (FINISHED, "failed", "timed_out", "lost")]
    every = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in v.status_counts.items())
    requests = Cell(
        f"{finished} / {measured}",
        sub=" · ".join(others),
        title=f"finished / measured ({source}); all {v.requests} requests incl. warmup and cooldown: {every}",
        cls="v-bad" if finished < measured else "",
    )
    throughput = (
        Cell(rate(v.throughput_rps, "req"), sub=rate(v.output_tokens_per_s, _unit(ctx, s)), title=f"over the measured window of {duration(v.window_s)}")
        if v.throughput_rps is not None
        else unavailable("no measured window (no measured request ended)", show_why=True)
    )
    target = v.attainment_target
    attainment = (
        Cell(
            percent(v.slo_attainment),
            sub=f"target {percent(target)}",
            title=f"SLO: {v.slo}; share of the {measured} measured requests meeting every one (failed and timed out meet none)",
            cls="v-good" if v.slo_attainment >= target else "v-bad",
        )
        if v.slo_attainment is not None
        else unavailable("no measured request", show_why=True)
    )
    goodput = (
        Cell(rate(v.goodput_rps, "req"), title=f"requests meeting every SLO ({v.slo}) per second of the measured window")
        if v.goodput_rps is not None
        else unavailable("no measured window (no measured request ended)", show_why=True)
    )
    qoe = (
        Cell(
            sig(v.qoe.median),
            sub=f"{percent(v.qoe_at_least_0_9)} ≥ {QOE_LEVEL:g}",
            title=f"Andes QoE, {v.qoe_stated}; {v.qoe.count} finished measured requests",
        )
        if v.qoe.count and v.qoe.median is not None
        else unavailable(f"no finished measured request ({v.qoe_stated})", show_why=True)
    )
    return [_name_cell(ctx, s), _pattern(v.load), cv, offered, requests, throughput, attainment, goodput, qoe, _sender(s)]


def _sender(s: Served) -> Cell:
    v = s.serving
    if v.load.get("pattern") == "closed":
        return unavailable("a closed loop sends when a request ends: there is no schedule to miss")
    p99, worst = v.sender.get("p99_s"), v.sender.get("max_s")
    if p99 is None:
        return unavailable("the load generator recorded no sends")
    title = f"achieved − scheduled send time, p50 {duration(v.sender.get('p50_s'))}; the sender's CPU: {percent(v.sender.get('cpu_share'))} of a core"
    m = s.measured
    if not m.empty and m["sent_ns"].notna().any():
        late = ((m["sent_ns"] - m["arrival_ns"]) / NS).dropna().to_numpy(dtype=float)
        title += f"; recorded sent − arrival over measured requests: p50 {duration(float(np.median(late)))}, max {duration(float(late.max()))}"
    return Cell(duration(p99), sub=f"max {duration(worst)}", title=title)


def _pair(stats: Stats, why: str) -> Cell:
    if not stats.count or stats.median is None:
        return unavailable(why, show_why=True)
    return Cell(
        f"{duration(stats.median)} · {duration(stats.p99)}",
        sub=f"p90 {duration(stats.p90)}",
        title=f"p50 · p99 of {stats.count} samples; mean {duration(stats.mean)}, max {duration(stats.max)}",
    )


def _latency_cells(ctx: ReportContext, s: Served) -> list[Cell]:
    v = s.serving
    none = "no finished measured request"
    queue = _pair(v.queue_s, none)
    if v.queue_share is not None and queue.cls != "na":
        queue.sub = f"{percent(v.queue_share)} of E2E · p90 {duration(v.queue_s.p90)}"
    tpot = _pair(v.tpot_s, "no finished measured request with 2 or more tokens")
    if v.concurrency.count and v.concurrency.median is not None:
        conc = Cell(
            f"{count(v.concurrency.median)} · {count(v.concurrency.max)}",
            sub=f"waiting max {count(v.waiting.max)}" if v.waiting.count else None,
            title=f"{v.concurrency.count} engine samples; waiting median {count(v.waiting.median)}",
        )
    else:
        conc = unavailable("no engine sample in the measured window", show_why=True)
    if v.kv_occupancy_max is not None:
        preempted = f"; preempted at most {count(v.preempted_max)}" if v.preempted_max is not None else ""
        view = ctx.views.get(s.name)
        counts = (view.summary.facts.get("kv_bytes_used_counts") if view is not None else None) or "pages held"
        kv = Cell(percent(v.kv_occupancy_max), sub=f"of {nbytes(v.kv_bytes_total)}", title=f"kv_bytes_used / kv_bytes_total, peak; counts {counts}{preempted}")
    else:
        kv = unavailable("the engine reports no KV cache capacity", show_why=True)
    itl = _pair(v.itl_s, f"no finished measured request with 2 or more {_unit(ctx, s)}s")
    return [_name_cell(ctx, s), queue, _pair(v.ttft_s, none), tpot, itl, _pair(v.e2e_s, none), conc, kv]


def _unit(ctx: ReportContext, s: Served) -> str:
    view = ctx.views.get(s.name)
    return view.unit if view is not None else "token"


def _judged(served: dict[str, Served]) -> list[str]:
    """One line per distinct objective: which workloads are judged against which SLO and QoE parameters."""
    by: dict[str, list[str]] = {}
    for s in served.values():
        v = s.serving
        by.setdefault(f"SLO {v.slo} (attainment target {percent(v.attainment_target)}); QoE {v.qoe_stated}", []).append(s.name)
    if len(by) == 1:
        return [f"Judged against: {next(iter(by))}."]
    return [f"{', '.join(names)}: judged against {objective}." for objective, names in by.items()]


# ---------------------------------------------------------------- the request timeline


def _timeline_workloads(served: dict[str, Served]) -> list[Served]:
    """The workloads outside sweeps first; when every one is a sweep point, the last (highest) point of each sweep."""
    alone = [s for s in served.values() if s.group is None and not s.table.empty]
    if alone:
        return alone[:MAX_TIMELINES]
    last: dict[str, Served] = {}
    for s in served.values():
        if not s.table.empty:
            last[s.group or s.name] = s
    return list(last.values())[:MAX_TIMELINES]


def request_timeline(s: Served, colour: str | None = None) -> go.Figure | None:
    """Every measured request as a horizontal bar (queueing, scheduled → first token, decoding) against
    seconds from the first measured arrival; requests that did not finish drawn apart, by end state; the
    engine's running and waiting requests and its KV occupancy beneath, on the same axis."""
    m = s.measured
    if m.empty or m["arrival_ns"].notna().sum() == 0:
        return None
    m = m.loc[m["arrival_ns"].notna()].sort_values("arrival_ns").head(MAX_BARS)
    t0 = float(m["arrival_ns"].min())
    first = m["token_ns"].map(lambda t: t[0] if t is not None and len(t) else np.nan).astype(float)
    last = m["token_ns"].map(lambda t: t[-1] if t is not None and len(t) else np.nan).astype(float)
    arrival, scheduled = m["arrival_ns"].astype(float), m["scheduled_ns"].astype(float)
    y = np.arange(len(m))
    engine = s.engine
    has_engine = not engine.empty and "t_ns" in engine
    has_kv = bool(has_engine and "kv_bytes_total" in engine and "kv_bytes_used" in engine and (engine["kv_bytes_total"] > 0).any())
    rows = 1 + int(has_engine) + int(has_kv)
    bar_px = int(min(700, max(180, 7 * len(m))))
    heights = [bar_px] + [140] * (rows - 1)
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.04, row_heights=heights)
    columns = [
        m["index"].to_numpy(),
        m["input_tokens"].to_numpy() if "input_tokens" in m else np.full(len(m), np.nan),
        m["tokens"].to_numpy(),
        (m["queue_s"] * 1e3).to_numpy(),
        (m["ttft_s"] * 1e3).to_numpy(),
        (m["e2e_s"] * 1e3).to_numpy(),
        m["status"].astype(str).to_numpy(),
        np.where(m["meets_slo"].astype(bool), "meets", "misses"),
    ]
    custom = np.empty((len(m), len(columns)), dtype=object)  # numbers stay numbers for the hover's formats
    for i, values in enumerate(columns):
        custom[:, i] = [label(v) if isinstance(v, str) else v for v in values.tolist()]
    hover = (
        "request %{customdata[0]} (%{customdata[6]}, %{customdata[7]} the SLO)<br>input %{customdata[1]} · output %{customdata[2]} tokens"
        "<br>queueing %{customdata[3]:.3g} ms · TTFT %{customdata[4]:.3g} ms · E2E %{customdata[5]:.3g} ms<extra>%{fullData.name}</extra>"
    )
    done = (m["status"] == FINISHED).to_numpy()
    starts = {"queue": arrival, "first": scheduled, "decoding": first}
    ends = {"queue": scheduled, "first": first, "decoding": last}
    for key, name, fill in SEGMENTS:
        x0, x1 = starts[key].to_numpy(), ends[key].to_numpy()
        ok = done & np.isfinite(x0) & np.isfinite(x1)
        if ok.any():
            fig.add_trace(
                go.Bar(
                    y=y[ok],
                    x=(x1[ok] - x0[ok]) / NS,
                    base=(x0[ok] - t0) / NS,
                    orientation="h",
                    marker=dict(color=fill, line_width=0),
                    name=name,
                    customdata=custom[ok],
                    hovertemplate=hover,
                ),
                row=1,
                col=1,
            )
    missed = done & ~m["meets_slo"].astype(bool).to_numpy() & np.isfinite(last.to_numpy())
    if missed.any():
        fig.add_trace(
            go.Scatter(
                x=(last.to_numpy()[missed] - t0) / NS,
                y=y[missed],
                mode="markers",
                marker=dict(symbol="line-ns-open", size=9, color="crimson", line=dict(width=2)),
                name=f"finished, missed the SLO ({label(s.serving.slo)})",
                customdata=custom[missed],
                hovertemplate=hover,
            ),
            row=1,
            col=1,
        )
    latest = np.nanmax(np.r_[last.to_numpy(), m["finished_ns"].astype(float).to_numpy(), scheduled.to_numpy(), arrival.to_numpy()])
    for status, (fill, word) in NOT_FINISHED.items():
        mask = (m["status"] == status).to_numpy()
        if not mask.any():
            continue
        own = np.fmax(np.fmax(last.to_numpy(), m["finished_ns"].astype(float).to_numpy()), scheduled.to_numpy())[mask]
        own = np.where(np.isfinite(own), own, arrival.to_numpy()[mask])
        end = own if status == "failed" else np.full(mask.sum(), latest)  # timed out or lost: in flight until the driver stopped
        fig.add_trace(
            go.Bar(
                y=y[mask],
                x=np.maximum(end - arrival.to_numpy()[mask], 1e6) / NS,
                base=(arrival.to_numpy()[mask] - t0) / NS,
                orientation="h",
                marker=dict(color="rgba(0,0,0,0)", line=dict(color=fill, width=1.5), pattern=dict(shape="x", fgcolor=fill, size=6)),
                name=f"{word} (arrival → end)",
                customdata=custom[mask],
                hovertemplate=hover,
            ),
            row=1,
            col=1,
        )
    fig.update_yaxes(title_text="request (by arrival)", autorange="reversed", showticklabels=len(m) <= 40, row=1, col=1)
    if has_engine:
        _engine_rows(fig, s, engine, t0, has_kv, colour)
    window = s.serving.window_s
    if window:
        fig.add_vrect(x0=0, x1=window, fillcolor="rgba(0,120,255,0.06)", line_width=0, layer="below")
    top, bottom = 50, 150
    height = sum(heights) + top + bottom + 40 * (rows - 1)
    below = -70 / (height - top - bottom)  # the legend under the axis title, however many rows it takes
    fig.update_layout(
        title=dict(text=f"{label(s.name)}: every measured request from its arrival (judged against {label(s.serving.slo)})", y=1 - 10 / height, yanchor="top"),
        barmode="overlay",
        bargap=0.15,
        **{**LAYOUT, "height": height, "margin": dict(l=70, r=20, t=top, b=bottom), "legend": dict(orientation="h", y=below, x=0, yanchor="top")},
    )
    fig.update_xaxes(title_text="seconds from the first measured arrival (shaded: the measured window)", row=rows, col=1)
    return fig


def _engine_rows(fig: go.Figure, s: Served, engine: pd.DataFrame, t0: float, has_kv: bool, colour: str | None) -> None:
    """The engine's samples over the requests' lifetime (warmup requests included): batch, then KV occupancy."""
    t = s.table
    starts = t["arrival_ns"].astype(float)
    ends = pd.concat([t["finished_ns"].astype(float), starts + t["e2e_s"].astype(float) * NS], axis=1).max(axis=1)
    lo, hi = starts.min(), ends.max()
    e = engine.loc[(engine["t_ns"] >= lo) & (engine["t_ns"] <= hi)] if np.isfinite(lo) and np.isfinite(hi) else engine
    if e.empty:
        e = engine
    x = ((e["t_ns"].astype(float) - t0) / NS).to_numpy()
    for col, name, style in (("running", "running (batch)", dict(color=colour or figures.COLOURS[0])), ("waiting", "waiting", dict(color="grey", dash="dot"))):
        if col in e and e[col].notna().any():
            xs, ys, _ = figures.minmax_downsample(x, e[col].to_numpy(dtype=float))
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line_shape="hv", line=style, name=f"engine: {name}"), row=2, col=1)
    if "preempted" in e and (e["preempted"].fillna(0) > 0).any():
        xs, ys, _ = figures.minmax_downsample(x, e["preempted"].to_numpy(dtype=float))
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line_shape="hv", line=dict(color="crimson"), name="engine: preempted"), row=2, col=1)
    fig.update_yaxes(title_text="requests", title_font=dict(size=11), rangemode="tozero", row=2, col=1)
    if has_kv:
        occ = (e["kv_bytes_used"].astype(float) / e["kv_bytes_total"].astype(float) * 100).to_numpy()
        xs, ys, _ = figures.minmax_downsample(x, occ)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line_shape="hv", line=dict(color="purple"), name="KV occupancy (% of the cache)"), row=3, col=1)
        total = float(e["kv_bytes_total"].max())
        fig.update_yaxes(title_text=f"KV % of {nbytes(total)}", title_font=dict(size=11), rangemode="tozero", row=3, col=1)


# ---------------------------------------------------------------- distributions


def _distributions(ctx: ReportContext, served: dict[str, Served]) -> list[Any]:
    pool = [s for s in served.values() if s.group is None and not s.table.empty]
    pool += [s for s in served.values() if s.group is not None and not s.table.empty]
    pool = pool[:MAX_LINES]
    if not pool:
        return []
    return [
        ctx.figure(qoe_ecdf(pool, ctx.colours), "serving-qoe"),
        ctx.figure(slo_ecdf(pool, "ttft_s", "TTFT", ctx.colours), "serving-ttft"),
        ctx.figure(slo_ecdf(pool, "tpot_s", "TPOT", ctx.colours), "serving-tpot"),
    ]


def _ecdf(values: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps of the empirical CDF of `values` over `total` requests (those missing never arrive: the curve ends below 1)."""
    v = np.sort(values[np.isfinite(values)])
    p = np.arange(1, v.size + 1) / max(total, 1)
    x, y, _ = figures.minmax_downsample(np.r_[v[0], v], np.r_[0.0, p])
    return x, y


def _stated(pool: list[Served], text: Any) -> tuple[str, bool]:
    """(the objective text shared by every workload, or a pointer to the legend; whether it is shared)."""
    texts = {text(s) for s in pool}
    return (next(iter(texts)), True) if len(texts) == 1 else ("each workload's in the legend", False)


def qoe_ecdf(pool: list[Served], colours: dict[str, str] | None = None) -> go.Figure | None:
    """Per-request Andes QoE of the finished measured requests, an ECDF per workload, with the 0.9 level."""
    shared, same = _stated(pool, lambda s: s.serving.qoe_stated)
    fig = go.Figure()
    for s in pool:
        m = s.measured
        values = m.loc[m["status"] == FINISHED, "qoe"].to_numpy(dtype=float)
        if not np.isfinite(values).any():
            continue
        x, y = _ecdf(values, int(np.isfinite(values).sum()))
        name = label(s.name) if same else f"{label(s.name)} ({label(s.serving.qoe_stated)})"
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line_shape="hv", line=dict(color=(colours or {}).get(s.name)), name=name))
    if not fig.data:
        return None
    fig.add_vline(x=QOE_LEVEL, line=dict(color="grey", dash="dash"), annotation_text=f"QoE {QOE_LEVEL:g}", annotation_position="top left")
    fig.update_layout(
        title=f"QoE (Andes) per finished measured request, ECDF ({label(shared)})",
        xaxis_title="QoE (1 = every token on the reader's expected timeline)",
        yaxis_title="fraction ≤ x",
        showlegend=True,
        **LAYOUT,
    )
    fig.update_xaxes(range=[-0.02, 1.02])
    return fig


def slo_ecdf(pool: list[Served], column: str, word: str, colours: dict[str, str] | None = None) -> go.Figure | None:
    """`column` (ttft_s or tpot_s) of every measured request as an ECDF per workload, over all measured requests
    (one that did not finish never arrives, so the curve ends at the share that finished), with its SLO as a line."""
    key = column
    shared, same = _stated(pool, lambda s: s.serving.slo)
    fig = go.Figure()
    lines: dict[float, list[str]] = {}
    for s in pool:
        m = s.measured
        done = m.loc[m["status"] == FINISHED, column].to_numpy(dtype=float)
        if not np.isfinite(done).any():
            continue
        x, y = _ecdf(done * 1e3, len(m))
        name = label(s.name) if same else f"{label(s.name)} ({label(s.serving.slo)})"
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line_shape="hv", line=dict(color=(colours or {}).get(s.name)), name=name))
        limit = s.serving.slo_values.get(key)
        if limit is not None:
            lines.setdefault(float(limit), []).append(s.name)
    if not fig.data:
        return None
    for limit, names in lines.items():
        who = "" if same else f" ({', '.join(label(n) for n in names)})"
        fig.add_vline(x=limit * 1e3, line=dict(color="crimson", dash="dash"), annotation_text=f"SLO {duration(limit)}{who}", annotation_position="top right")
    judged = f"SLO {shared}" if lines else f"no {word} SLO stated ({label(shared)})"
    fig.update_layout(
        title=f"{word} from arrival per measured request, ECDF (judged against {judged})",
        xaxis_title=f"{word} (ms)",
        yaxis_title="fraction of measured requests ≤ x",
        showlegend=True,
        **LAYOUT,
    )
    return fig


# ---------------------------------------------------------------- rate sweeps


def _sweeps(ctx: ReportContext, served: dict[str, Served]) -> tuple[Table | None, list[Any]]:
    groups: dict[str, list[Served]] = {}
    for s in served.values():
        if s.group is not None and s.point and RATE_KEY in s.point:
            groups.setdefault(s.group, []).append(s)
    if not groups:
        return None, []
    rows, figs = [], []
    for group, points in groups.items():
        curve = sweep_curve(points)
        rows.append(Row(_sweep_cells(group, curve)))
        figs += [ctx.figure(sweep_latency(group, curve), "serving-sweep"), ctx.figure(sweep_goodput(group, curve), "serving-goodput")]
    columns = [
        Column("sweep", "l"),
        Column("offered rates", "l", title="the points' offered rates (what the x axes of the sweep figures show)"),
        Column("knee (p90 TTFT)", title="Kneedle on p90 TTFT against the offered rate"),
        Column("highest rate meeting the target", title="the offered rate where SLO attainment crosses the target (interpolate_max_rate)"),
        Column("judged against", "l"),
    ]
    return Table(columns, rows, cls="wide"), figs


@dataclass
class SweepCurve:
    points: list[Served]
    rates: list[float]
    axis: str
    """What the rates are: the achieved offered rate, or the configured one when a point has none."""
    knee: dict[str, Any]
    max_rate: dict[str, Any]
    slo: str
    slo_values: dict[str, float | None]
    target: float
    qoe: str


def sweep_curve(points: list[Served]) -> SweepCurve:
    """The points of one rate sweep in rate order, with the knee and the highest rate meeting the target."""
    achieved = all(p.serving.offered_rate_rps for p in points)
    key = (lambda p: float(p.serving.offered_rate_rps)) if achieved else (lambda p: float(p.point[RATE_KEY]))
    points = sorted(points, key=key)
    rates = [key(p) for p in points]
    axis = "offered rate (achieved sends, req/s)" if achieved else "offered rate (configured load.rate, req/s)"
    first = points[0].serving
    with_attainment = [(r, p.serving.slo_attainment) for r, p in zip(rates, points, strict=True) if p.serving.slo_attainment is not None]
    max_rate = interpolate_max_rate([r for r, _ in with_attainment], [a for _, a in with_attainment], first.attainment_target)
    p90 = [p.serving.ttft_s.p90 if p.serving.ttft_s.p90 is not None else np.nan for p in points]
    return SweepCurve(points, rates, axis, knee(rates, p90), max_rate, first.slo, dict(first.slo_values), first.attainment_target, first.qoe_stated)


def max_rate_kind(result: dict[str, Any]) -> str | None:
    """'interpolated' between two points, 'measured' (a point's own rate) or 'at least' (the highest rate swept
    still meets the target); None when no rate meets it (profiler.characterize.serving.interpolate_max_rate)."""
    return result.get("kind") if result.get("rate") is not None else None


def _sweep_cells(group: str, c: SweepCurve) -> list[Cell]:
    configured = ", ".join(sig(float(p.point[RATE_KEY])) for p in c.points)
    offered = Cell(", ".join(sig(r) for r in c.rates) + " req/s", cls="l", sub=f"load.rate {configured}", title=c.axis)
    if c.knee.get("rate") is not None:
        knee_cell = Cell(rate(c.knee["rate"], "req"), sub=f"p90 TTFT {duration(c.knee['latency'])}", title=c.knee["basis"])
    else:
        knee_cell = unavailable(c.knee.get("basis"), show_why=True)
    kind = max_rate_kind(c.max_rate)
    if kind is None:
        best = unavailable(c.max_rate.get("basis"), show_why=True)
    else:
        text = ("≥ " if kind == "at least" else "") + f"{rate(c.max_rate['rate'], 'req')} ({'measured' if kind == 'at least' else kind})"
        best = Cell(text, sub=c.max_rate["basis"], title=f"where SLO attainment crosses the {percent(c.target)} target")
    judged = Cell(f"SLO {c.slo}", cls="l", sub=f"target {percent(c.target)} attainment")
    return [Cell(group, cls="l"), offered, knee_cell, best, judged]


def _hover(c: SweepCurve) -> list[str]:
    return [f"{label(p.name)}: load.rate {sig(float(p.point[RATE_KEY]))} req/s, offered {sig(r)} req/s" for p, r in zip(c.points, c.rates, strict=True)]


def sweep_latency(group: str, c: SweepCurve) -> go.Figure | None:
    """p50, p90 and p99 of TTFT and E2E against the offered rate, the SLOs as lines, the knee marked."""
    if len(c.points) < 2:
        return None
    fig = make_subplots(rows=1, cols=2, subplot_titles=("TTFT from arrival", "E2E from arrival"), horizontal_spacing=0.1)
    text = _hover(c)
    for col, field in ((1, "ttft_s"), (2, "e2e_s")):
        for i, (stat, word, dash) in enumerate(PERCENTILES):
            values = [getattr(getattr(p.serving, field), stat) for p in c.points]
            ys = np.array([np.nan if v is None else v * 1e3 for v in values])
            fig.add_trace(
                go.Scatter(
                    x=c.rates,
                    y=ys,
                    mode="lines+markers",
                    line=dict(color=figures.COLOURS[i], dash=dash),
                    name=word,
                    legendgroup=word,
                    showlegend=col == 1,
                    text=text,
                    hovertemplate="%{text}<br>" + word + " %{y:.3g} ms<extra></extra>",
                ),
                row=1,
                col=col,
            )
        limit = c.slo_values.get(field)
        if limit is not None:
            fig.add_hline(y=limit * 1e3, line=dict(color="crimson", dash="dash"), annotation_text=f"SLO {duration(limit)}", row=1, col=col)
    if c.knee.get("rate") is not None:
        fig.add_trace(
            go.Scatter(
                x=[c.knee["rate"]],
                y=[c.knee["latency"] * 1e3],
                mode="markers+text",
                marker=dict(symbol="star", size=14, color="black"),
                text=["knee"],
                textposition="top left",
                name="knee (Kneedle on p90 TTFT)",
            ),
            row=1,
            col=1,
        )
    fig.update_xaxes(title_text=c.axis)
    fig.update_yaxes(title_text="latency (ms)", rangemode="tozero")
    fig.update_layout(
        title=f"{label(group)}: latency against offered load (SLO {label(c.slo)})", **{**LAYOUT, "height": 420, "margin": dict(l=60, r=20, t=80, b=50)}
    )
    return fig


def sweep_goodput(group: str, c: SweepCurve) -> go.Figure | None:
    """Throughput and goodput against the offered rate (the offered rate itself as the ideal), SLO attainment on
    the right axis with its target, and the highest rate meeting the target."""
    if len(c.points) < 2:
        return None
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    text = _hover(c)
    series = (
        ("throughput", [p.serving.throughput_rps for p in c.points], dict(color=figures.COLOURS[0])),
        (f"goodput ({label(c.slo)})", [p.serving.goodput_rps for p in c.points], dict(color=figures.COLOURS[2])),
    )
    for name, values, style in series:
        ys = [np.nan if v is None else v for v in values]
        fig.add_trace(
            go.Scatter(x=c.rates, y=ys, mode="lines+markers", line=style, name=name, text=text, hovertemplate="%{text}<br>%{y:.3g} req/s<extra></extra>"),
            secondary_y=False,
        )
    top = max(c.rates)
    fig.add_trace(
        go.Scatter(x=[0, top], y=[0, top], mode="lines", line=dict(color="grey", dash="dot"), name="served = offered", hoverinfo="skip"), secondary_y=False
    )
    attainment = [np.nan if p.serving.slo_attainment is None else p.serving.slo_attainment * 100 for p in c.points]
    fig.add_trace(
        go.Scatter(
            x=c.rates,
            y=attainment,
            mode="lines+markers",
            line=dict(color="crimson", width=1.2),
            marker=dict(symbol="square", size=6),
            name="SLO attainment (right axis)",
            text=text,
            hovertemplate="%{text}<br>attainment %{y:.3g}%<extra></extra>",
        ),
        secondary_y=True,
    )
    fig.add_trace(  # a trace, not a line shape: a shape's label would stretch the left axis to 90
        go.Scatter(
            x=[0, top],
            y=[c.target * 100] * 2,
            mode="lines",
            line=dict(color="crimson", dash="dash", width=1),
            name=f"attainment target {percent(c.target)}",
            hoverinfo="skip",
        ),
        secondary_y=True,
    )
    kind = max_rate_kind(c.max_rate)
    if kind is not None:
        fig.add_vline(
            x=c.max_rate["rate"],
            line=dict(color="black", dash="dash", width=1),
            annotation_text=f"{rate(c.max_rate['rate'], 'req')} ({kind})",
            annotation_position="top left",
        )
    fig.update_xaxes(title_text=c.axis, rangemode="tozero")
    fig.update_yaxes(title_text="requests per second", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="SLO attainment (%)", range=[0, 105], tickmode="array", tickvals=[0, 25, 50, 75, 100], secondary_y=True, showgrid=False)
    fig.update_layout(
        title=f"{label(group)}: goodput against offered load (SLO {label(c.slo)}; target {percent(c.target)} attainment)", **{**LAYOUT, "height": 400}
    )
    return fig
