"""Streams: a workload that takes camera frames at a fixed rate and voice queries at random times on one
device (Declaration.streams; an always-on assistant in glasses), read against the published figures.

Shows, per condition the workload ran (frames alone, queries alone, both): the frames' deadline
misses and drops; the queries' time to first token and to first audio against a conversational turn
gap, and the QoE of the answer stream at the declared listening speed; the interference of each
stream on the other (profiler/characterize/streams.py); the language model's KV cache over a session
against its bound; and the energy per hour of use against a glasses battery. Left out when no
workload declares streams.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from profiler.characterize.streams import condition_of_iterations, first_output_s
from profiler.format import duration, nbytes, percent, sig
from profiler.runmodel import Stats

from ..context import ReportContext
from ..figures import LAYOUT, label
from ..table import Cell, Column, Row, Table, unavailable
from ..view import WorkloadView
from . import register_section

TURN_GAP_S = 0.2
"""Human turn gaps average about 200 ms across languages (Stivers et al., PNAS 2009)."""
PUBLISHED = (
    "Published: people answer each other after about 200 ms across languages (Stivers et al., PNAS 2009); GPT-4o answers "
    "audio in 232 ms at best and 320 ms on average, where cascaded voice pipelines took 2.8–5.4 s (GPT-4o system card). "
    "Streaming video LLMs sample 1–2 frames per second at 10 to 100+ tokens per frame, so an 8B model's KV cache grows by "
    "about 150 MiB (VideoLLM-online) to over 650 MiB (LiveCC) per minute unless a window with attention sinks bounds it "
    "(StreamingVLM). A Meta Ray-Ban Display holds a 960 mWh battery (teardown); Ray-Ban Meta runs the assistant in the cloud."
)
BATTERY_WH = 0.96
"""Meta Ray-Ban Display battery, 960 mWh (teardown; shared/guide/domain-facts.md section 7)."""


@register_section(anchor="streams", title="Streams: frames and queries on one device", order=58, template="streams.html.j2")
def build(ctx: ReportContext) -> dict[str, Any] | None:
    views = {n: v for n, v in ctx.views.items() if v.summary.streams is not None and v.summary.streams.conditions}
    if not views:
        return None
    return {
        "frames": _frames_table(ctx, views),
        "queries": _queries_table(ctx, views),
        "interference": _interference_table(ctx, views),
        "interference_sentences": [s for n, v in views.items() for s in _interference_sentences(n, v)],
        "kv_figures": [f for f in (ctx.figure(_kv_figure(n, v), "kv") for n, v in views.items()) if f],
        "kv_sentences": [s for s in (_kv_sentence(n, v) for n, v in views.items()) if s],
        "energy": _energy_table(ctx, views),
        "published": PUBLISHED,
        "turn_gap": duration(TURN_GAP_S),
    }


def _median_ci(s: Stats | None, fmt: Any = duration) -> str:
    if s is None or not s.count or s.median is None:
        return "—"
    lo, hi = s.ci95_median or (None, None)
    interval = f" [{fmt(lo)}, {fmt(hi)}]" if lo is not None and hi is not None and s.count > 1 else ""
    return fmt(s.median) + interval


def _conditions(v: WorkloadView) -> list[tuple[str, Any]]:
    assert v.summary.streams is not None
    return list(v.summary.streams.conditions.items())


def _frames_table(ctx: ReportContext, views: dict[str, WorkloadView]) -> Table | None:
    columns = [
        Column("workload", "l"),
        Column("condition", "l"),
        Column("inputs due", title="spans with a deadline in the measured sessions: taken + dropped frames"),
        Column("deadline misses", title="inputs dropped or finished after their deadline (the next frame's arrival), mean over sessions"),
        Column("dropped", title="inputs overwritten in the one-frame buffer before they were taken, mean over sessions"),
        Column("lateness p50 · p99", title="end - deadline, taken inputs"),
    ]
    rows = []
    for name, v in views.items():
        m = v.measured
        conditions = condition_of_iterations(m)
        for cond, c in _conditions(v):
            d = c.deadlines
            if d is None or d.miss_rate is None:
                continue
            in_condition = m["iteration"].map(conditions).eq(cond)  # pyright: ignore[reportArgumentType]  pandas types map() for a function only
            due = int(cast(pd.Series, m["deadline_ns"].notna() & in_condition).sum())
            late = d.lateness_s
            rows.append(
                Row(
                    [
                        Cell(name, cls="l", href=ctx.anchor(name)),
                        Cell(cond, cls="l"),
                        Cell(f"{due:,}"),
                        Cell(percent(d.miss_rate.mean)),
                        Cell(percent(d.drop_rate.mean) if d.drop_rate and d.drop_rate.count else "—"),
                        Cell(f"{duration(late.median)} · {duration(late.p99)}" if late and late.count else "—"),
                    ]
                )
            )
    return Table(columns, rows) if rows else None


def _queries_table(ctx: ReportContext, views: dict[str, WorkloadView]) -> Table | None:
    columns = [
        Column("workload", "l"),
        Column("condition", "l"),
        Column("queries"),
        Column("TTFT", title="query arrival (end of speech) to the first answer token, median [95% interval]"),
        Column("time to first audio", title="query arrival to the end of the first sentence's speech synthesis, median [95% interval]"),
        Column(f"first audio within {duration(TURN_GAP_S)}", title="share of queries whose first audio came within a human turn gap"),
        Column("TPOT", title="answer decode, time per output token after the first, median"),
        Column("QoE", title="Andes QoE of the answer stream at the declared listener's pace, median"),
    ]
    rows = []
    for name, v in views.items():
        decl = v.declaration
        conditions = condition_of_iterations(v.measured) if "condition" in v.measured else None
        for cond, c in _conditions(v):
            m = c.metrics
            if m is None or m.request_latency_s is None or not m.request_latency_s.count:
                continue
            within = "—"
            if decl.presentation and conditions is not None:
                part = v.measured.loc[v.measured["iteration"].map(conditions).eq(cond)]  # pyright: ignore[reportArgumentType]  pandas types map() for a function only
                first = first_output_s(part, decl.request, decl.presentation)
                within = f"{percent(float(np.mean(first <= TURN_GAP_S)))} of {first.size}" if first.size else "—"
            rows.append(
                Row(
                    [
                        Cell(name, cls="l", href=ctx.anchor(name)),
                        Cell(cond, cls="l"),
                        Cell(str(m.request_latency_s.count)),
                        Cell(_median_ci(m.ttft_s)),
                        Cell(_median_ci(m.first_output_s)),
                        Cell(within),
                        Cell(duration(m.tpot_s.median) if m.tpot_s and m.tpot_s.count else "—"),
                        Cell(_median_ci(m.qoe, lambda x: f"{x:.2f}"), title=f"Andes QoE, {decl.qoe.stated()}" if decl.qoe else None),
                    ]
                )
            )
    return Table(columns, rows) if rows else None


def _interference_table(ctx: ReportContext, views: dict[str, WorkloadView]) -> Table | None:
    columns = [
        Column("workload", "l"),
        Column("phase", "l"),
        Column("alone → together", "l"),
        Column("alone", title="median latency of the phase's spans"),
        Column("together", title="median latency of the phase's spans"),
        Column("together / alone", title="ratio of medians, 95% bootstrap interval"),
        Column("verdict", "l"),
        Column("deadline misses alone → together", title="for a phase with deadlines (frames)"),
        Column("spans", title="alone, together"),
    ]
    rows = []
    for name, v in views.items():
        assert v.summary.streams is not None
        for item in v.summary.streams.interference:
            lo, hi = item.ci95 or (None, None)
            ratio = f"{item.ratio:.2f}×" + (f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else "") if item.ratio is not None else "—"
            misses = f"{percent(item.miss_rate_alone)} → {percent(item.miss_rate_together)}" if item.miss_rate_alone is not None else "—"
            verdict, _, why = item.verdict.partition(": ")
            conditions = v.summary.streams.conditions
            alone, together = (conditions[c].phases.get(item.phase) if c in conditions else None for c in (item.alone, item.together))
            rows.append(
                Row(
                    [
                        Cell(name, cls="l", href=ctx.anchor(name)),
                        Cell(item.phase, cls="l"),
                        Cell(f"{item.alone} → {item.together}", cls="l"),
                        Cell(duration(alone.median) if alone and alone.count else "—"),
                        Cell(duration(together.median) if together and together.count else "—"),
                        Cell(ratio),
                        Cell(verdict, sub=why or None, cls="l"),
                        Cell(misses),
                        Cell(", ".join(str(n) for n in item.n)),
                    ]
                )
            )
    return Table(columns, rows) if rows else None


def _interference_sentences(name: str, v: WorkloadView) -> list[str]:
    assert v.summary.streams is not None
    out = []
    for item in v.summary.streams.interference:
        if item.verdict in ("slower", "faster") and item.ratio is not None:
            out.append(f"{name}: '{item.phase}' runs {item.ratio:.2f}× its time alone ({item.alone}) when {item.together} run together.")
    return out


def _kv_figure(name: str, v: WorkloadView) -> go.Figure | None:
    m = v.measured
    if m.empty or "state_bytes" not in m or "condition" not in m:
        return None
    s = m.loc[m["state_bytes"].notna() & m["condition"].notna()]
    if s.empty:
        return None
    starts = m.loc[m["phase"] == "iteration"].set_index("iteration")["start_ns"]
    fig = go.Figure()
    dashes = {"frames": "solid", "queries": "dot", "frames+queries": "dash"}
    for iteration, g in s.sort_values("end_ns").groupby("iteration", sort=True):
        cond = str(g["condition"].iloc[0])
        t = (g["end_ns"].to_numpy(dtype=float) - float(starts.get(iteration, g["start_ns"].min()))) / 1e9
        fig.add_scatter(
            x=t,
            y=g["state_bytes"].to_numpy(dtype=float) / 2**20,
            mode="lines",
            line=dict(shape="hv", width=1.5, dash=dashes.get(cond, "solid")),
            name=f"iteration {int(iteration)} ({label(cond)})",
            hovertemplate="%{x:.2f} s: %{y:.2f} MiB<extra></extra>",
        )
    facts = v.summary.facts
    bound, per_token = facts.get("context_bound_bytes"), facts.get("kv_bytes_per_token")
    if bound and per_token and "position" in s:
        grown = s.groupby("iteration")["position"].agg(lambda x: x.max() - x.min())
        first = s.loc[s["iteration"] == grown.idxmax()].sort_values("end_ns")  # the session that appended the most
        t = (first["end_ns"].to_numpy(dtype=float) - float(starts.get(first["iteration"].iloc[0], first["start_ns"].min()))) / 1e9
        fig.add_scatter(
            x=t,
            y=first["position"].to_numpy(dtype=float) * per_token / 2**20,
            mode="lines",
            line=dict(color="grey", dash="dot", width=1),
            name=f"without a bound (iteration {int(grown.idxmax())}: every token since the session began, primed ones included)",
            hovertemplate="%{x:.2f} s: %{y:.2f} MiB<extra></extra>",
        )
    if bound:
        which = facts.get("context_bound_applies_to") or "all tokens"
        fig.add_hline(
            y=bound / 2**20, line=dict(color="grey", dash="dash"), annotation_text=f"bound: {nbytes(bound)} ({which})", annotation_position="top left"
        )
    fig.update_layout(**LAYOUT, title=f"{label(name)}: the language model's KV cache over each session")
    fig.update_xaxes(title="time since the session's start (s)")
    fig.update_yaxes(title="KV cache (MiB)", rangemode="tozero")
    return fig


def _kv_sentence(name: str, v: WorkloadView) -> str | None:
    f = v.summary.facts
    growth = f.get("kv_growth_bytes_per_minute_unbounded")
    if not growth:
        return None
    policy = f.get("context_policy")
    bound = f.get("context_bound_bytes")
    held = float(cast(pd.Series, v.measured["state_bytes"]).max()) if "state_bytes" in v.measured and bool(v.measured["state_bytes"].notna().any()) else None
    text = (
        f"{name}: {f.get('tokens_per_frame')} visual tokens per frame at {f.get('fps', 0):g} fps add {nbytes(growth)} of KV cache per minute without a bound."
    )
    if bound:
        text += f" Policy {policy} bounds it at {nbytes(bound)} ({f.get('context_bound_applies_to')})"
        text += f"; the most it held was {nbytes(held)}." if held is not None else "."
    else:
        text += " Policy none: it grows for as long as the stream runs" + (f" (the most it held: {nbytes(held)})." if held is not None else ".")
    return text


def _energy_table(ctx: ReportContext, views: dict[str, WorkloadView]) -> Table:
    columns = [
        Column("workload", "l"),
        Column("condition", "l"),
        Column("energy per hour of use", title="GPU power over the condition's sessions (NVML energy counter): W = Wh per hour"),
        Column(f"time on a {BATTERY_WH:g} Wh battery", title="if this device's power came from a glasses battery (it would not: the GPU is a stand-in)"),
        Column("energy per query", title="GPU energy over the query spans / queries (frames running alongside included)"),
    ]
    rows = []
    for name, v in views.items():
        streams = v.summary.streams
        assert streams is not None
        if streams.energy_unavailable:
            rows.append(
                Row([Cell(name, cls="l", href=ctx.anchor(name)), Cell("all", cls="l"), unavailable(streams.energy_unavailable, colspan=3, show_why=True)])
            )
            continue
        for cond, c in streams.conditions.items():
            power = c.average_power_w
            rows.append(
                Row(
                    [
                        Cell(name, cls="l", href=ctx.anchor(name)),
                        Cell(cond, cls="l"),
                        Cell(f"{sig(power)} Wh" if power is not None else "—"),
                        Cell(f"{BATTERY_WH / power * 60:.1f} min" if power else "—"),
                        Cell(f"{sig(c.energy_per_request_j)} J" if c.energy_per_request_j is not None else "—"),
                    ]
                )
            )
    return Table(columns, rows)
