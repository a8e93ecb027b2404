"""The figures of the "Serving under load" section (reports/sections/serving.py), apart from its tables
and registration so that each module does one job: plotly figures in reports/figures.py's style (labels
escaped, a colour per workload shared with every other figure of the page), and the data classes they read.

These builders read only what the section hands them (a `Served` per workload, a `SweepCurve` per rate
sweep, colours by workload): never the run directory, the report context or the configuration.

- request_timeline: every measured request as a bar in three segments (queueing, scheduled to first
  token, decoding), the engine's batch and KV occupancy beneath on the same time axis.
- qoe_ecdf, slo_ecdf: per-request QoE (Andes), TTFT and TPOT as ECDFs, each against its stated objective.
- sweep_latency, sweep_goodput: a rate sweep's latency percentiles and goodput against the offered rate.
- context_growth: ITL against context (p50 with the p90 band, per context bin) and the KV cache's bytes against
  the tokens of context held, with the fitted and the declared bytes per token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from profiler.characterize.serving import FINISHED, NS, UNENDED, Knee, MaxRate
from profiler.format import duration, nbytes, percent, rate, sig
from profiler.plugin import QoE
from profiler.runmodel import Serving

from . import figures
from .figures import LAYOUT, label

RATE_KEY = "load.rate"
"""The sweep key of a rate sweep: its points differ in load.rate."""
MAX_BARS = 2000
"""Requests drawn per timeline at most (the first, by arrival); every request stays in requests.parquet."""
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
    """One workload under a load, as the section reads it (reports/sections/serving.py: served_workload)."""

    name: str
    serving: Serving
    table: pd.DataFrame
    """per_request(requests.parquet): every request with queue_s, ttft_s, tpot_s, e2e_s, tokens, meets_slo and qoe."""
    engine: pd.DataFrame
    qoe: QoE | None
    """The reader (expected TTFT, tokens/s) and form the table's QoE is computed with, the summary's; None when the run does not say."""
    point: dict[str, Any] | None
    group: str | None

    @property
    def measured(self) -> pd.DataFrame:
        t = self.table
        return t.loc[t["measured"].astype(bool)] if not t.empty else t

    def unfinished(self) -> tuple[int, int]:
        """(measured requests that did not finish: timed out at max_seconds, lost or interrupted; measured requests),
        from requests.parquet, else from the summary's counts."""
        m = self.measured
        counts = {str(k): int(v) for k, v in m["status"].value_counts().items()} if not m.empty else self.serving.measured_status_counts
        return sum(n for k, n in counts.items() if k in UNENDED), sum(counts.values())

    @property
    def slo_text(self) -> str:
        return f"SLO {self.serving.slo}"

    @property
    def qoe_text(self) -> str:
        return f"QoE {self.serving.qoe_stated}"


@dataclass
class SweepCurve:
    """One rate sweep's points in rate order, with its knee and highest rate meeting the target (the section's sweep_curve)."""

    points: list[Served]
    rates: list[float]
    axis: str
    """What the rates are: the achieved offered rate, or the configured one when a point has none."""
    knee: Knee
    max_rate: MaxRate
    slo: str
    slo_values: dict[str, float | None]
    target: float
    qoe: str


def max_rate_kind(result: MaxRate) -> str | None:
    """'interpolated' between two points, 'measured' (a point's own rate) or 'at least' (the highest rate swept
    still meets the target); None when no rate meets it (profiler.characterize.serving.interpolate_max_rate)."""
    return result.kind if result.rate is not None else None


# ---------------------------------------------------------------- the request timeline


def request_timeline(s: Served, colour: str | None = None) -> go.Figure | None:
    """Every measured request as a horizontal bar (queueing, scheduled → first token, decoding) against
    seconds from the first measured arrival; requests that did not finish drawn apart, by end state; the
    engine's running and waiting requests and its KV occupancy beneath, on the same axis."""
    m = s.measured
    if m.empty or cast(pd.Series, m["arrival_ns"]).notna().sum() == 0:
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
        if col in e and bool(e[col].notna().any()):
            xs, ys, _ = figures.minmax_downsample(x, e[col].to_numpy(dtype=float))
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line_shape="hv", line=style, name=f"engine: {name}"), row=2, col=1)
    if "preempted" in e and bool((e["preempted"].fillna(0) > 0).any()):
        xs, ys, _ = figures.minmax_downsample(x, e["preempted"].to_numpy(dtype=float))
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line_shape="hv", line=dict(color="crimson"), name="engine: preempted"), row=2, col=1)
    fig.update_yaxes(title_text="requests", title_font=dict(size=11), rangemode="tozero", row=2, col=1)
    if has_kv:
        occ = (e["kv_bytes_used"].astype(float) / e["kv_bytes_total"].astype(float) * 100).to_numpy()
        xs, ys, _ = figures.minmax_downsample(x, occ)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line_shape="hv", line=dict(color="purple"), name="KV occupancy (% of the cache)"), row=3, col=1)
        total = float(cast(pd.Series, e["kv_bytes_total"]).max())
        fig.update_yaxes(title_text=f"KV % of {nbytes(total)}", title_font=dict(size=11), rangemode="tozero", row=3, col=1)


# ---------------------------------------------------------------- distributions


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


def _hover(c: SweepCurve) -> list[str]:
    out = []
    for p, r in zip(c.points, c.rates, strict=True):
        unfinished, measured = p.unfinished()
        out.append(
            f"{label(p.name)}: load.rate {sig(float((p.point or {})[RATE_KEY]))} req/s, offered {sig(r)} req/s; "
            f"{unfinished} of {measured} measured requests did not finish (not in the percentiles)"
        )
    return out


def _unfinished_labels(fig: go.Figure, c: SweepCurve, col: int, field: str) -> None:
    """'k/n timed out' above each point of the p99 curve where measured requests did not finish: the percentiles are
    over the finished ones, and a curve flat at the max_seconds cap says nothing of the rest without it."""
    xs, ys, texts = [], [], []
    for p, r in zip(c.points, c.rates, strict=True):
        unfinished, measured = p.unfinished()
        top = getattr(p.serving, field).p99
        if unfinished and top is not None:
            xs.append(r)
            ys.append(top * 1e3)
            texts.append(f"{unfinished}/{measured} did not finish")
    if xs:
        fig.add_trace(
            go.Scatter(x=xs, y=ys, mode="text", text=texts, textposition="top center", showlegend=False, hoverinfo="skip"),
            row=1,
            col=col,
        )


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
            fig.add_hline(
                y=limit * 1e3,
                line=dict(color="crimson", dash="dash"),
                annotation_text=f"SLO {duration(limit)}",
                row=1,  # pyright: ignore[reportArgumentType]  plotly documents row and col as "int or 'all'"; pyright reads str from the default
                col=col,  # pyright: ignore[reportArgumentType]  (the same)
            )
        _unfinished_labels(fig, c, col, field)
    if c.knee.rate is not None and c.knee.latency is not None:
        fig.add_trace(
            go.Scatter(
                x=[c.knee.rate],
                y=[c.knee.latency * 1e3],
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
        title=f"{label(group)}: latency against offered load (SLO {label(c.slo)}; percentiles over finished requests)",
        **{**LAYOUT, "height": 420, "margin": dict(l=60, r=20, t=80, b=50)},
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
            x=c.max_rate.rate,
            line=dict(color="black", dash="dash", width=1),
            annotation_text=f"{rate(c.max_rate.rate, 'req')} ({kind})",
            annotation_position="top left",
        )
    fig.update_xaxes(title_text=c.axis, rangemode="tozero")
    fig.update_yaxes(title_text="requests per second", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="SLO attainment (%)", range=[0, 105], tickmode="array", tickvals=[0, 25, 50, 75, 100], secondary_y=True, showgrid=False)
    fig.update_layout(
        title=f"{label(group)}: goodput against offered load (SLO {label(c.slo)}; target {percent(c.target)} attainment)", **{**LAYOUT, "height": 400}
    )
    return fig


# ---------------------------------------------------------------- against context

MAX_KV_POINTS = 4000
"""Engine samples drawn per KV scatter at most (evenly spaced in time); the fit uses every sample."""


def context_growth(s: Served, held: pd.DataFrame | None, colour: str | None = None) -> go.Figure | None:
    """Left: ITL p50 per context bin with the band up to p90 (ms against tokens of context, at each bin's middle;
    the hover gives the bin, its gap count and the running batch). Right: the KV cache bytes the engine reported
    against the tokens of context its running requests held at each sample (`held`: kv_tokens_held's frame), the
    least-squares line and the declared bytes per token x tokens. None when the summary has neither."""
    itl, kv = s.serving.itl_by_context, s.serving.kv_by_context
    show_kv = kv is not None and held is not None and not held.empty
    if itl is None and not show_kv:
        return None
    fig = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=("ITL against context (p50, band to p90)", "KV cache against tokens of context held")
    )
    line = colour or figures.COLOURS[0]
    if itl is not None and itl.bins:
        mid = np.array([(b.context_lo + b.context_hi) / 2 for b in itl.bins])
        p50 = np.array([b.itl_p50_s for b in itl.bins]) * 1e3
        p90 = np.array([b.itl_p90_s for b in itl.bins]) * 1e3
        text = [
            f"context {b.context_lo}–{b.context_hi - 1} tokens · {b.gaps} gaps"
            + (f" · running batch p50 {sig(b.running_p50)}" if b.running_p50 is not None else "")
            for b in itl.bins
        ]
        fig.add_trace(
            go.Scatter(
                x=mid,
                y=p90,
                mode="lines",
                line=dict(color=line, width=0.5, dash="dot"),
                name="ITL p90",
                text=text,
                hovertemplate="%{text}<br>p90 %{y:.3g} ms<extra></extra>",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=mid,
                y=p50,
                mode="lines+markers",
                line=dict(color=line),
                fill="tonexty",
                fillcolor="rgba(120,120,120,0.18)",
                name="ITL p50 (band: to p90)",
                text=text,
                hovertemplate="%{text}<br>p50 %{y:.3g} ms<extra></extra>",
            ),
            row=1,
            col=1,
        )
        fig.update_xaxes(title_text=f"tokens of context (prompt + generated; bins of {itl.bin_tokens})", rangemode="tozero", row=1, col=1)
        fig.update_yaxes(title_text="ITL (ms)", rangemode="tozero", row=1, col=1)
    if show_kv:
        assert held is not None and kv is not None
        step = max(1, int(np.ceil(len(held) / MAX_KV_POINTS)))
        h = held.iloc[::step]
        mib = 2.0**20
        fig.add_trace(
            go.Scatter(
                x=h["tokens_held"],
                y=h["kv_bytes_used"] / mib,
                mode="markers",
                marker=dict(size=4, color=line, opacity=0.35),
                name="engine samples",
                hovertemplate="%{x} tokens held<br>%{y:.4g} MiB<extra></extra>",
            ),
            row=1,
            col=2,
        )
        x = np.array([0.0, float(kv.max_tokens_held)])
        fig.add_trace(
            go.Scatter(
                x=x,
                y=(kv.slope_bytes_per_token * x + kv.intercept_bytes) / mib,
                mode="lines",
                line=dict(color="black"),
                name=f"fit: {nbytes(kv.slope_bytes_per_token)} per token (r² {kv.r2:.3f})",
                hoverinfo="skip",
            ),
            row=1,
            col=2,
        )
        if kv.declared_bytes_per_token:
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=kv.declared_bytes_per_token * x / mib,
                    mode="lines",
                    line=dict(color="crimson", dash="dash"),
                    name=f"declared: {nbytes(kv.declared_bytes_per_token)} per token",
                    hoverinfo="skip",
                ),
                row=1,
                col=2,
            )
        pages = f"; pages of {kv.page_tokens} tokens" if kv.page_tokens else ""
        fig.update_xaxes(title_text=f"tokens of context held by running requests{pages}", rangemode="tozero", row=1, col=2)
        fig.update_yaxes(title_text="KV bytes used (MiB)", rangemode="tozero", row=1, col=2)
    fig.update_layout(
        title=f"{label(s.name)}: per-token latency and KV cache against context", **{**LAYOUT, "height": 420, "margin": dict(l=60, r=20, t=80, b=60)}
    )
    return fig
