"""Serving metrics from per-request records: latency from arrival, SLO attainment, goodput, QoE.

Why: a load run is judged per request, not per iteration. This module turns the driver's records
(requests.parquet, one row per request: arrival, scheduled by the engine, every token's time,
finished; profiler/run/serve.py) into the figures metrics.md defines:
- queueing delay = scheduled by the engine - arrival (for a closed loop, arrival = when sent);
- TTFT = first token - arrival; E2E = last token - arrival (queueing inside both, as a user sees it);
- TPOT = (E2E - TTFT) / (output tokens - 1) (vLLM); ITL = the gap before each token after the first;
- SLO attainment = share of measured requests meeting every stated SLO (a failed or timed-out
  request meets none); goodput = such requests per second of the measured window (DistServe,
  OSDI'24); throughput = finished measured requests per second of the same window;
- the measured window runs from the first measured arrival to the last measured request's end: its finish, or, for
  one that did not finish (timed out at max_seconds, lost, interrupted), the moment the driver stopped waiting for it
  (`measured_window_ns`): a request that never ended was in the system from its arrival to the end of the run;
- concurrency held = mean measured requests in flight over the window (Little's law: the sum of each one's time in
  the system, arrival to end as above, clipped to the window, divided by the window); for a closed loop it is the
  concurrency the client kept, and its rate is the throughput (a closed loop has no offered rate of its own);
- QoE (Andes, arXiv 2404.16283): see `andes_qoe`.
Times are integer nanoseconds on time.monotonic_ns (CLOCK_MONOTONIC); outputs are seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from ..loadconfig import LoadConfig, Objective
from ..plugin import QoE
from ..runmodel import LoadFacts, SendAccuracy

NS = 1e9
FINISHED = "finished"


def _stream(token_s: np.ndarray | list[float], expected_ttft_s: float, tokens_per_s: float) -> tuple[np.ndarray, float]:
    """A QoE's inputs checked: the token times as floats (s) and the reader's interval 1 / tokens_per_s (s). Raises
    ValueError for non-positive parameters."""
    if expected_ttft_s <= 0 or tokens_per_s <= 0:
        raise ValueError("expected_ttft_s and tokens_per_s must be > 0")
    return np.asarray(token_s, dtype=float), 1.0 / tokens_per_s


def andes_qoe(token_s: np.ndarray | list[float], expected_ttft_s: float, tokens_per_s: float) -> float:
    """Andes' QoE of one request's token stream, in [0, 1].

    token_s: arrival times of each token in seconds from the request's arrival, non-decreasing, shape (n,).
    Expected timeline: token k (1-based) is expected at e_k = expected_ttft_s + (k - 1) / tokens_per_s.
    Delivered timeline: a client-side buffer shows token k at d_k = max(a_k, d_(k-1) + 1 / tokens_per_s)
    (never faster than the reader's speed), d_1 = a_1.
    QoE = area under the delivered cumulative-token curve / area under the expected one, both up to
    T = max(d_n, e_n), capped at 1. The area under a cumulative step curve up to T is sum_k (T - t_k).
    Source: Andes (Liu et al., arXiv 2404.16283), section 3; metrics.md "Serving under load".
    This is the `step` form, the default (plugin.QoE.form); `andes_qoe_authors` is the authors' own code's form.
    Returns nan for an empty stream; raises ValueError for non-positive parameters.
    """
    a, interval = _stream(token_s, expected_ttft_s, tokens_per_s)
    n = a.size
    if n == 0:
        return math.nan
    d = np.empty(n)
    d[0] = a[0]
    for k in range(1, n):
        d[k] = max(a[k], d[k - 1] + interval)
    e = expected_ttft_s + np.arange(n) * interval
    end = max(d[-1], e[-1])
    expected_area = float(np.sum(end - e))
    delivered_area = float(np.sum(end - d))
    if expected_area <= 0:  # one token expected exactly at the end: on time or early is full quality
        return 1.0 if d[-1] <= e[-1] else 0.0
    return float(min(1.0, max(0.0, delivered_area / expected_area)))


def andes_qoe_authors(token_s: np.ndarray | list[float], expected_ttft_s: float, tokens_per_s: float) -> float:
    """Andes' QoE of one request's token stream as the Andes authors' own code computes it (the `andes_code` form), in [0, 1].

    token_s: arrival times of each token in seconds from the request's arrival, non-decreasing, shape (n,).
    Source: Jiachen Liu (Andes' first author), github.com/AmberLJC/vllm, vllm/core/andes_utils/qoe_tracker.py,
    QoETracker.get_QoE with its defaults (predict off, ttft_penalty 1), commit de95ef3155e6 (May 2024); the same
    function is in AmberLJC/vllm-0.6.1 at 5597260, whose test_qoe_tracker.py works tokens at 10, 10.5, ..., 12.5 s
    against 1 s and 1 token/s to 17.5/66. Written out, with L = 1 / tokens_per_s, E = expected_ttft_s, a_0 = E:
    - a fluid display buffer: b_0 = 0, b_k = max(0, b_(k-1) + 1 - (a_k - a_(k-1)) / L), k = 1..n;
    - display gaps: g_k = L while the buffer holds tokens (b_k > 0), else a_k - a_(k-1), k = 2..n;
    - S_actual = sum_(k=2..n) (k - 1/2) g_k: trapezoids between heights k - 1 and k (the first token's rise is not counted);
    - S_target = n^2 L / 2 when a_n < E + n L, else n (T - E) - n^2 L / 2 with T = a_n + b_n L (the buffer drained):
      the area under the expected line from 0 at E to n at E + n L, up to the later of its end and T;
    - QoE = min(1, S_actual / S_target) (0 when S_target <= 0).
    Against `andes_qoe` (the paper's step curves): an on-time one-token answer scores 0 (S_actual = 0); S_actual does not
    depend on when the stream starts, so a late first token followed by tokens that end before E + n L scores about 1
    (tokens at 3, 3, 3 s against 1 s and 1 token/s: 8/9 here, 1/3 in the step form); late streams score higher (the
    authors' example above: 17.5/66 = 0.265, 15/69 = 0.217 in the step form).
    Returns nan for an empty stream (their code returns 1); raises ValueError for non-positive parameters.
    """
    a, interval = _stream(token_s, expected_ttft_s, tokens_per_s)
    n = a.size
    if n == 0:
        return math.nan
    prev, buffered, actual = expected_ttft_s, 0.0, 0.0
    for k in range(1, n + 1):
        gap = float(a[k - 1]) - prev
        buffered = max(0.0, buffered + 1.0 - gap / interval)
        if k >= 2:
            actual += (k - 0.5) * (interval if buffered > 0 else gap)
        prev = float(a[k - 1])
    if a[-1] < expected_ttft_s + n * interval:
        target = n * n * interval / 2
    else:
        end = a[-1] + buffered * interval
        target = n * (end - expected_ttft_s) - n * n * interval / 2
    return float(min(1.0, actual / target)) if target > 0 else 0.0


QOE_FORMS = {"step": andes_qoe, "andes_code": andes_qoe_authors}
"""Each QoE form (plugin.QoE.form) and the function that computes it: f(token_s, expected_ttft_s, tokens_per_s) -> QoE."""


def qoe_of(token_s: np.ndarray | list[float], qoe: QoE) -> float:
    """QoE of one request's token stream (seconds from its arrival, shape (n,)) against a reader or listener, in the
    form it names (QOE_FORMS); nan for an empty stream."""
    return QOE_FORMS[qoe.form](token_s, qoe.expected_ttft_s, qoe.tokens_per_s)


def per_request(requests: pd.DataFrame) -> pd.DataFrame:
    """One row per request with its latency figures in seconds (NaN where it never got there).

    requests: columns index, measured, status, arrival_ns, scheduled_ns, token_ns (list of ints),
    finished_ns. Adds queue_s, ttft_s, e2e_s, tpot_s (NaN below 2 tokens), tokens (delivered).
    """
    out = requests.copy()
    first = out["token_ns"].map(lambda t: t[0] if t is not None and len(t) else np.nan).astype(float)
    last = out["token_ns"].map(lambda t: t[-1] if t is not None and len(t) else np.nan).astype(float)
    tokens = out["token_ns"].map(lambda t: len(t) if t is not None else 0).astype(int)
    arrival = out["arrival_ns"].astype(float)
    out["tokens"] = tokens
    out["queue_s"] = (out["scheduled_ns"].astype(float) - arrival) / NS
    out["ttft_s"] = (first - arrival) / NS
    out["e2e_s"] = (last - arrival) / NS
    out["tpot_s"] = np.where(tokens > 1, (out["e2e_s"] - out["ttft_s"]) / (tokens - 1).clip(lower=1), np.nan)
    return out


def token_gaps_ns(token_ns: np.ndarray | list[int]) -> np.ndarray:
    """The gap before each token after the first (ns, float, shape (n - 1,)), per token, never per chunk: tokens that
    arrive together (one streamed chunk carrying k tokens: k equal times) after a gap g each get g / k, as the
    in-process deliveries do (metrics.md, ITL). Tokens that arrive with the first one have no gap of their own (they
    are inside TTFT): NaN. `token_ns` non-decreasing."""
    t = np.asarray(token_ns, dtype=float)
    if t.size < 2:
        return np.array([], dtype=float)
    starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])  # the first token of each chunk
    sizes = np.diff(np.r_[starts, t.size])
    chunk_gap = np.r_[np.nan, np.diff(t[starts]) / sizes[1:]]
    return np.repeat(chunk_gap, sizes)[1:]


def itl_s(requests: pd.DataFrame) -> np.ndarray:
    """Every gap between consecutive tokens of every finished request (s): per token, never per chunk (token_gaps_ns)."""
    gaps = [token_gaps_ns(t) / NS for t in requests["token_ns"] if t is not None and len(t) > 1]
    out = np.concatenate(gaps) if gaps else np.array([], dtype=float)
    return out[~np.isnan(out)]


def meets_slo(table: pd.DataFrame, slo: Any) -> pd.Series:
    """True per request when it finished and meets every SLO given (`slo`: ttft_s, tpot_s, e2e_s, None = not judged).

    A request with one output token has no TPOT; it is judged on the others."""
    ok = cast(pd.Series, table["status"] == FINISHED)
    if slo.ttft_s is not None:
        ok &= table["ttft_s"] <= slo.ttft_s
    if slo.tpot_s is not None:
        ok &= table["tpot_s"].isna() | (table["tpot_s"] <= slo.tpot_s)
    if slo.e2e_s is not None:
        ok &= table["e2e_s"] <= slo.e2e_s
    return ok


UNENDED = ("timed_out", "lost", "interrupted", "sent")
"""End states of a request the driver stopped waiting for: it never finished (nor failed) while the run watched it."""


def request_ends_ns(m: pd.DataFrame, stopped_ns: float | None) -> pd.Series:
    """Each request's end in ns (float; NaN for one never sent): its finish, else its last token; for one that did not
    end (UNENDED) `stopped_ns`, the moment the driver stopped waiting (LoadFacts.end_ns), when known. Without it (a
    child that died mid-load; a summary of an older run) such a request ends at its last token, else its arrival.
    `m`: per_request's output."""
    arrival = cast(pd.Series, m["arrival_ns"].astype(float))
    end = cast(pd.Series, m["finished_ns"].astype(float).fillna(arrival + m["e2e_s"].fillna(0) * NS))
    if stopped_ns is not None:
        unended = m["status"].isin(UNENDED) & arrival.notna()
        end = end.where(~unended, arrival.clip(lower=stopped_ns))
    return end


def measured_window_ns(table: pd.DataFrame, stopped_ns: float | None = None) -> tuple[float, float] | None:
    """(start, end) of the measured window in ns: the first measured arrival to the last measured request's end
    (request_ends_ns: a request that did not finish ends when the driver stopped, `stopped_ns`). `table`: per_request's
    output. None without a measured request that was sent."""
    m = table.loc[table["measured"] & table["arrival_ns"].notna()]
    if m.empty:
        return None
    return float(m["arrival_ns"].astype(float).min()), float(request_ends_ns(m, stopped_ns).max())


def window_s(table: pd.DataFrame, stopped_ns: float | None = None) -> float | None:
    """The measured window's width in seconds (measured_window_ns); None when empty or zero."""
    bounds = measured_window_ns(table, stopped_ns)
    width = (bounds[1] - bounds[0]) / NS if bounds else 0.0
    return float(width) if width > 0 else None


def concurrency_held(table: pd.DataFrame, stopped_ns: float | None = None) -> float | None:
    """Mean measured requests in flight over the measured window (Little's law, L = sum of times in system / window):
    each measured request from its arrival (for a closed loop, when it was sent) to its end (request_ends_ns), clipped
    to the window. None without a window."""
    bounds = measured_window_ns(table, stopped_ns)
    if bounds is None or bounds[1] <= bounds[0]:
        return None
    m = table.loc[table["measured"] & table["arrival_ns"].notna()]
    start = m["arrival_ns"].astype(float).clip(lower=bounds[0])
    end = request_ends_ns(m, stopped_ns).clip(upper=bounds[1])
    return float((end - start).clip(lower=0).sum() / (bounds[1] - bounds[0]))


@dataclass(frozen=True)
class MaxRate:
    """The highest offered rate meeting the attainment target (interpolate_max_rate): rate (req/s; None when even the
    lowest rate misses it), kind ('interpolated', 'measured', 'at least'; None with rate), and the basis in words."""

    rate: float | None
    kind: str | None
    basis: str


@dataclass(frozen=True)
class Knee:
    """The knee of a latency-throughput curve (knee): rate (req/s) and latency (s) there, both None with the reason
    in `basis` when the curve has none."""

    rate: float | None
    latency: float | None
    basis: str


def interpolate_max_rate(rates: list[float], attainment: list[float], target: float) -> MaxRate:
    """The highest offered rate whose SLO attainment reaches `target`, from a rate sweep.

    rates: offered rates (req/s) of the sweep points; attainment: their SLO attainment (0..1).
    Sorted by rate; the answer is the crossing, linearly interpolated between the last point at or
    above the target and the next point below it (kind "interpolated"); kind "measured" when that
    point sits exactly on the target; kind "at least" when the highest rate still meets it (the
    sweep did not go far enough); rate None with a reason when even the lowest rate misses it.
    """
    pairs = sorted(zip(rates, attainment, strict=True))
    if not pairs:
        return MaxRate(None, None, "no sweep points")
    if pairs[0][1] < target:
        return MaxRate(None, None, f"even the lowest rate ({pairs[0][0]:g} req/s) misses {target:.0%} attainment")
    for (r0, a0), (r1, a1) in zip(pairs, pairs[1:], strict=False):
        if a0 >= target > a1:
            if a0 == target:
                return MaxRate(float(r0), "measured", f"measured: {r0:g} req/s attains exactly {target:.0%}")
            rate = r0 + (a0 - target) / (a0 - a1) * (r1 - r0)
            return MaxRate(float(rate), "interpolated", f"interpolated between {r0:g} and {r1:g} req/s")
    return MaxRate(float(pairs[-1][0]), "at least", "at least: the highest rate swept still meets it")


def knee(rates: list[float], latency: list[float]) -> Knee:
    """The knee of a latency-throughput curve: the point farthest below the chord from the first
    to the last point, after scaling both axes to [0, 1] (Kneedle, Satopaa et al., ICDCSW 2011).

    rates: offered or achieved rates (req/s); latency: a latency figure at each (e.g. p90 TTFT, s).
    Returns the knee, or None values with a reason under 3 points or a flat curve.
    """
    pairs = sorted((r, v) for r, v in zip(rates, latency, strict=True) if np.isfinite(v))
    if len(pairs) < 3:
        return Knee(None, None, "a knee needs at least 3 sweep points with a latency")
    x = np.array([p[0] for p in pairs], dtype=float)
    y = np.array([p[1] for p in pairs], dtype=float)
    if np.ptp(y) <= 0 or np.ptp(x) <= 0:
        return Knee(None, None, "the curve is flat")
    if y[-1] <= y[0] or y[-1] < y.max():
        return Knee(None, None, "no knee: latency is not highest at the highest rate (noise, or every point past capacity)")
    xs = (x - x.min()) / np.ptp(x)
    ys = (y - y.min()) / np.ptp(y)
    below = xs - ys  # distance below the chord y = x of a rising convex curve
    i = int(np.argmax(below))
    if below[i] <= 0:
        return Knee(None, None, "no knee: latency grows no faster than linearly")
    return Knee(float(x[i]), float(y[i]), "Kneedle on the normalised curve")


def cv_interval(gaps: np.ndarray, seed: int = 0, resamples: int = 2000) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of the coefficient of variation (std / mean) of `gaps` (s, shape (n,))."""
    gaps = np.asarray(gaps, dtype=float)
    if gaps.size < 3 or gaps.mean() <= 0:
        return None
    rng = np.random.default_rng(seed)
    draws = gaps[rng.integers(0, gaps.size, size=(resamples, gaps.size))]
    means = draws.mean(axis=1)
    cvs = draws.std(axis=1, ddof=1)[means > 0] / means[means > 0]
    lo, hi = np.percentile(cvs, [2.5, 97.5])
    return float(lo), float(hi)


def serving_summary(
    requests: pd.DataFrame,
    engine: pd.DataFrame | None,
    facts: LoadFacts,
    load: LoadConfig,
    objective: Objective,
    seed: int = 0,
    workload_facts: dict[str, Any] | None = None,
) -> Any:
    """The `Serving` record of one load run (runmodel.Serving), from requests.parquet, engine.parquet and the
    driver's facts (child.json `serve`). Figures over measured requests only (warmup and cooldown excluded).
    workload_facts: the workload's declared facts (kv_bytes_per_token, page_size_tokens, prefix_caching), which
    the KV growth against context is compared with."""
    from ..runmodel import Serving, Stats
    from .stats import describe

    table = per_request(requests)
    measured = table.loc[table["measured"]]
    done = measured.loc[measured["status"] == FINISHED]
    stopped = float(facts.end_ns) if facts.end_ns is not None else None
    window = window_s(table, stopped)
    sent = np.sort(measured["sent_ns"].dropna().to_numpy(dtype=float)) / NS
    offered = cv = cv_ci = None
    if sent.size > 2 and sent[-1] > sent[0] and load.pattern != "closed":  # a closed loop's sends are paced by the engine
        offered = float((sent.size - 1) / (sent[-1] - sent[0]))
        gaps = np.diff(sent)
        cv = float(gaps.std(ddof=1) / gaps.mean()) if gaps.mean() > 0 else None
        cv_ci = cv_interval(gaps, seed)
    offered_m = measured.loc[measured["status"] != "not_sent"]  # a request never sent was never offered to the engine
    ok = meets_slo(offered_m, objective.slo)
    qoe = [qoe_of((np.asarray(t, dtype=float) - a) / NS, objective.qoe) for t, a in zip(done["token_ns"], done["arrival_ns"], strict=True)]
    stats = {name: Stats(**describe(done[name].to_numpy(dtype=float), seed)) for name in ("queue_s", "ttft_s", "tpot_s", "e2e_s")}
    share = (done["queue_s"] / done["e2e_s"]).replace([np.inf, -np.inf], np.nan).dropna()
    out = Serving(
        load=load,
        slo=objective.slo.stated(),
        slo_values={"ttft_s": objective.slo.ttft_s, "tpot_s": objective.slo.tpot_s, "e2e_s": objective.slo.e2e_s},
        attainment_target=objective.attainment_target,
        qoe_stated=objective.qoe.stated(),
        qoe_values={"expected_ttft_s": objective.qoe.expected_ttft_s, "tokens_per_s": objective.qoe.tokens_per_s},
        qoe_form=objective.qoe.form,
        requests=int(len(table)),
        measured_requests=int(len(measured)),
        status_counts={str(k): int(v) for k, v in table["status"].value_counts().items()},
        measured_status_counts={str(k): int(v) for k, v in measured["status"].value_counts().items()},
        measured_errors=top_errors(measured),
        window_s=window,
        window_ended_at_stop=stopped is not None and bool(measured["status"].isin(UNENDED).any()),
        concurrency_held=concurrency_held(table, stopped),
        queue_trend_s=queue_trend(done),
        offered_rate_rps=offered,
        arrival_cv=cv,
        arrival_cv_ci95=cv_ci,
        throughput_rps=len(done) / window if window else None,
        output_tokens_per_s=float(measured["tokens"].sum()) / window if window else None,
        itl_s=Stats(**describe(itl_s(done), seed)),
        queue_share=float(share.median()) if len(share) else None,
        slo_attainment=float(ok.mean()) if len(offered_m) else None,
        goodput_rps=float(ok.sum()) / window if window else None,
        qoe=Stats(**describe(qoe, seed)),
        qoe_at_least_0_9=float(np.mean(np.asarray(qoe) >= 0.9)) if qoe else None,
        prefix_share=facts.prefix_share,
        sender=facts.sender or SendAccuracy(),
        long_requests=facts.long_requests,
        sizes_capped=dict(facts.sizes_capped),
        queue_s=stats["queue_s"],
        ttft_s=stats["ttft_s"],
        tpot_s=stats["tpot_s"],
        e2e_s=stats["e2e_s"],
    )
    out.itl_by_context, out.kv_by_context, out.context_unavailable = context_growth(table, done, engine, workload_facts or {})
    out.server_reported = server_reported(workload_facts or {})
    bounds = measured_window_ns(table, stopped)
    if bounds is not None:
        out.window_start_ns, out.window_end_ns = int(bounds[0]), int(bounds[1])
    e = engine.loc[(engine["t_ns"] >= bounds[0]) & (engine["t_ns"] <= bounds[1])] if engine is not None and not engine.empty and bounds is not None else None
    out.unavailable = serving_unavailable(done, e)
    if e is not None:
        if not e.empty:
            out.concurrency = Stats(**describe(e["running"].to_numpy(dtype=float), seed))
            out.waiting = Stats(**describe(e["waiting"].to_numpy(dtype=float), seed))
            if e["kv_bytes_total"].notna().any():
                out.kv_bytes_total = float(e["kv_bytes_total"].max())
                out.kv_occupancy_max = float((e["kv_bytes_used"] / e["kv_bytes_total"]).max())
            elif "kv_usage" in e and e["kv_usage"].notna().any():
                out.kv_occupancy_max = float(e["kv_usage"].max())
            if "preempted" in e and e["preempted"].notna().any():
                out.preempted_max = float(e["preempted"].max())
    return out


def server_reported(workload_facts: dict[str, Any]) -> Any:
    """runmodel.ServerReported from an engine's facts `server_metrics` (its `window` deltas and `names`), or None where
    there are none (no such engine, or it read no metrics: the facts say why). A window that could not be read at all
    gives a record with only `unavailable`."""
    from ..runmodel import ServerReported

    metrics = workload_facts.get("server_metrics")
    if not isinstance(metrics, dict):
        return None
    window = metrics.get("window")
    if not isinstance(window, dict):
        return None
    fields = {k: v for k, v in window.items() if k in ServerReported.model_fields and k not in ("source", "unavailable")}
    unavailable = {str(k): str(v) for k, v in (window.get("unavailable") or {}).items()}
    return ServerReported(source=str(metrics.get("names", "")), unavailable=unavailable, **fields)


NO_FINISHED = "no finished measured request"


def serving_unavailable(done: pd.DataFrame, engine: pd.DataFrame | None) -> dict[str, str]:
    """Why queue_s, concurrency and kv_occupancy_max are empty, from the records: `done` the finished measured requests
    (per_request), `engine` the engine samples of the measured window (None: no samples). The reasons an engine's own
    silence gives (no scheduling time on any request, no running requests or KV capacity in any sample) come before
    the generic ones; an entry is left out where the figure is there."""
    out: dict[str, str] = {}
    if done.empty:
        out["queue_s"] = NO_FINISHED
    elif bool(done["queue_s"].isna().all()):
        out["queue_s"] = "the engine reported no scheduling time for any request (scheduled_ns): the wait inside it is not seen (a server over HTTP)"
    if engine is None or engine.empty:
        out["concurrency"] = "no engine sample in the measured window"
    elif bool(engine["running"].isna().all()):
        out["concurrency"] = "the engine reported no running requests in any sample: its scheduler is not seen (a server over HTTP)"
    kv_usage = engine["kv_usage"] if engine is not None and "kv_usage" in engine else None
    if (engine is None or engine.empty or bool(engine["kv_bytes_total"].isna().all())) and (kv_usage is None or bool(kv_usage.isna().all())):
        out["kv_occupancy_max"] = "the engine reports no KV cache capacity (nor a usage fraction)"
    return out


def context_growth(table: pd.DataFrame, done: pd.DataFrame, engine: pd.DataFrame | None, workload_facts: dict[str, Any]) -> tuple[Any, Any, dict[str, str]]:
    """(runmodel.ITLByContext or None, runmodel.KVByContext or None, {field: why it is None}) of one load run.

    table: per_request over every request (the running batch counts warmup requests too); done: the finished
    measured requests, whose gaps are binned; engine: engine.parquet; workload_facts: kv_bytes_per_token,
    page_size_tokens, prefix_caching as the workload declared them."""
    from ..runmodel import ContextBin, ITLByContext, KVByContext

    why: dict[str, str] = {}
    itl = kv = None
    gaps = context_gaps(done) if "input_tokens" in done else pd.DataFrame()
    if gaps.empty:
        why["itl_by_context"] = (
            "the request records carry no input token counts" if "input_tokens" not in done else "no finished measured request with 2 or more tokens"
        )
    else:
        gaps["running"], running_from = running_at_gaps(table, engine, gaps["end_ns"].to_numpy())
        binned = itl_by_context(gaps)
        bins = [ContextBin.model_validate({k: (None if k == "running_p50" and pd.isna(v) else v) for k, v in row.items()}) for row in binned.to_dict("records")]
        full = [i for i, b in enumerate(bins) if b.gaps >= MIN_BIN_GAPS]
        itl = ITLByContext(
            bin_tokens=int(binned["context_hi"].iloc[0] - binned["context_lo"].iloc[0]),
            bins=bins,
            gaps=int(len(gaps)),
            max_context_tokens=int(cast(pd.Series, gaps["context_tokens"]).max()),
            running_from=running_from,
        )
        if len(full) >= 2:
            first, last = bins[full[0]], bins[full[-1]]
            itl.from_bin, itl.to_bin = full[0], full[-1]
            itl.growth = last.itl_p50_s / first.itl_p50_s if first.itl_p50_s > 0 else None
            running = [r for i in full if (r := bins[i].running_p50) is not None]
            if running:
                itl.running_min, itl.running_max = float(min(running)), float(max(running))
                itl.batch_changed = bool(itl.running_min > 0 and itl.running_max / itl.running_min >= BATCH_CHANGE)
    if workload_facts.get("prefix_caching"):
        why["kv_by_context"] = "prefix caching keeps freed pages for reuse and the engine counts them as held, so KV bytes used do not follow the tokens held"
    else:
        held, reason = kv_tokens_held(table, engine) if "input_tokens" in table else (pd.DataFrame(), "the request records carry no input token counts")
        try:
            if reason is not None:
                raise ValueError(reason)
            fit = fit_kv_growth(held)
        except ValueError as exc:
            lost = "token_ns" in table and not bool(table["token_ns"].map(lambda x: x is not None and len(x) > 0).all())
            why["kv_by_context"] = str(exc) + (
                "; samples after the first sent request whose token times were not recorded (timed out, lost or failed) are left out" if lost else ""
            )
        else:
            declared = workload_facts.get("kv_bytes_per_token")
            declared = float(declared) if isinstance(declared, (int, float)) and declared > 0 else None
            page = workload_facts.get("page_size_tokens")
            kv = KVByContext(
                **fit,
                running_mean=float(cast(pd.Series, held["running"]).mean()) if bool(held["running"].notna().any()) else None,
                declared_bytes_per_token=declared,
                slope_over_declared=fit["slope_bytes_per_token"] / declared if declared else None,
                page_tokens=int(page) if isinstance(page, int) else None,
            )
    return itl, kv, why


KEEPS_UP = 0.9
"""Below this share of the offered rate served, with measured requests cut off by max_seconds, the run is too short
to tell an overloaded engine from long requests."""
OVERLOAD_GROWTH = 2.0
OVERLOAD_MIN_S = 0.010
"""An open loop is called overloaded when the queueing delay of its last quarter of requests is at least OVERLOAD_GROWTH
times its first quarter's and at least OVERLOAD_MIN_S longer: the queue grew through the run (queue_trend)."""
TREND_MIN_REQUESTS = 8


def queue_trend(done: pd.DataFrame) -> tuple[float, float] | None:
    """(median queueing delay of the first quarter, of the last quarter) of the finished measured requests in arrival
    order, in s: queue_s where the engine reports when it scheduled a request, else TTFT (a server over HTTP reports no
    scheduling; prefill is inside it then, so TTFT is taken at the median prompt length: ttft_at_median_prompt). None
    below TREND_MIN_REQUESTS finished requests."""
    if len(done) < TREND_MIN_REQUESTS:
        return None
    ordered = done.sort_values("arrival_ns")
    values = ordered["queue_s"].to_numpy(dtype=float) if bool(ordered["queue_s"].notna().any()) else ttft_at_median_prompt(ordered)
    quarter = len(values) // 4
    first, last = np.nanmedian(values[:quarter]), np.nanmedian(values[-quarter:])
    return (float(first), float(last)) if np.isfinite(first) and np.isfinite(last) else None


def ttft_at_median_prompt(done: pd.DataFrame) -> np.ndarray:
    """Each request's TTFT (s) with its prompt length's share moved to the median prompt: ttft - b (input_tokens -
    median input_tokens), b the least-squares slope of TTFT on input_tokens over these requests (numpy.polyfit, degree
    1; at least 0); TTFT itself where the prompts have one length or no counts. TTFT holds queueing and prefill; without
    this, long prompts that happen to come late read as a growing queue. Assumes prefill time linear in prompt length."""
    ttft = done["ttft_s"].to_numpy(dtype=float)
    tokens = done["input_tokens"].to_numpy(dtype=float) if "input_tokens" in done else np.full(len(done), np.nan)
    ok = np.isfinite(ttft) & np.isfinite(tokens)
    if ok.sum() < 3 or np.unique(tokens[ok]).size < 2:
        return ttft
    slope = max(0.0, float(np.polyfit(tokens[ok], ttft[ok], 1)[0]))
    return ttft - slope * (tokens - float(np.median(tokens[ok])))


def _unended(serving: Any) -> tuple[int, int]:
    """(measured requests the run stopped waiting for, measured requests never sent), from the summary's counts."""
    counts = serving.measured_status_counts
    return sum(n for status, n in counts.items() if status in UNENDED), counts.get("not_sent", 0)


def closed_loop_warnings(serving: Any) -> list[str]:
    """A closed loop in its own terms: the concurrency it held against the one it was given, and the measured requests
    still in flight or never sent when the run stopped (a closed loop has no queue of its own to grow: the client waits)."""
    unended, unsent = _unended(serving)
    if not unended and not unsent:
        return []
    held = f"{serving.concurrency_held:.3g}" if serving.concurrency_held is not None else "an unknown number of"
    finished = serving.measured_status_counts.get(FINISHED, 0)
    if finished and serving.throughput_rps:
        served = f"finished {finished} ({serving.throughput_rps:.3g} req/s), so its latencies are those of the requests that ended first"
    else:
        served = "finished none, so no request's latency statistics"
    return [
        f"closed loop at concurrency {serving.load.concurrency}: when max_seconds stopped the run, {unended} measured request(s) were still in "
        f"flight and {unsent} never sent; it held {held} requests in flight and {served}; raise measure.max_seconds or send fewer requests"
    ]


def open_loop_warnings(serving: Any) -> list[str]:
    """An open loop whose queue grew through the run (queue_trend: overloaded), or that served below its offered rate
    while measured requests were cut off by max_seconds (too short a run to tell overload from long requests)."""
    out = []
    trend = serving.queue_trend_s
    if trend is not None and trend[1] >= OVERLOAD_GROWTH * trend[0] and trend[1] - trend[0] >= OVERLOAD_MIN_S:
        what = "the queueing delay" if serving.queue_s.count else "TTFT at the median prompt length (the server reports no queueing: TTFT stands in)"
        out.append(
            f"overloaded: {what} grew from {trend[0]:.3g} s (median, first quarter of the requests) to {trend[1]:.3g} s (last quarter): "
            "the queue grew through the run, so its latencies depend on how long the run was"
        )
    unended, _ = _unended(serving)
    served_less = serving.offered_rate_rps and serving.throughput_rps is not None and serving.throughput_rps < KEEPS_UP * serving.offered_rate_rps
    if unended and served_less:
        out.append(
            f"offered {serving.offered_rate_rps:.3g} req/s, served {serving.throughput_rps:.3g} req/s, but {unended} of {serving.measured_requests} "
            "measured requests had not ended when max_seconds stopped the run: too short a run to tell an overloaded engine from long "
            "requests; raise measure.max_seconds"
        )
    return out


TOP_ERRORS = 3
"""How many of the measured requests' most common error texts a summary keeps (Serving.measured_errors)."""


def top_errors(measured: pd.DataFrame) -> dict[str, int]:
    """The most common error texts of measured requests that did not finish (at most TOP_ERRORS, most common first)
    -> how many requests had each; {} when none has an error text."""
    if "error" not in measured:
        return {}
    errors = measured.loc[measured["status"] != FINISHED, "error"].dropna()
    return {str(k): int(v) for k, v in errors.value_counts().head(TOP_ERRORS).items()}


def error_text(serving: Any) -> str:
    """The most common error of the measured requests, with its count, for a one-line message ("" when none)."""
    if not serving.measured_errors:
        return ""
    text, n = next(iter(serving.measured_errors.items()))
    more = len(serving.measured_errors) - 1
    return f"; most common error ({n}): {text}" + (f" (and {more} other error text{'s' if more > 1 else ''}: requests.parquet, column error)" if more else "")


def none_finished(serving: Any) -> str | None:
    """Why a load run is a failure of the system it measured: measured requests were sent, none of them finished, and
    some failed or were lost (an unreachable route, a rejected request, a server or engine that died). None when at
    least one finished, none was sent, or every unfinished one timed out (max_seconds stopped the run first: too short a
    run for the requests, which its own warning says, is not shown to be a failure of the system). The run keeps every
    record; the workload is failed, never ok (run/finish.py)."""
    counts = serving.measured_status_counts
    sent = serving.measured_requests - counts.get("not_sent", 0)
    if sent <= 0 or counts.get(FINISHED) or not (counts.get("failed") or counts.get("lost")):
        return None
    ended = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(counts.items()) if status != "not_sent")
    return f"none of the {sent} measured requests sent finished ({ended}){error_text(serving)}"


def outcome_warnings(serving: Any) -> list[str]:
    """Measured requests that failed, that were never sent (their send time fell after max_seconds), or a run in which
    none finished: said in the terminal, not only in the report's table."""
    counts, measured = serving.measured_status_counts, serving.measured_requests
    out = []
    if counts.get("failed"):
        said = error_text(serving) or " (the engine's errors are in requests.parquet, column error)"
        out.append(f"{counts['failed']} of {measured} measured requests failed{said}")
    if counts.get("not_sent") and serving.load.pattern != "closed":  # a closed loop says it in its own line
        out.append(
            f"{counts['not_sent']} of {measured} measured requests were never sent: their send time fell after max_seconds stopped the run "
            "(left out of SLO attainment); raise measure.max_seconds or send fewer requests"
        )
    if measured and not counts.get(FINISHED) and serving.load.pattern != "closed":
        out.append(
            f"none of the {measured} measured requests finished: no request's latency statistics (the tokens a cut-off request "
            "received, where its engine says, are in requests.parquet and in output tokens/s)"
        )
    return out


def serving_warnings(serving: Any, facts: LoadFacts) -> list[str]:
    """What a reader must see beside a load run's figures: an overloaded engine, requests changed to fit the model,
    trace rows skipped, records an engine got wrong."""
    out = []
    if serving is not None and serving.load.pattern == "closed":
        out.extend(closed_loop_warnings(serving))
    elif serving is not None:
        out.extend(open_loop_warnings(serving))
    if serving is not None:
        out.extend(outcome_warnings(serving))
    fitted = facts.long_requests
    if fitted is not None and fitted.touched:
        how = f"scaled by {fitted.factor:.3g}" if fitted.policy == "scale" and fitted.factor is not None else "clipped"
        out.append(f"{fitted.touched} requests longer than the model's {fitted.max_positions} positions were {how} (load.long_requests: {fitted.policy})")
    if facts.trace_failed_rows_skipped:
        out.append(
            f"{facts.trace_failed_rows_skipped} trace rows in the replayed span had 0 output tokens (requests that failed in production) and were skipped"
        )
    for bad in facts.bad_records:
        out.append(f"the engine returned a bad record: {bad}")
    return out


# ---------------------------------------------------------------- per-token latency and KV cache against context

ITL_BINS = 16
"""Context bins of ITL against context at most: the bin width is the smallest 1, 2 or 5 x 10^k tokens giving no more."""
MIN_BIN_GAPS = 5
"""A context bin needs this many gaps to be an end of the stated ITL growth (fewer are shown, not compared)."""
BATCH_CHANGE = 1.5
"""The running batch changed a lot when its median over the gaps of one context bin is this many times another bin's."""
MIN_KV_SAMPLES = 3


def bin_width(max_context: int, bins: int = ITL_BINS) -> int:
    """The smallest width of 1, 2 or 5 x 10^k tokens such that ceil((max_context + 1) / width) <= bins (contexts 0..max)."""
    if max_context < 0 or bins < 1:
        raise ValueError(f"bin_width needs max_context >= 0 and bins >= 1 (got {max_context}, {bins})")
    scale = 1
    while True:
        for step in (1, 2, 5):
            width = step * scale
            if math.ceil((max_context + 1) / width) <= bins:
                return width
        scale *= 10


def running_at(requests: pd.DataFrame, t_ns: np.ndarray) -> np.ndarray:
    """Requests running in the engine at each time of `t_ns` (int64 ns, shape (m,)): those scheduled at or before t whose
    last token (else finished) is at or after t, counted from per-request records (every request, warmup included).

    requests: columns scheduled_ns, token_ns, finished_ns. Returns float64 counts, shape (m,)."""
    start = requests["scheduled_ns"].astype(float).to_numpy()
    last = requests["token_ns"].map(lambda t: t[-1] if t is not None and len(t) else np.nan).astype(float).to_numpy()
    end = np.where(np.isfinite(last), last, requests["finished_ns"].astype(float).to_numpy())
    ok = np.isfinite(start) & np.isfinite(end)
    starts, ends = np.sort(start[ok]), np.sort(end[ok])
    t = np.asarray(t_ns, dtype=float)
    return (np.searchsorted(starts, t, side="right") - np.searchsorted(ends, t, side="left")).astype(float)


def running_at_gaps(table: pd.DataFrame, engine: pd.DataFrame | None, t_ns: np.ndarray) -> tuple[np.ndarray, str]:
    """Requests running at each time of `t_ns` (ns, shape (m,)) and where the count comes from: the engine's own
    `running` at its last sample at or before each time ("engine samples"; NaN before its first sample), else,
    without engine samples, running_at over the request records ("request records", which miss requests whose
    records were never returned: timed out or lost)."""
    if engine is not None and not engine.empty and "running" in engine and bool(engine["running"].notna().any()):
        e = engine.loc[engine["running"].notna()].sort_values("t_ns")
        at = np.searchsorted(e["t_ns"].to_numpy(dtype=np.int64), np.asarray(t_ns, dtype=np.int64), side="right") - 1
        running = e["running"].to_numpy(dtype=float)
        return np.where(at >= 0, running[np.clip(at, 0, None)], np.nan), "engine samples"
    return running_at(table, t_ns), "request records"


def context_gaps(requests: pd.DataFrame) -> pd.DataFrame:
    """Every inter-token gap of every request with its context: one row per gap.

    requests: columns input_tokens, token_ns (list of ns per token). The i-th gap (i = 1..n-1, between tokens i
    and i+1 of n) is produced by a forward over input_tokens + i tokens of context (the prompt and the i tokens
    already generated), so its context is input_tokens + i. Returns columns index (the request's), context_tokens,
    itl_s, end_ns (the later token's time)."""
    index: list[np.ndarray] = []
    context: list[np.ndarray] = []
    itl: list[np.ndarray] = []
    end: list[np.ndarray] = []
    for i, inp, tokens in zip(requests["index"], requests["input_tokens"], requests["token_ns"], strict=True):
        if tokens is None or len(tokens) < 2:
            continue
        t = np.asarray(tokens, dtype=np.int64)
        gaps = token_gaps_ns(t)
        keep = ~np.isnan(gaps)  # tokens that came with the first one have no gap of their own
        index.append(np.full(int(keep.sum()), int(i), dtype=np.int64))
        context.append((int(inp) + np.arange(1, len(t), dtype=np.int64))[keep])
        itl.append(gaps[keep] / NS)
        end.append(t[1:][keep])
    if not index:
        return pd.DataFrame({"index": np.array([], dtype=np.int64), "context_tokens": np.array([], dtype=np.int64), "itl_s": [], "end_ns": []})
    return pd.DataFrame(
        {"index": np.concatenate(index), "context_tokens": np.concatenate(context), "itl_s": np.concatenate(itl), "end_ns": np.concatenate(end)}
    )


def itl_by_context(gaps: pd.DataFrame, width: int | None = None, bins: int = ITL_BINS) -> pd.DataFrame:
    """ITL binned by context length, up to the longest context: bin k holds the gaps whose context is in
    [k * width, (k + 1) * width) tokens; empty bins are left out.

    gaps: context_gaps' output, optionally with a `running` column (requests running at each gap's end).
    width: tokens per bin (default bin_width(max context, bins)). Returns one row per non-empty bin in context
    order: context_lo, context_hi (tokens, hi exclusive), gaps, itl_p50_s, itl_p90_s (numpy's linear percentiles,
    seconds), running_p50 (NaN without a running column). Raises ValueError for width < 1."""
    columns = ["context_lo", "context_hi", "gaps", "itl_p50_s", "itl_p90_s", "running_p50"]
    if gaps.empty:
        return pd.DataFrame(columns=columns)
    context = gaps["context_tokens"].to_numpy(dtype=np.int64)
    width = width or bin_width(int(context.max()), bins)
    if width < 1:
        raise ValueError(f"itl_by_context needs a bin width >= 1 token (got {width})")
    keyed = gaps.assign(bin=context // width)
    out = []
    for key, group in keyed.groupby("bin", sort=True):
        k = cast(int, key)
        itl = group["itl_s"].to_numpy(dtype=float)
        known = group["running"].dropna() if "running" in group else pd.Series(dtype=float)
        running = float(np.median(known)) if len(known) else np.nan
        p50, p90 = np.percentile(itl, [50, 90])
        out.append(
            {
                "context_lo": int(k) * width,
                "context_hi": (int(k) + 1) * width,
                "gaps": len(itl),
                "itl_p50_s": float(p50),
                "itl_p90_s": float(p90),
                "running_p50": running,
            }
        )
    return pd.DataFrame(out, columns=columns)


def kv_tokens_held(requests: pd.DataFrame, engine: pd.DataFrame | None) -> tuple[pd.DataFrame, str | None]:
    """The tokens of context the engine holds at each of its samples, beside the KV bytes it reports.

    A request holds its prompt from when the engine scheduled it, then one more token per token delivered:
    input_tokens + k after its k-th token (the next forward writes that token's K and V), until its last token
    (else its finish). requests: scheduled_ns, token_ns, finished_ns, input_tokens, sent_ns; engine: t_ns,
    kv_bytes_used, running. Samples taken after a request was sent whose record has no token times (timed out,
    lost, failed) are left out: what it held is unknown. Returns (DataFrame t_ns, tokens_held, kv_bytes_used,
    running, one row per kept sample with a KV reading; None) or (empty DataFrame, the reason)."""
    empty = pd.DataFrame({"t_ns": [], "tokens_held": [], "kv_bytes_used": [], "running": []})
    if engine is None or engine.empty or "kv_bytes_used" not in engine or not bool(engine["kv_bytes_used"].notna().any()):
        return empty, "the engine reports no KV bytes used"
    e = engine.loc[engine["kv_bytes_used"].notna()].sort_values("t_ns")
    t = e["t_ns"].to_numpy(dtype=np.int64)
    known = requests["token_ns"].map(lambda x: x is not None and len(x) > 0) & requests["scheduled_ns"].notna()
    unknown_sent = requests.loc[~known, "sent_ns"].dropna()
    if len(unknown_sent):
        keep = t < float(unknown_sent.min())
        e, t = e.loc[keep], t[keep]
    if not len(t):
        return empty, "every engine sample came after a request whose token times were not recorded (timed out, lost or failed)"
    held = np.zeros(len(t), dtype=np.int64)
    rows = requests.loc[known]
    for scheduled, inp, token_ns, finished in zip(rows["scheduled_ns"], rows["input_tokens"], rows["token_ns"], rows["finished_ns"], strict=True):
        tokens = np.asarray(token_ns, dtype=np.int64)
        end = int(tokens[-1]) if pd.isna(finished) else max(int(tokens[-1]), int(finished))
        inside = (t >= int(scheduled)) & (t <= end)
        held[inside] += int(inp) + np.searchsorted(tokens, t[inside], side="right")
    running = e["running"].to_numpy(dtype=float) if "running" in e else np.full(len(t), np.nan)
    return pd.DataFrame({"t_ns": t, "tokens_held": held, "kv_bytes_used": e["kv_bytes_used"].to_numpy(dtype=float), "running": running}), None


def fit_kv_growth(held: pd.DataFrame) -> dict[str, Any]:
    """Least-squares line kv_bytes_used = slope * tokens_held + intercept over the samples of kv_tokens_held.

    The slope is the measured KV bytes per token of context; with a paged cache each running request holds whole
    pages (up to page_size - 1 tokens of slack, about page_size / 2 on average), which lifts the line by about
    running x page_size / 2 x bytes per token (the intercept) and scatters the points, but leaves the slope.
    Returns {slope_bytes_per_token, intercept_bytes, r2 (1 - SS_res / SS_tot), samples, max_tokens_held}.
    Raises ValueError with fewer than MIN_KV_SAMPLES samples or a single distinct token count."""
    x = held["tokens_held"].to_numpy(dtype=float)
    y = held["kv_bytes_used"].to_numpy(dtype=float)
    if len(x) < MIN_KV_SAMPLES:
        raise ValueError(f"a KV growth fit needs at least {MIN_KV_SAMPLES} engine samples with a KV reading (got {len(x)})")
    if np.ptp(x) == 0:
        raise ValueError(f"every engine sample holds the same {int(x[0])} tokens: no growth to fit")
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0 else 1.0
    return {"slope_bytes_per_token": float(slope), "intercept_bytes": float(intercept), "r2": r2, "samples": int(len(x)), "max_tokens_held": int(x.max())}
