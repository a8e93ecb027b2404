"""Serving under load (metrics.md "Serving under load"): for every workload run under a `load:`
block, how its requests fared, read from summary.json's `serving` record, requests.parquet (one row
per request) and engine.parquet (the engine's scheduler samples).

- Two tables: the load and its outcome (pattern, burstiness, offered rate, requests by end state,
  throughput, SLO attainment, goodput, QoE, the load generator's own error), and latency from
  arrival with the engine's state (queueing, TTFT, TPOT, ITL, E2E; concurrency, KV occupancy).
- Per workload (at most MAX_TIMELINES, sweep points only when nothing else ran under a load): every
  measured request as a bar in three segments (queueing, scheduled to first token, decoding), the
  engine's batch (running, waiting) and KV occupancy beneath on the same time axis.
- Against context (the same workloads as the timelines): ITL per context bin (p50, band to p90) to the end
  of the longest sequence, and the KV cache's bytes against the tokens of context held, with one sentence
  stating the growth, whether the running batch changed across the bins, and how many sizes were capped.
- What the server reported (a workload whose engine scraped its server's Prometheus metrics: `serving.server_reported`):
  this run's prefix-cache hit rate, draft acceptance rate, mean queue time, preemptions and tokens, each from the
  server's counters at the measured window's edges, and what the scrapes cost this client.
- Distributions: per-request QoE (Andes), TTFT and TPOT as ECDFs, each against its stated objective.
- Rate sweeps (points that differ in `load.rate`): latency percentiles and goodput against the
  offered rate, the knee (Kneedle on p90 TTFT) and the highest rate meeting the attainment target.

Every figure and table states the SLO and QoE parameters it is judged against. Left out when no
workload has a `serving` record. This module reads the run and builds the tables; the figures are
built in reports/serving_figures.py (plotly, in reports/figures.py's style: labels escaped, a colour
per workload shared with every other figure of the page) from what this module hands them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from profiler.characterize.serving import BATCH_CHANGE, FINISHED, NS, interpolate_max_rate, knee, kv_tokens_held, meets_slo, per_request, qoe_of
from profiler.format import count, duration, nbytes, percent, rate, sig
from profiler.loadconfig import Distribution, LoadConfig
from profiler.plugin import QoE
from profiler.runmodel import Serving, Stats

from ..context import ReportContext
from ..serving_figures import (
    MAX_BARS,
    QOE_LEVEL,
    RATE_KEY,
    Served,
    SweepCurve,
    context_growth,
    max_rate_kind,
    qoe_ecdf,
    request_timeline,
    slo_ecdf,
    sweep_goodput,
    sweep_latency,
)
from ..table import Cell, Column, Row, Table, unavailable
from . import register_section

MAX_TIMELINES = 4
"""Request timelines drawn at most (one figure each); the table lists every workload."""
MAX_LINES = 12
"""Workloads per distribution figure at most."""


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
                missing[name] = f"no serving record: the workload {view.run.status} before its requests were summarised"
            continue
        served[name] = served_workload(ctx, name, view.run)
        problems += [p for p in view.run.problems if p not in ctx.problems]  # read here first: not yet listed with the others
    outcome = Table(
        [
            Column("workload", "l"),
            Column("pattern", "l", title="the load: block's arrival process (rate as configured), or the trace replayed"),
            Column("burstiness", title="coefficient of variation of the gaps between measured sends (1 for Poisson)"),
            Column("offered", title="open loop: achieved send rate of the measured requests, (sent − 1) / (last − first send); closed loop: concurrency held"),
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
    reported = {n: s for n, s in served.items() if s.serving.server_reported is not None}
    server = (
        Table(
            [
                Column("workload", "l"),
                Column("prefix-cache hit rate", title="Δ prefix-cache hits / Δ queries over the measured window (tokens, where the server counts them)"),
                Column("draft acceptance", title="Δ accepted draft tokens / Δ draft tokens over the measured window (speculative decoding)"),
                Column("queue time (server)", title="Δ sum / Δ count of the server's queue-time histogram: mean wait in its queue of requests that finished"),
                Column("preemptions", title="Δ of the server's preemption counter over the measured window"),
                Column("tokens", title="Δ prompt · Δ generation tokens the server counted in the window (the whole load beside this client's counts: tooltip)"),
                Column("scrapes", title="what each scrape of /metrics cost this client: time p50 (max beneath) and bytes"),
            ],
            [Row(_server_cells(ctx, s)) for s in reported.values()],
            cls="wide",
        )
        if reported
        else None
    )
    sweeps, sweep_figures = _sweeps(ctx, served)
    shown = _timeline_workloads(served)
    timelines = [ctx.figure(request_timeline(s, ctx.colours.get(s.name)), "serving-timeline") for s in shown]
    left_out = [n for n in served if n not in {s.name for s in shown}]
    context_lines = [line for s in shown for line in context_sentences(s, _contended(ctx, s.name))]
    context_figures = [ctx.figure(context_growth(s, _held(s), ctx.colours.get(s.name)), "serving-context") for s in shown]
    return {
        "outcome": outcome,
        "latency": latency,
        "server": server,
        "judged": _judged(served),
        "timelines": [f for f in timelines if f],
        "timelines_left_out": left_out,
        "max_bars": MAX_BARS if any(len(s.measured) > MAX_BARS for s in shown) else None,
        "context_lines": context_lines,
        "context_figures": [f for f in context_figures if f],
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
                qoe_of((np.asarray(t, dtype=float) - a) / NS, qoe) for t, a in zip(table.loc[done, "token_ns"], table.loc[done, "arrival_ns"], strict=True)
            ]
    sweep = run.summary.sweep
    return Served(name, s, table, run.engine, qoe, dict(sweep.point) if sweep else None, sweep.group if sweep else None)


@dataclass(frozen=True)
class _SLO:
    """The stated SLO values, as meets_slo reads them."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None


def _has_load(ctx: ReportContext, name: str) -> bool:
    """Whether config.resolved.yaml gives the workload (or sweep point) a `load:` block."""
    entry = ctx.run.config.entry(name)
    return entry is not None and entry.load is not None


def _qoe_parameters(ctx: ReportContext, name: str, s: Serving) -> QoE | None:
    """The reader the summary's QoE was judged against, in the summary's form (qoe_form: step for summaries written
    before it): expected TTFT and tokens/s from qoe_values; for older summaries without them, from the resolved
    config, else from the stated text (all such a summary keeps)."""
    stored = _qoe_reader(s.qoe_values.get("expected_ttft_s"), s.qoe_values.get("tokens_per_s"), s.qoe_form)
    if stored is not None:
        return stored
    entry = ctx.run.config.entry(name)
    if entry is not None and entry.objective is not None:
        return entry.objective.qoe
    m = re.fullmatch(r"expected TTFT ([0-9.eE+-]+) s, ([0-9.eE+-]+) tokens/s(?:, (\w+) form)?", s.qoe_stated.strip())
    try:
        return _qoe_reader(float(m.group(1)), float(m.group(2)), m.group(3) or "step") if m else None
    except ValueError:
        return None


def _qoe_reader(ttft: Any, speed: Any, form: Any) -> QoE | None:
    """The reader (expected TTFT, tokens/s, form) when both are positive numbers in QoE's range and the form is known, else None."""
    if not (isinstance(ttft, (int, float)) and isinstance(speed, (int, float))):
        return None
    try:
        return QoE(expected_ttft_s=float(ttft), tokens_per_s=float(speed), form=form)
    except ValueError:
        return None


# ---------------------------------------------------------------- tables


def _name_cell(ctx: ReportContext, s: Served) -> Cell:
    return Cell(s.name, cls="l", href=ctx.anchor(s.name), sub=f"window {duration(s.serving.window_s)}" if s.serving.window_s else None)


def _missing_row(ctx: ReportContext, name: str, why: str, width: int) -> Row:
    return Row([Cell(name, cls="l", href=ctx.anchor(name)), unavailable(why, colspan=width - 1, show_why=True)])


def _pattern(load: LoadConfig) -> Cell:
    p = load.pattern
    if p == "trace":
        trace = load.trace or ""
        scales = []
        if load.time_scale != 1:
            scales.append(f"times ÷ {sig(load.time_scale)}")
        if load.token_scale != 1:
            scales.append(f"tokens × {sig(load.token_scale)}")
        return Cell(f"trace {Path(trace).name}", cls="l", sub=" · ".join(scales) or None, title=trace)
    if p == "closed":
        return Cell(f"closed loop · {count(load.concurrency)} in flight", cls="l", sub="each request sent when one ends")
    text = f"{p} · {rate(load.rate, 'req')}" if load.rate is not None else p
    sub = f"gamma shape k {sig(load.burstiness)}" if p == "gamma" and load.burstiness else None
    return Cell(text, cls="l", sub=sub)


def _status_counts(s: Served) -> tuple[int, dict[str, int], str]:
    """(measured requests, their count per end state, where the counts come from)."""
    m = s.measured
    if not m.empty:
        return len(m), {str(k): int(v) for k, v in m["status"].value_counts().items()}, "measured requests, from requests.parquet"
    return s.serving.measured_requests, dict(s.serving.status_counts), "all requests, warmup included (requests.parquet unreadable)"


def _outcome_cells(ctx: ReportContext, s: Served) -> list[Cell]:
    v = s.serving
    closed = v.load.pattern == "closed"
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
    if closed:  # no offered rate: the concurrency it held, and the rate the engine paced it to
        offered = (
            Cell(f"{sig(v.concurrency_held)} in flight", sub=f"paced by the engine: {rate(v.throughput_rps, 'req')}", title=_HELD)
            if v.concurrency_held is not None
            else unavailable("a closed loop has no offered rate; its held concurrency is not in this summary (written before it was kept)")
        )
    else:
        offered = Cell(rate(v.offered_rate_rps, "req")) if v.offered_rate_rps else unavailable("fewer than 3 measured sends")
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


_HELD = (
    "mean measured requests in flight over the measured window (Little's law: their summed time from send to end / the window; "
    "a request still in flight when the run stopped counts to the stop)"
)


def _sender(s: Served) -> Cell:
    v = s.serving
    if v.load.pattern == "closed":
        return unavailable("a closed loop sends when a request ends: there is no schedule to miss")
    p99, worst = v.sender.p99_s, v.sender.max_s
    if p99 is None:
        return unavailable("the load generator recorded no sends")
    title = f"achieved − scheduled send time, p50 {duration(v.sender.p50_s)}; the sender's CPU: {percent(v.sender.cpu_share)} of a core"
    m = s.measured
    if not m.empty and bool(m["sent_ns"].notna().any()):
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
    queue = _pair(v.queue_s, v.unavailable.get("queue_s", none))
    if v.queue_share is not None and queue.cls != "na":
        queue.sub = f"{percent(v.queue_share)} of E2E · p90 {duration(v.queue_s.p90)}"
    elif queue.cls == "na" and v.server_reported is not None and v.server_reported.queue_s_mean is not None:
        queue = Cell(
            f"{duration(v.server_reported.queue_s_mean)} mean",
            sub="server-reported",
            title=f"not seen by the client: the server's own queue-time histogram, Δ sum / Δ count over the measured window "
            f"({count(v.server_reported.queue_requests)} requests that finished on the server)",
        )
    tpot = _pair(v.tpot_s, "no finished measured request with 2 or more tokens")
    if v.concurrency.count and v.concurrency.median is not None:
        scraped = v.server_reported is not None  # a server's gauge, read at its scrape rate: a short request can fall between scrapes
        waiting = f"waiting max {count(v.waiting.max)}" if v.waiting.count else None
        conc = Cell(
            f"{count(v.concurrency.median)} · {count(v.concurrency.max)}",
            sub="; ".join(x for x in (waiting, "server-reported" if scraped else None) if x) or None,
            title=f"{v.concurrency.count} engine samples; waiting median {count(v.waiting.median)}"
            + ("; the server's running-requests gauge at its latest scrape (metrics_hz): a request between two scrapes is not seen" if scraped else ""),
        )
    else:
        conc = unavailable(v.unavailable.get("concurrency", "no engine sample in the measured window"), show_why=True)
    if v.kv_occupancy_max is not None and v.kv_bytes_total is None:
        kv = Cell(percent(v.kv_occupancy_max), sub="of the server's cache", title="the server's KV usage gauge (a fraction of its cache; no bytes given), peak")
    elif v.kv_occupancy_max is not None:
        preempted = f"; preempted at most {count(v.preempted_max)}" if v.preempted_max is not None else ""
        view = ctx.views.get(s.name)
        counts = (view.summary.facts.get("kv_bytes_used_counts") if view is not None else None) or "pages held"
        kv = Cell(percent(v.kv_occupancy_max), sub=f"of {nbytes(v.kv_bytes_total)}", title=f"kv_bytes_used / kv_bytes_total, peak; counts {counts}{preempted}")
    else:
        kv = unavailable(v.unavailable.get("kv_occupancy_max", "the engine reports no KV cache capacity (nor a usage fraction)"), show_why=True)
    itl = _pair(v.itl_s, f"no finished measured request with 2 or more {_unit(ctx, s)}s")
    return [_name_cell(ctx, s), queue, _pair(v.ttft_s, none), tpot, itl, _pair(v.e2e_s, none), conc, kv]


def _server_cells(ctx: ReportContext, s: Served) -> list[Cell]:
    """One row of what the server reported (serving.server_reported), each figure or why it is unavailable."""
    r = s.serving.server_reported
    assert r is not None
    why = r.unavailable

    def fraction(value: float | None, key: str, num: float | None, den: float | None, unit: str) -> Cell:
        if value is None:
            return unavailable(why.get(key, "not reported"), show_why=True)
        return Cell(percent(value), sub=f"{count(num)} of {count(den)} {unit}", title=f"{r.source}; scrapes {duration(r.span_s)} apart")

    hit = fraction(r.prefix_cache_hit_rate, "prefix_cache_hit_rate", r.prefix_hit_tokens, r.prefix_query_tokens, "tokens")
    accept = fraction(r.draft_acceptance_rate, "draft_acceptance_rate", r.accepted_tokens, r.draft_tokens, "draft tokens")
    if r.queue_s_mean is not None:
        title = "server-reported: Δ sum / Δ count of its queue-time histogram"
        queue = Cell(f"{duration(r.queue_s_mean)} mean", sub=f"{count(r.queue_requests)} requests", title=title)
    else:
        queue = unavailable(why.get("queue_s_mean", "not reported"), show_why=True)
    preempt = Cell(count(r.preemptions)) if r.preemptions is not None else unavailable(why.get("preemptions", "not reported"), show_why=True)
    view = ctx.views.get(s.name)
    found = view.summary.facts.get("server_metrics") if view is not None else None
    metrics: dict[str, Any] = found if isinstance(found, dict) else {}
    got = metrics.get("load")
    load: dict[str, Any] = got if isinstance(got, dict) else {}
    if r.prompt_tokens is not None or r.generation_tokens is not None:
        check = (
            f"whole load: server {count(load.get('server_prompt_tokens'))} prompt · {count(load.get('server_generation_tokens'))} generation tokens; "
            f"this client asked for {count(load.get('client_input_tokens'))} input and received {count(load.get('client_output_tokens'))} output tokens"
            if load
            else None
        )
        tokens = Cell(f"{count(r.prompt_tokens)} · {count(r.generation_tokens)}", sub="prompt · generation", title=check)
    else:
        tokens = unavailable(why.get("prompt_tokens", "not reported"), show_why=True)
    got = metrics.get("cost")
    cost: dict[str, Any] = got if isinstance(got, dict) else {}
    if cost.get("seconds_p50") is not None:
        scrapes = Cell(
            duration(cost["seconds_p50"]),
            sub=f"max {duration(cost.get('seconds_max'))} · {nbytes(cost.get('bytes_mean'))}",
            title=f"{count(cost.get('scrapes'))} scrapes, {count(cost.get('failed'))} failed, at {metrics.get('rate_hz')} Hz; {cost.get('measured', '')}",
        )
    else:
        scrapes = unavailable("no scrape cost recorded", show_why=True)
    return [_name_cell(ctx, s), hit, accept, queue, preempt, tokens, scrapes]


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


# ---------------------------------------------------------------- against context


def _held(s: Served) -> pd.DataFrame | None:
    """The tokens of context held at each engine sample (kv_tokens_held), for the KV scatter; None without a fit."""
    if s.serving.kv_by_context is None or s.table.empty or "input_tokens" not in s.table:
        return None
    held, _ = kv_tokens_held(s.table, s.engine)
    return held


def _contended(ctx: ReportContext, name: str) -> str | None:
    view = ctx.views.get(name)
    c = view.summary.contention if view is not None else None
    return c.summary if c is not None and c.contended else None


def context_sentences(s: Served, contended: str | None = None) -> list[str]:
    """What the context figure shows, in words: ITL growth from the shortest to the longest context bin, the KV
    cache's measured bytes per token of context against the declared, whether the running batch changed across the
    bins (it confounds ITL against context), how many sizes were capped; an unavailable figure with its reason.
    contended: the run's contention summary when it was measured under contention (ITL then varies with the
    other processes' load, so its growth is no claim)."""
    v = s.serving
    lines = []
    itl, kv = v.itl_by_context, v.kv_by_context
    if itl is not None and itl.growth is not None and itl.from_bin is not None and itl.to_bin is not None:
        a, b = itl.bins[itl.from_bin], itl.bins[itl.to_bin]
        text = (
            f"{s.name}: ITL p50 went from {duration(a.itl_p50_s)} at {a.context_lo}–{a.context_hi - 1} tokens of context to "
            f"{duration(b.itl_p50_s)} at {b.context_lo}–{b.context_hi - 1} (× {sig(itl.growth)}; p90 {duration(a.itl_p90_s)} → "
            f"{duration(b.itl_p90_s)}), over {count(itl.gaps)} gaps to a longest context of {count(itl.max_context_tokens)} tokens"
        )
    elif itl is not None:
        text = f"{s.name}: ITL growth against context not stated: fewer than 2 context bins with enough gaps ({count(itl.gaps)} gaps in all)"
    else:
        text = f"{s.name}: ITL against context unavailable: {v.context_unavailable.get('itl_by_context', 'not computed by this version')}"
    if kv is not None:
        declared = (
            f" (declared {nbytes(kv.declared_bytes_per_token)}: measured ÷ declared {sig(kv.slope_over_declared)})"
            if kv.declared_bytes_per_token and kv.slope_over_declared is not None
            else ""
        )
        pages = (
            f"; pages of {kv.page_tokens} tokens leave up to {kv.page_tokens - 1} tokens of slack per request, which lifts the line by "
            f"{nbytes(kv.intercept_bytes)} without changing its slope"
            if kv.page_tokens
            else ""
        )
        fit = f"r² {kv.r2:.3f} over {count(kv.samples)} engine samples"
        text += f"; the KV cache grew {nbytes(kv.slope_bytes_per_token)} per token of context held{declared}, {fit}{pages}."
    else:
        text += f"; KV bytes against context unavailable: {v.context_unavailable.get('kv_by_context', 'not computed by this version')}."
    lines.append(text)
    if itl is not None and contended:
        lines.append(f"{s.name}: measured under contention ({contended}): ITL against context there follows the other processes' load too; no claim.")
    if itl is not None and itl.batch_changed and itl.running_min is not None and itl.running_max is not None:
        lines.append(
            f"{s.name}: the running batch changed across the context bins (median {sig(itl.running_min)} to {sig(itl.running_max)}, "
            f"{itl.running_from}; ≥ {BATCH_CHANGE:g}×): ITL against context there mixes the context's cost with the batch's."
        )
    for side, capped in v.sizes_capped.items():
        size = getattr(v.load.sizes, side, None) if side in ("input", "output") else None
        spec = size.lognormal if isinstance(size, Distribution) else None
        stated = f"lognormal median {sig(spec.median)}, sigma {sig(spec.sigma)}, " if spec else ""
        lines.append(
            f"{s.name}: {side} lengths {stated}capped at {count(spec.max if spec else None)} tokens: {capped} of {v.requests} requests drawn above the cap "
            "were set to it."
        )
    return lines


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


def _sweep_cells(group: str, c: SweepCurve) -> list[Cell]:
    configured = ", ".join(sig(float((p.point or {})[RATE_KEY])) for p in c.points)  # every point has one (_sweeps)
    offered = Cell(", ".join(sig(r) for r in c.rates) + " req/s", cls="l", sub=f"load.rate {configured}", title=c.axis)
    if c.knee.rate is not None:
        knee_cell = Cell(rate(c.knee.rate, "req"), sub=f"p90 TTFT {duration(c.knee.latency)}", title=c.knee.basis)
    else:
        knee_cell = unavailable(c.knee.basis, show_why=True)
    kind = max_rate_kind(c.max_rate)
    if kind is None:
        best = unavailable(c.max_rate.basis, show_why=True)
    else:
        text = ("≥ " if kind == "at least" else "") + f"{rate(c.max_rate.rate, 'req')} ({'measured' if kind == 'at least' else kind})"
        best = Cell(text, sub=c.max_rate.basis, title=f"where SLO attainment crosses the {percent(c.target)} target")
    judged = Cell(f"SLO {c.slo}", cls="l", sub=f"target {percent(c.target)} attainment")
    return [Cell(group, cls="l"), offered, knee_cell, best, judged]
