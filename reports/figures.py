"""Plotly figures from run DataFrames. Built separately from the page (HTA's habit).

User strings (workload names) are HTML-escaped before they reach plotly, whose labels accept a
subset of HTML; plotly's JSON embedding escapes '<' and '/' on its own. Long series are reduced
with min-max bucketing for display; the raw data stays in the run directory.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

MAX_POINTS = 4000
LAYOUT = dict(template="plotly_white", height=360, margin=dict(l=60, r=20, t=50, b=50), legend=dict(orientation="h", y=-0.2))


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
    for lo, hi in zip(edges[:-1], edges[1:]):
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


def latency_vs_position(tables: dict[str, pd.DataFrame], unit: str = "token of context") -> go.Figure | None:
    fig = go.Figure()
    for name, t in tables.items():
        for phase, g in t.groupby("phase"):
            fig.add_trace(go.Scatter(x=g["position"], y=g["median_s"] * 1e3, mode="lines+markers", marker=dict(size=4), name=f"{label(name)} · {label(phase)}"))
    if not fig.data:
        return None
    fig.update_layout(title=f"Per-step latency against position ({label(unit)}; median over measured iterations)", xaxis_title=f"position ({label(unit)})",
                      yaxis_title="latency (ms)", **LAYOUT)
    return fig


def state_vs_position(tables: dict[str, pd.DataFrame], unit: str = "token of context") -> go.Figure | None:
    fig = go.Figure()
    for name, t in tables.items():
        if "state_bytes" not in t or t["state_bytes"].isna().all():
            continue
        t = t.sort_values("position")
        fig.add_trace(go.Scatter(x=t["position"], y=t["state_bytes"] / 2**20, mode="lines+markers", marker=dict(size=4), name=label(name)))
    if not fig.data:
        return None
    fig.update_layout(title=f"State alive after each step against position ({label(unit)}; whole batch)", xaxis_title=f"position ({label(unit)})",
                      yaxis_title="state (MiB)", **LAYOUT)
    return fig


def latency_cdf(samples: dict[str, np.ndarray], title: str, axis: str) -> go.Figure | None:
    fig = go.Figure()
    for name, values in samples.items():
        v = np.sort(values[np.isfinite(values)])
        if v.size == 0:
            continue
        p = np.arange(1, v.size + 1) / v.size
        x, y, _ = minmax_downsample(v * 1e3, p)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=label(name)))
    if not fig.data:
        return None
    fig.update_layout(title=title, xaxis_title=axis, yaxis_title="fraction ≤ x", **LAYOUT)
    return fig


TIMELINE_ROWS = [
    ("proc_cpu_percent", "process CPU (%)", 1.0),
    ("proc_rss_bytes", "process RSS (MiB)", 1 / 2**20),
    ("gpu_kernel_active_percent", "GPU kernel-active (%)", 1.0),
    ("gpu_memory_used_bytes", "GPU memory used (MiB)", 1 / 2**20),
    ("gpu_power_w", "GPU power (W)", 1.0),
]


def sampler_timeline(name: str, samples: pd.DataFrame, iterations: pd.DataFrame) -> tuple[go.Figure | None, bool]:
    """Sampler series against time since the workload's first sample; the warmup and measured
    iterations (`iteration` spans, warmup included) shaded."""
    rows = [r for r in TIMELINE_ROWS if r[0] in samples and samples[r[0]].notna().any()]
    if samples.empty or not rows:
        return None, False
    t0 = samples["t_ns"].min()
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, subplot_titles=[r[1] for r in rows], vertical_spacing=0.08)
    reduced_any = False
    x_all = ((samples["t_ns"] - t0) / 1e9).to_numpy()
    for i, (col, title, scale) in enumerate(rows, start=1):
        x, y, reduced = minmax_downsample(x_all, samples[col].to_numpy(dtype=float) * scale)
        reduced_any |= reduced
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=title, showlegend=False), row=i, col=1)
    if not iterations.empty:
        for warmup, color in ((True, "rgba(255,165,0,0.12)"), (False, "rgba(0,120,255,0.10)")):
            part = iterations.loc[iterations["warmup"] == warmup]
            if not part.empty:
                fig.add_vrect(x0=(part["start_ns"].min() - t0) / 1e9, x1=(part["end_ns"].max() - t0) / 1e9, fillcolor=color, line_width=0,
                              annotation_text="warmup" if warmup else "measured", annotation_position="top left")
    fig.update_layout(title=f"{label(name)}: sampler timeline", **{**LAYOUT, "height": 170 * len(rows) + 80})
    fig.update_xaxes(title_text="seconds since the first sample", row=len(rows), col=1)
    return fig, reduced_any


def tick_lateness(spans_by_workload: dict[str, pd.DataFrame]) -> go.Figure | None:
    """Lateness of every measured tick against time in its episode; misses marked."""
    fig = go.Figure()
    for name, spans in spans_by_workload.items():
        ticks = spans.loc[spans["deadline_ns"].notna() & ~spans["warmup"].astype(bool)]
        if ticks.empty:
            continue
        t0 = ticks.groupby("iteration")["start_ns"].transform("min")
        x = ((ticks["start_ns"] - t0) / 1e9).to_numpy()
        late = ((ticks["end_ns"] - ticks["deadline_ns"]) / 1e6).to_numpy()
        missed = ((ticks["units"] <= 0) | (ticks["end_ns"] > ticks["deadline_ns"])).to_numpy()
        fig.add_trace(go.Scatter(x=x[~missed], y=late[~missed], mode="markers", marker=dict(size=4), name=f"{label(name)} · on time"))
        if missed.any():
            fig.add_trace(go.Scatter(x=x[missed], y=late[missed], mode="markers", marker=dict(size=7, symbol="x", color="crimson"), name=f"{label(name)} · missed"))
    if not fig.data:
        return None
    fig.add_hline(y=0, line_dash="dash", annotation_text="deadline")
    fig.update_layout(title="Control ticks: lateness against time in the episode (all measured episodes)", xaxis_title="seconds since the episode's first tick",
                      yaxis_title="action sent − deadline (ms)", **LAYOUT)
    return fig


def roofline(points: list[dict], peak_flops: float | None, bandwidth: float | None) -> go.Figure | None:
    """Every phase of every workload at (intensity, achieved FLOP/s) under the measured ceilings."""
    pts = [p for p in points if p.get("intensity") and p.get("achieved")]
    if not pts:
        return None
    fig = go.Figure()
    for p in pts:
        fig.add_trace(go.Scatter(x=[p["intensity"]], y=[p["achieved"]], mode="markers+text", text=[label(p["phase"])], textposition="top center",
                                 marker=dict(size=10), name=f"{label(p['workload'])} · {label(p['phase'])}", legendgroup=label(p["workload"])))
    if peak_flops and bandwidth:
        xs = np.logspace(np.log10(min(p["intensity"] for p in pts) / 10), np.log10(max(max(p["intensity"] for p in pts) * 10, 2 * peak_flops / bandwidth)), 200)
        fig.add_trace(go.Scatter(x=xs, y=np.minimum(peak_flops, bandwidth * xs), mode="lines", line=dict(color="black"), name="measured ceiling"))
    fig.update_xaxes(type="log", title="arithmetic intensity (FLOP / byte, unfused op-level bytes)")
    fig.update_yaxes(type="log", title="achieved FLOP/s")
    fig.update_layout(title="Roofline: each phase against this machine's measured ceilings", **{**LAYOUT, "height": 480})
    return fig


def operator_mix(bars: list[dict]) -> go.Figure | None:
    """Stacked horizontal bars: share of each operator category per workload phase."""
    if not bars:
        return None
    categories = sorted({c for b in bars for c in b["shares"]})
    fig = go.Figure()
    for c in categories:
        fig.add_trace(go.Bar(y=[label(b["label"]) for b in bars], x=[b["shares"].get(c, 0) * 100 for b in bars], name=label(c), orientation="h"))
    fig.update_layout(barmode="stack", title="Operator mix per phase (share of op time)", xaxis_title="% of the phase's op time",
                      **{**LAYOUT, "height": 120 + 28 * len(bars)})
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
