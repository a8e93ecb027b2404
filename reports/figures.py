"""Plotly figures from run data, built apart from the page (HTA's habit); sections decide what to
plot, these functions how.

User strings (workload names, phases) are HTML-escaped before they reach plotly, whose labels
accept a subset of HTML, and enter hover text as data (`text`), never as part of a template;
plotly's JSON embedding escapes '<' and '/' on its own. Long series are reduced with min-max
bucketing for display; the raw data stays in the run directory.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from profiler.characterize.analysis import missed_deadlines
from profiler.runmodel import Stage

MAX_POINTS = 4000
LAYOUT: dict[str, Any] = dict(template="plotly_white", height=360, margin=dict(l=60, r=20, t=50, b=50), legend=dict(orientation="h", y=-0.2))
COLOURS = qualitative.Plotly
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "triangle-down", "pentagon", "hexagon", "star-triangle-up", "hourglass")


def colour_map(names: Any) -> dict[str, str]:
    """One colour per workload, in run order, used by every figure so a workload keeps its colour."""
    return {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(names)}


def _colour(colours: dict[str, str] | None, name: str) -> str | None:
    return (colours or {}).get(name)


def label(text: str) -> str:
    return html.escape(str(text))


def minmax_downsample(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray, bool]:
    """Keep the min and max of each bucket, so spikes survive; returns (x, y, reduced)."""
    n = len(x)
    if n <= max_points:
        return x, y, False
    buckets = max_points // 2
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi <= lo:
            continue
        seg = y[lo:hi]
        if np.all(np.isnan(seg)):
            keep.append(lo)
            continue
        a, b = lo + int(np.nanargmin(seg)), lo + int(np.nanargmax(seg))
        keep.extend(sorted({a, b}))
    idx = np.asarray(keep)
    return x[idx], y[idx], True


# ---------------------------------------------------------------- against position (the declared step)


def latency_vs_position(tables: dict[str, pd.DataFrame], unit: str, colours: dict[str, str] | None = None) -> go.Figure | None:
    """Median step latency per position, one line per workload (each table: its declared step only)."""
    fig = go.Figure()
    for name, t in tables.items():
        if t.empty:
            continue
        t = t.sort_values("position")
        c = _colour(colours, name)
        fig.add_trace(
            go.Scatter(x=t["position"], y=t["median_s"] * 1e3, mode="lines+markers", marker=dict(size=4, color=c), line=dict(color=c), name=label(name))
        )
    if not fig.data:
        return None
    fig.update_layout(
        title=f"Per-step latency against position ({label(unit)}; median over measured iterations)",
        xaxis_title=f"position ({label(unit)})",
        yaxis_title="latency (ms)",
        showlegend=True,
        **LAYOUT,
    )
    return fig


def state_vs_position(tables: dict[str, pd.DataFrame], unit: str, colours: dict[str, str] | None = None) -> go.Figure | None:
    """State alive after each step per position, in the binary prefix that suits the largest state."""
    with_state = {n: t.sort_values("position") for n, t in tables.items() if not t.empty and "state_bytes" in t and bool(t["state_bytes"].notna().any())}
    if not with_state:
        return None
    scale, prefix = byte_scale(max(float(cast(pd.Series, t["state_bytes"]).max()) for t in with_state.values()))
    fig = go.Figure()
    for name, t in with_state.items():
        c = _colour(colours, name)
        fig.add_trace(
            go.Scatter(x=t["position"], y=t["state_bytes"] / scale, mode="lines+markers", marker=dict(size=4, color=c), line=dict(color=c), name=label(name))
        )
    fig.update_layout(
        title=f"State alive after each step against position ({label(unit)}; whole batch)",
        xaxis_title=f"position ({label(unit)})",
        yaxis_title=f"state ({prefix})",
        showlegend=True,
        **LAYOUT,
    )
    return fig


def byte_scale(largest: float) -> tuple[float, str]:
    """(divisor, unit) for an axis of bytes: B, KiB, MiB or GiB."""
    for scale, prefix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if largest >= scale:
            return float(scale), prefix
    return 1.0, "B"


def latency_cdf(samples: dict[str, np.ndarray], title: str, axis: str, colours: dict[str, str] | None = None) -> go.Figure | None:
    fig = go.Figure()
    for name, values in samples.items():
        v = np.sort(values[np.isfinite(values)])
        if v.size == 0:
            continue
        p = np.arange(1, v.size + 1) / v.size
        x, y, _ = minmax_downsample(np.r_[v[0], v] * 1e3, np.r_[0.0, p])  # an empirical CDF: steps from 0
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line_shape="hv", line=dict(color=_colour(colours, name)), name=label(name)))
    if not fig.data:
        return None
    fig.update_layout(title=title, xaxis_title=axis, yaxis_title="fraction ≤ x", showlegend=True, **LAYOUT)
    return fig


# ---------------------------------------------------------------- the sampler's timeline

STAGE_NAMES = {"import": "setup", "setup": "setup", "count_work": "counting", "trace_ops": "tracing"}
"""Stages as a reader names them (import and setup shade as one); others keep their name."""
STAGE_COLOURS = {
    "setup": "rgba(120,120,120,0.13)",
    "warmup": "rgba(255,165,0,0.18)",
    "measure": "rgba(0,120,255,0.11)",
    "counting": "rgba(46,160,67,0.15)",
    "tracing": "rgba(163,113,247,0.17)",
    "teardown": "rgba(120,120,120,0.25)",
}
SERIES = (
    ("proc_rss_bytes", "RSS (MiB)", 1 / 2**20),
    ("server_rss_bytes", "its server's RSS (MiB)", 1 / 2**20),
    ("other_server_rss_bytes", "other servers' RSS (MiB)", 1 / 2**20),
    ("gpu_kernel_active_percent", "GPU kernel-active (%)", 1.0),
    ("gpu_memory_used_bytes", "GPU memory (MiB)", 1 / 2**20),
    ("gpu_power_w", "GPU power (W)", 1.0),
)


@dataclass(frozen=True)
class Band:
    label: str
    start_ns: int
    end_ns: int
    ended: bool


def stage_bands(stages: list[Stage], last_ns: int) -> list[Band]:
    """The child's stages as shaded bands, consecutive stages of one name merged (import + setup);
    a stage that never ended runs to the last sample."""
    bands: list[Band] = []
    for s in stages:
        name = STAGE_NAMES.get(s.name, s.name)
        end = s.end_ns if s.end_ns is not None else max(last_ns, s.start_ns)
        if bands and bands[-1].label == name and bands[-1].ended:
            bands[-1] = Band(name, bands[-1].start_ns, end, s.end_ns is not None)
        else:
            bands.append(Band(name, s.start_ns, end, s.end_ns is not None))
    return bands


def iteration_bands(iterations: pd.DataFrame) -> list[Band]:
    """Warmup and measured iterations as bands, for runs that recorded no stages (schema 1)."""
    bands = []
    if iterations.empty:
        return bands
    for warmup, name in ((True, "warmup"), (False, "measure")):
        part = iterations.loc[iterations["warmup"] == warmup]
        if not part.empty:
            bands.append(Band(name, int(part["start_ns"].min()), int(part["end_ns"].max()), True))
    return bands


def sampler_timeline(name: str, samples: pd.DataFrame, bands: list[Band], cores: int | None) -> tuple[go.Figure | None, bool]:
    """Sampler series against time, every stage of the child shaded and labelled. CPU is in cores
    busy: the workload's process (proc_cpu_percent: % of one core) beside the whole system
    (sys_cpu_percent: % of all cores), with the machine's logical cores as a reference line; where a local server was
    sampled, its process tree too (server_cpu_percent: the workload's own server; other_server_cpu_percent: the suite's
    other workloads' servers, alive beside it), and their RSS in rows of their own."""
    if samples.empty or "t_ns" not in samples:
        return None, False
    has_cpu = any(c in samples and samples[c].notna().any() for c in ("proc_cpu_percent", "sys_cpu_percent"))
    rows = [r for r in SERIES if r[0] in samples and bool(samples[r[0]].notna().any())]
    titles = (["CPU (cores busy)"] if has_cpu else []) + [r[1] for r in rows]
    if not titles:
        return None, False
    t0 = min([int(cast(pd.Series, samples["t_ns"]).min())] + [b.start_ns for b in bands])
    fig = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, vertical_spacing=0.05)
    x_all = ((samples["t_ns"] - t0) / 1e9).to_numpy()
    reduced = False
    row = 1
    if has_cpu:
        reduced |= _cpu_row(fig, samples, x_all, cores)
        row += 1
    for col, _, scale in rows:
        x, y, r = minmax_downsample(x_all, samples[col].to_numpy(dtype=float) * scale)
        reduced |= r
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=_series_title(col), showlegend=False, line=dict(width=1.2)), row=row, col=1)
        row += 1
    for i, title in enumerate(titles, start=1):
        fig.update_yaxes(title_text=title, title_font=dict(size=11), rangemode="tozero", row=i, col=1)
    _shade(fig, bands, t0)
    top, bottom, height = 90, 50, 150 * len(titles) + 140
    legend_y = 1 + (top - 8) / (height - top - bottom)  # in the title's row, right-aligned: clear of the stage labels
    fig.update_layout(
        title=dict(text=f"{label(name)}: sampler timeline", y=1 - 8 / height, yanchor="top"),
        **{
            **LAYOUT,
            "height": height,
            "margin": dict(l=70, r=20, t=top, b=bottom),
            "legend": dict(orientation="h", y=legend_y, x=1, xanchor="right", yanchor="top"),
        },
    )
    fig.update_xaxes(title_text="seconds from the first sample or stage", row=len(titles), col=1)
    return fig, reduced


def _series_title(col: str) -> str:
    return next(t for c, t, _ in SERIES if c == col)


def _cpu_row(fig: go.Figure, samples: pd.DataFrame, x_all: np.ndarray, cores: int | None) -> bool:
    reduced = False
    if "proc_cpu_percent" in samples and bool(samples["proc_cpu_percent"].notna().any()):
        x, y, r = minmax_downsample(x_all, samples["proc_cpu_percent"].to_numpy(dtype=float) / 100)
        reduced |= r
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="workload process", line=dict(width=1.4, color=COLOURS[0])), row=1, col=1)
    servers = (("server_cpu_percent", "its local server", COLOURS[2]), ("other_server_cpu_percent", "other workloads' servers", COLOURS[3]))
    for column, name, colour in servers:
        if column in samples and bool(samples[column].notna().any()):
            x, y, r = minmax_downsample(x_all, samples[column].to_numpy(dtype=float) / 100)
            reduced |= r
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line=dict(width=1.2, color=colour)), row=1, col=1)
    if cores and "sys_cpu_percent" in samples and bool(samples["sys_cpu_percent"].notna().any()):
        x, y, r = minmax_downsample(x_all, samples["sys_cpu_percent"].to_numpy(dtype=float) / 100 * cores)
        reduced |= r
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="whole system", line=dict(width=1.2, color=COLOURS[1], dash="dot")), row=1, col=1)
    if cores:
        fig.add_hline(
            y=cores,
            line=dict(color="grey", dash="dash", width=1),
            annotation_text=f"{cores} logical cores",
            annotation_position="bottom right",
            row=1,  # pyright: ignore[reportArgumentType]  plotly documents row and col as "int or 'all'"; pyright reads str from the default
            col=1,  # pyright: ignore[reportArgumentType]  (the same)
        )
    return reduced


def _shade(fig: go.Figure, bands: list[Band], t0: int) -> None:
    """One shaded rectangle per stage over every subplot, its label above the plot (two rows of
    labels, alternating, so short neighbouring stages stay readable)."""
    for i, b in enumerate(bands):
        x0, x1 = (b.start_ns - t0) / 1e9, (b.end_ns - t0) / 1e9
        colour = STAGE_COLOURS.get(b.label, "rgba(120,120,120,0.12)")
        fig.add_shape(type="rect", xref="x", yref="paper", x0=x0, x1=x1, y0=0, y1=1, fillcolor=colour, line_width=0, layer="below")
        text = label(b.label) + ("" if b.ended else " (did not end)")
        fig.add_annotation(
            x=x0, xref="x", y=1, yref="paper", yanchor="bottom", xanchor="left", showarrow=False, text=text, font=dict(size=10), yshift=2 + 13 * (i % 2)
        )


# ---------------------------------------------------------------- control loops


def tick_lateness(spans_by_workload: dict[str, pd.DataFrame], colours: dict[str, str] | None = None) -> go.Figure | None:
    """Lateness of every measured tick (spans that carry a deadline) against time in its episode; misses marked."""
    fig = go.Figure()
    for name, ticks in spans_by_workload.items():
        if ticks.empty:
            continue
        t0 = ticks.groupby("iteration")["start_ns"].transform("min")
        dropped = (ticks["dropped"] == 1) if "dropped" in ticks else pd.Series(False, index=ticks.index)
        if bool(dropped.any()):  # a skipped input has no lateness: drawn at its deadline
            d = ticks.loc[dropped]
            fig.add_trace(
                go.Scatter(
                    x=((d["deadline_ns"] - t0[dropped]) / 1e9).to_numpy(),
                    y=np.zeros(len(d)),
                    mode="markers",
                    marker=dict(size=7, symbol="x-thin-open", color="crimson"),
                    name=f"{label(name)} · dropped",
                )
            )
            ticks, t0 = ticks.loc[~dropped], t0[~dropped]
        x = ((ticks["start_ns"] - t0) / 1e9).to_numpy()
        late = ((ticks["end_ns"] - ticks["deadline_ns"]) / 1e6).to_numpy()
        missed = missed_deadlines(ticks).to_numpy()
        fig.add_trace(
            go.Scatter(x=x[~missed], y=late[~missed], mode="markers", marker=dict(size=4, color=_colour(colours, name)), name=f"{label(name)} · on time")
        )
        if missed.any():
            fig.add_trace(
                go.Scatter(x=x[missed], y=late[missed], mode="markers", marker=dict(size=7, symbol="x", color="crimson"), name=f"{label(name)} · missed")
            )
    if not fig.data:
        return None
    fig.add_hline(y=0, line_dash="dash", annotation_text="deadline")
    fig.update_layout(
        title="Control ticks: lateness against time in the episode (all measured episodes)",
        xaxis_title="seconds since the episode's first tick",
        yaxis_title="action sent − deadline (ms)",
        showlegend=True,
        **LAYOUT,
    )
    return fig


# ---------------------------------------------------------------- work


@dataclass(frozen=True)
class RooflinePoint:
    workload: str
    phase: str
    intensity: float
    achieved: float
    main: bool = False


def roofline(points: list[RooflinePoint], peak_flops: float | None, bandwidth: float | None, colours: dict[str, str] | None = None) -> go.Figure | None:
    """Every phase of every workload at (intensity, achieved FLOP/s) under the measured ceilings:
    a colour per workload, a marker symbol per phase name, no text on the points (legend and hover
    say which is which); main phases drawn larger with an outline."""
    pts = [p for p in points if p.intensity > 0 and p.achieved > 0]
    if not pts:
        return None
    colour = colours or colour_map(dict.fromkeys(p.workload for p in pts))
    symbol = {ph: SYMBOLS[i % len(SYMBOLS)] for i, ph in enumerate(dict.fromkeys(p.phase for p in pts))}
    fig = go.Figure()
    for p in pts:
        name = f"{label(p.workload)} · {label(p.phase)}" + (" (main)" if p.main else "")
        fig.add_trace(
            go.Scatter(
                x=[p.intensity],
                y=[p.achieved],
                mode="markers",
                marker=dict(
                    size=14 if p.main else 10, symbol=symbol[p.phase], color=colour[p.workload], line=dict(width=1.5 if p.main else 0.5, color="black")
                ),
                name=name,
                legendgroup=label(p.workload),
                text=[name],
                hovertemplate="%{text}<br>intensity %{x:.3g} FLOP/B<br>achieved %{y:.3s}FLOP/s<extra></extra>",
            )
        )
    if peak_flops and bandwidth:
        lo = min(p.intensity for p in pts) / 10
        hi = max(max(p.intensity for p in pts) * 10, 2 * peak_flops / bandwidth)
        xs = np.logspace(np.log10(lo), np.log10(hi), 200)
        fig.add_trace(
            go.Scatter(x=xs, y=np.minimum(peak_flops, bandwidth * xs), mode="lines", line=dict(color="black"), name="measured ceiling", hoverinfo="skip")
        )
    fig.update_xaxes(type="log", title="arithmetic intensity (FLOP / byte, unfused op-level bytes)")
    fig.update_yaxes(type="log", title="achieved FLOP/s", exponentformat="SI")
    fig.update_layout(
        title="Roofline: each phase against this machine's measured ceilings",
        **{**LAYOUT, "height": 520, "legend": dict(orientation="v", x=1.02, y=1, font=dict(size=11))},
    )
    return fig


def operator_mix(bars: list[dict]) -> go.Figure | None:
    """Stacked horizontal bars: share of each operator category per workload phase."""
    if not bars:
        return None
    categories = sorted({c for b in bars for c in b["shares"]})
    fig = go.Figure()
    for c in categories:
        fig.add_trace(go.Bar(y=[label(b["label"]) for b in bars], x=[b["shares"].get(c, 0) * 100 for b in bars], name=label(c), orientation="h"))
    fig.update_layout(
        barmode="stack", title="Operator mix per phase (share of op time)", xaxis_title="% of the phase's op time", **{**LAYOUT, "height": 140 + 26 * len(bars)}
    )
    fig.update_yaxes(autorange="reversed")  # top to bottom in the table's order
    return fig


def batching(curves: dict[str, list[tuple[int, float | None]]]) -> go.Figure | None:
    """Throughput at batch B over the smallest batch, per sweep family, with the ideal (linear) line."""
    fig = go.Figure()
    top = 1
    for base, pts in curves.items():
        pts = sorted(p for p in pts if p[1] is not None)
        if len(pts) < 2:
            continue
        b0 = pts[0][0]
        fig.add_trace(go.Scatter(x=[b for b, _ in pts], y=[g for _, g in pts], mode="lines+markers", name=label(base)))
        top = max(top, max(b / b0 for b, _ in pts))
    if not fig.data:
        return None
    fig.add_trace(go.Scatter(x=[1, top], y=[1, top], mode="lines", line=dict(dash="dot", color="grey"), name="ideal (throughput ∝ batch)"))
    fig.update_layout(title="Batching gain: throughput relative to the smallest batch", xaxis_title="batch size", yaxis_title="throughput gain (×)", **LAYOUT)
    return fig


@dataclass(frozen=True)
class LatencyCurve:
    """One side of a crossover: (context, median s, 95% low s, 95% high s) per measured length."""

    name: str
    points: list[tuple[float, float, float, float]]
    colour: str | None = None


def crossover(curves: list[LatencyCurve], over: str, at: float | None, bracket: tuple[float, float] | None) -> go.Figure | None:
    """Per-token decode latency (TPOT) against context length for both sides, 95% intervals as error bars, the
    crossover (a dashed line) or the bracket that holds it (a shaded band) marked; log-scaled length axis."""
    fig = go.Figure()
    for c in curves:
        pts = sorted(c.points)
        if not pts:
            continue
        x = [p[0] for p in pts]
        y = np.array([p[1] for p in pts]) * 1e3
        lo = np.array([p[2] for p in pts]) * 1e3
        hi = np.array([p[3] for p in pts]) * 1e3
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines+markers",
                name=label(c.name),
                marker=dict(color=c.colour),
                line=dict(color=c.colour),
                error_y=dict(type="data", symmetric=False, array=hi - y, arrayminus=y - lo),
            )
        )
    if not fig.data:
        return None
    ys = [v for c in curves for p in c.points for v in (p[2], p[3])]
    y0, y1 = min(ys) * 1e3, max(ys) * 1e3  # marks are traces, not shapes: shapes' and annotations' x differ on a log axis
    if at is not None:
        fig.add_trace(go.Scatter(x=[at, at], y=[y0, y1], mode="lines", line=dict(dash="dash", color="grey"), name=f"crossover ≈ {at:,.0f} tokens"))
    elif bracket is not None:
        lo, hi = bracket
        fig.add_trace(
            go.Scatter(
                x=[lo, hi, hi, lo, lo],
                y=[y0, y0, y1, y1, y0],
                mode="lines",
                fill="toself",
                fillcolor="rgba(128,128,128,0.15)",
                line=dict(width=0),
                name="the crossover lies here (undecided)",
            )
        )
    fig.update_layout(
        title="Per-token decode latency (TPOT) against context (median over requests, 95% interval)",
        xaxis_title=f"context ({label(over)}, tokens)",
        yaxis_title="TPOT (ms)",
        xaxis_type="log",
        **LAYOUT,
    )
    return fig
