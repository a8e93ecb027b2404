"""Serving metrics from per-request records: latency from arrival, SLO attainment, goodput, QoE.

Why: a load run is judged per request, not per iteration. This module turns the driver's records
(requests.parquet, one row per request: arrival, scheduled by the engine, every token's time,
finished; profiler/run/serve.py) into the figures metrics.md defines:
- queueing delay = scheduled by the engine - arrival (for a closed loop, arrival = when sent);
- TTFT = first token - arrival; E2E = last token - arrival (queueing inside both, as a user sees it);
- TPOT = (E2E - TTFT) / (output tokens - 1) (vLLM); ITL = the gap before each token after the first;
- SLO attainment = share of measured requests meeting every stated SLO (a failed or timed-out
  request meets none); goodput = such requests per second of the measured window (DistServe,
  OSDI'24), the window running from the first measured arrival to the last measured finish;
- QoE (Andes, arXiv 2404.16283): see `andes_qoe`.
Times are integer nanoseconds on time.monotonic_ns (CLOCK_MONOTONIC); outputs are seconds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

NS = 1e9
FINISHED = "finished"


def andes_qoe(token_s: np.ndarray | list[float], expected_ttft_s: float, tokens_per_s: float) -> float:
    """Andes' QoE of one request's token stream, in [0, 1].

    token_s: arrival times of each token in seconds from the request's arrival, non-decreasing, shape (n,).
    Expected timeline: token k (1-based) is expected at e_k = expected_ttft_s + (k - 1) / tokens_per_s.
    Delivered timeline: a client-side buffer shows token k at d_k = max(a_k, d_(k-1) + 1 / tokens_per_s)
    (never faster than the reader's speed), d_1 = a_1.
    QoE = area under the delivered cumulative-token curve / area under the expected one, both up to
    T = max(d_n, e_n), capped at 1. The area under a cumulative step curve up to T is sum_k (T - t_k).
    Source: Andes (Liu et al., arXiv 2404.16283), section 3; metrics.md "Serving under load".
    Returns nan for an empty stream; raises ValueError for non-positive parameters.
    """
    if expected_ttft_s <= 0 or tokens_per_s <= 0:
        raise ValueError("expected_ttft_s and tokens_per_s must be > 0")
    a = np.asarray(token_s, dtype=float)
    n = a.size
    if n == 0:
        return math.nan
    interval = 1.0 / tokens_per_s
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


def itl_s(requests: pd.DataFrame) -> np.ndarray:
    """Every gap between consecutive tokens of every finished request (s): per token, never per chunk."""
    gaps = [np.diff(np.asarray(t, dtype=float)) / NS for t in requests["token_ns"] if t is not None and len(t) > 1]
    return np.concatenate(gaps) if gaps else np.array([], dtype=float)


def meets_slo(table: pd.DataFrame, slo: Any) -> pd.Series:
    """True per request when it finished and meets every SLO given (`slo`: ttft_s, tpot_s, e2e_s, None = not judged).

    A request with one output token has no TPOT; it is judged on the others."""
    ok = table["status"] == FINISHED
    if slo.ttft_s is not None:
        ok &= table["ttft_s"] <= slo.ttft_s
    if slo.tpot_s is not None:
        ok &= table["tpot_s"].isna() | (table["tpot_s"] <= slo.tpot_s)
    if slo.e2e_s is not None:
        ok &= table["e2e_s"] <= slo.e2e_s
    return ok


def measured_window_ns(table: pd.DataFrame) -> tuple[float, float] | None:
    """(start, end) of the measured window in ns: the first measured arrival to the last measured request's end
    (finish, else its last token, else its arrival). `table`: per_request's output. None without a measured request."""
    m = table.loc[table["measured"] & table["arrival_ns"].notna()]
    if m.empty:
        return None
    end = m["finished_ns"].astype(float).fillna(m["arrival_ns"].astype(float) + m["e2e_s"].fillna(0) * NS)
    return float(m["arrival_ns"].astype(float).min()), float(end.max())


def window_s(table: pd.DataFrame) -> float | None:
    """The measured window's width in seconds (measured_window_ns); None when empty or zero."""
    bounds = measured_window_ns(table)
    width = (bounds[1] - bounds[0]) / NS if bounds else 0.0
    return float(width) if width > 0 else None


def interpolate_max_rate(rates: list[float], attainment: list[float], target: float) -> dict[str, Any]:
    """The highest offered rate whose SLO attainment reaches `target`, from a rate sweep.

    rates: offered rates (req/s) of the sweep points; attainment: their SLO attainment (0..1).
    Sorted by rate; the answer is the crossing, linearly interpolated between the last point at or
    above the target and the next point below it (kind "interpolated"); kind "measured" when that
    point sits exactly on the target; kind "at least" when the highest rate still meets it (the
    sweep did not go far enough); rate None with a reason when even the lowest rate misses it.
    Returns {"rate", "kind", "basis"}.
    """
    pairs = sorted(zip(rates, attainment, strict=True))
    if not pairs:
        return {"rate": None, "kind": None, "basis": "no sweep points"}
    if pairs[0][1] < target:
        return {"rate": None, "kind": None, "basis": f"even the lowest rate ({pairs[0][0]:g} req/s) misses {target:.0%} attainment"}
    for (r0, a0), (r1, a1) in zip(pairs, pairs[1:], strict=False):
        if a0 >= target > a1:
            if a0 == target:
                return {"rate": float(r0), "kind": "measured", "basis": f"measured: {r0:g} req/s attains exactly {target:.0%}"}
            rate = r0 + (a0 - target) / (a0 - a1) * (r1 - r0)
            return {"rate": float(rate), "kind": "interpolated", "basis": f"interpolated between {r0:g} and {r1:g} req/s"}
    return {"rate": float(pairs[-1][0]), "kind": "at least", "basis": "at least: the highest rate swept still meets it"}


def knee(rates: list[float], latency: list[float]) -> dict[str, Any]:
    """The knee of a latency-throughput curve: the point farthest below the chord from the first
    to the last point, after scaling both axes to [0, 1] (Kneedle, Satopaa et al., ICDCSW 2011).

    rates: offered or achieved rates (req/s); latency: a latency figure at each (e.g. p90 TTFT, s).
    Returns {"rate", "latency"} of the knee, or None values with a reason under 3 points or a flat curve.
    """
    pairs = sorted((r, v) for r, v in zip(rates, latency, strict=True) if np.isfinite(v))
    if len(pairs) < 3:
        return {"rate": None, "latency": None, "basis": "a knee needs at least 3 sweep points with a latency"}
    x = np.array([p[0] for p in pairs], dtype=float)
    y = np.array([p[1] for p in pairs], dtype=float)
    if np.ptp(y) <= 0 or np.ptp(x) <= 0:
        return {"rate": None, "latency": None, "basis": "the curve is flat"}
    if y[-1] <= y[0] or y[-1] < y.max():
        return {"rate": None, "latency": None, "basis": "no knee: latency is not highest at the highest rate (noise, or every point past capacity)"}
    xs = (x - x.min()) / np.ptp(x)
    ys = (y - y.min()) / np.ptp(y)
    below = xs - ys  # distance below the chord y = x of a rising convex curve
    i = int(np.argmax(below))
    if below[i] <= 0:
        return {"rate": None, "latency": None, "basis": "no knee: latency grows no faster than linearly"}
    return {"rate": float(x[i]), "latency": float(y[i]), "basis": "Kneedle on the normalised curve"}


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


def serving_summary(requests: pd.DataFrame, engine: pd.DataFrame | None, facts: dict[str, Any], load: dict[str, Any], objective: Any, seed: int = 0) -> Any:
    """The `Serving` record of one load run (runmodel.Serving), from requests.parquet, engine.parquet and the
    driver's facts (child.json `serve`). Figures over measured requests only (warmup and cooldown excluded)."""
    from ..runmodel import Serving, Stats
    from .stats import describe

    table = per_request(requests)
    measured = table.loc[table["measured"]]
    done = measured.loc[measured["status"] == FINISHED]
    window = window_s(table)
    sent = np.sort(measured["sent_ns"].dropna().to_numpy(dtype=float)) / NS
    offered = cv = cv_ci = None
    if sent.size > 2 and sent[-1] > sent[0]:
        offered = float((sent.size - 1) / (sent[-1] - sent[0]))
        if load.get("pattern") != "closed":
            gaps = np.diff(sent)
            cv = float(gaps.std(ddof=1) / gaps.mean()) if gaps.mean() > 0 else None
            cv_ci = cv_interval(gaps, seed)
    ok = meets_slo(measured, objective.slo)
    qoe = [
        andes_qoe((np.asarray(t, dtype=float) - a) / NS, objective.qoe.expected_ttft_s, objective.qoe.tokens_per_s)
        for t, a in zip(done["token_ns"], done["arrival_ns"], strict=True)
    ]
    stats = {name: Stats(**describe(done[name].to_numpy(dtype=float), seed)) for name in ("queue_s", "ttft_s", "tpot_s", "e2e_s")}
    share = (done["queue_s"] / done["e2e_s"]).replace([np.inf, -np.inf], np.nan).dropna()
    out = Serving(
        load=load,
        slo=objective.slo.stated(),
        slo_values={"ttft_s": objective.slo.ttft_s, "tpot_s": objective.slo.tpot_s, "e2e_s": objective.slo.e2e_s},
        attainment_target=objective.attainment_target,
        qoe_stated=objective.qoe.stated(),
        qoe_values={"expected_ttft_s": objective.qoe.expected_ttft_s, "tokens_per_s": objective.qoe.tokens_per_s},
        requests=int(len(table)),
        measured_requests=int(len(measured)),
        status_counts={str(k): int(v) for k, v in table["status"].value_counts().items()},
        window_s=window,
        offered_rate_rps=offered,
        arrival_cv=cv,
        arrival_cv_ci95=cv_ci,
        throughput_rps=len(done) / window if window else None,
        output_tokens_per_s=float(done["tokens"].sum()) / window if window else None,
        itl_s=Stats(**describe(itl_s(done), seed)),
        queue_share=float(share.median()) if len(share) else None,
        slo_attainment=float(ok.mean()) if len(measured) else None,
        goodput_rps=float(ok.sum()) / window if window else None,
        qoe=Stats(**describe(qoe, seed)),
        qoe_at_least_0_9=float(np.mean(np.asarray(qoe) >= 0.9)) if qoe else None,
        prefix_share=facts.get("prefix_share"),
        sender={k: v for k, v in (facts.get("sender") or {}).items()},
        long_requests=facts.get("long_requests"),
        **stats,
    )
    bounds = measured_window_ns(table)
    if engine is not None and not engine.empty and bounds is not None:
        e = engine.loc[(engine["t_ns"] >= bounds[0]) & (engine["t_ns"] <= bounds[1])]
        if not e.empty:
            out.concurrency = Stats(**describe(e["running"].to_numpy(dtype=float), seed))
            out.waiting = Stats(**describe(e["waiting"].to_numpy(dtype=float), seed))
            if e["kv_bytes_total"].notna().any():
                out.kv_bytes_total = float(e["kv_bytes_total"].max())
                out.kv_occupancy_max = float((e["kv_bytes_used"] / e["kv_bytes_total"]).max())
            if "preempted" in e and e["preempted"].notna().any():
                out.preempted_max = float(e["preempted"].max())
    return out


KEEPS_UP = 0.9
"""Below this share of the offered rate served, the engine is called overloaded."""


def serving_warnings(serving: Any, facts: dict[str, Any]) -> list[str]:
    """What a reader must see beside a load run's figures: an overloaded engine, requests changed to fit the model,
    trace rows skipped, records an engine got wrong."""
    out = []
    if serving is not None and serving.offered_rate_rps and serving.throughput_rps is not None and serving.throughput_rps < KEEPS_UP * serving.offered_rate_rps:
        out.append(
            f"overloaded: offered {serving.offered_rate_rps:.3g} req/s, served {serving.throughput_rps:.3g} req/s: the queue grew through the run, "
            "so its latencies depend on how long the run was"
        )
    fitted = facts.get("long_requests") or {}
    if fitted.get("touched"):
        how = f"scaled by {fitted['factor']:.3g}" if fitted.get("policy") == "scale" else "clipped"
        policy = fitted["policy"]
        out.append(f"{fitted['touched']} requests longer than the model's {fitted['max_positions']} positions were {how} (load.long_requests: {policy})")
    if facts.get("trace_failed_rows_skipped"):
        out.append(f"{facts['trace_failed_rows_skipped']} trace rows with 0 output tokens (requests that failed in production) were skipped")
    for bad in facts.get("bad_records") or []:
        out.append(f"the engine returned a bad record: {bad}")
    return out
