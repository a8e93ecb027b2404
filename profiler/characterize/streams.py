"""A workload's own concurrent streams: each condition's figures, the interference between streams,
the time to first perceived output and the QoE of requests that share an iteration.

Why: an always-on assistant takes camera frames at a fixed rate and voice queries at random times
on one device, with several models (vision encoder, language model, speech recognition and
synthesis) sharing it. What one stream costs the other is a property of the workload, measured by
running the streams alone and together within one run (Declaration.streams: every span carries
`condition`, the streams running, joined by '+'); declared concurrency is the workload's own, not
contention from outside.

- Per condition: the iterations that ran it, each phase's latency, the per-request metrics, the
  deadlines (misses, drops), and the GPU power over its iterations (NVML energy counter,
  profiler/characterize/energy.py): power in W is also the energy per hour of use in Wh.
- Interference, per phase that ran in more than one condition: latency together / alone as a ratio
  of medians with a 95% bootstrap interval (stats.ratio_ci); slower or faster when the interval
  excludes 1, no difference when it lies within [1/1.1, 1.1] (the differences table's band),
  inconclusive otherwise, with fewer than MIN_SAMPLES spans a side, or under contention.
- Time to first output (first audio): the declared presentation phase's first span per request,
  end - the request's start (`obs_ns`, else start).
- QoE (Andes, profiler/characterize/serving.py: qoe_of, in the form the listener names, step by default)
  of each request's token stream against the declared listener: tokens delivered before the first
  presentation span ends are heard when it ends (the first sentence's audio), later ones when they
  were delivered.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..measure.nvml import MIN_WINDOW_S
from ..plugin import ITERATION, Declaration
from ..runmodel import ConditionStats, Interference, Streams
from .analysis import NS, missed_deadlines, timed_spans
from .serving import qoe_of
from .stats import NO_DIFFERENCE_BAND, ratio_ci

MIN_SAMPLES = 5
"""Spans a side below which an interference ratio is inconclusive."""


def request_starts(spans: pd.DataFrame, request: str) -> pd.Series:
    """Start (ns) of each request span carrying `request_id`: its `obs_ns`, else its start; index (iteration, request_id)."""
    if "request_id" not in spans:
        return pd.Series(dtype=float)
    r = spans.loc[(spans["phase"] == request) & spans["request_id"].notna()]
    start = r["start_ns"].astype(float)
    if "obs_ns" in r:
        start = r["obs_ns"].astype(float).fillna(start)
    return pd.Series(start.to_numpy(), index=pd.MultiIndex.from_arrays([r["iteration"], r["request_id"]], names=["iteration", "request_id"]))


def in_flight_at_arrival(spans: pd.DataFrame, request: str) -> np.ndarray:
    """For each request span with a request_id: how many requests of its iteration had arrived and not ended at its
    arrival, itself included (>= 1), shape (requests,)."""
    if spans.empty or "request_id" not in spans:
        return np.array([], dtype=float)
    starts = request_starts(spans, request)
    r = spans.loc[(spans["phase"] == request) & spans["request_id"].notna()]
    ends = pd.Series(r["end_ns"].astype(float).to_numpy(), index=starts.index)
    out = []
    for iteration in starts.index.get_level_values(0).unique():
        a, e = starts.loc[iteration].to_numpy(), ends.loc[iteration].to_numpy()
        out.extend(((a[None, :] <= a[:, None]) & (e[None, :] > a[:, None])).sum(axis=1))
    return np.asarray(out, dtype=float)


def _first_end(spans: pd.DataFrame, phase: str) -> pd.Series:
    p = spans.loc[(spans["phase"] == phase) & spans["request_id"].notna()]
    return p.groupby(["iteration", "request_id"])["end_ns"].min().astype(float)


def first_output_s(spans: pd.DataFrame, request: str, presentation: str) -> np.ndarray:
    """Seconds from each request's start to the end of its first `presentation` span, shape (requests with one,)."""
    if spans.empty or "request_id" not in spans:
        return np.array([], dtype=float)
    starts = request_starts(spans, request)
    first = _first_end(spans, presentation)
    return ((first - starts.reindex(first.index)) / NS).dropna().to_numpy(dtype=float)


def qoe_samples(spans: pd.DataFrame, declaration: Declaration) -> np.ndarray:
    """Andes QoE of each request's delivered tokens against declaration.qoe, in its form (qoe.form), shape (requests,);
    empty without one.

    A delivery of k units to one sequence is k tokens at its end. With a presentation phase, tokens
    delivered before the request's first presentation span ends count as delivered at that end.
    """
    qoe = declaration.qoe
    if qoe is None or spans.empty or "request_id" not in spans:
        return np.array([], dtype=float)
    deliveries = declaration.deliveries
    d = spans.loc[(spans["phase"].isin(deliveries) if deliveries else spans["phase"] != ITERATION) & (spans["units"] > 0) & spans["request_id"].notna()]
    starts = request_starts(spans, declaration.request)
    heard = _first_end(spans, declaration.presentation) if declaration.presentation else pd.Series(dtype=float)
    out = []
    for key, g in d.groupby(["iteration", "request_id"]):
        if key not in starts.index:
            continue
        start = starts.loc[key]
        t = g["end_ns"].astype(float).to_numpy()
        if key in heard.index:
            t = np.maximum(t, heard.loc[key])
        counts = np.maximum(np.rint(g["units"].astype(float).to_numpy()), 1).astype(np.int64)
        token_s = np.sort(np.repeat((t - start) / NS, counts))
        out.append(qoe_of(token_s, qoe))
    return np.asarray(out, dtype=float)


def condition_of_iterations(spans: pd.DataFrame) -> pd.Series:
    """The condition of each iteration (the most common `condition` of its spans), indexed by iteration."""
    c = spans.loc[spans["condition"].notna(), ["iteration", "condition"]]
    return c.groupby("iteration")["condition"].agg(lambda x: x.mode().iloc[0])


def streams_in(condition: str) -> int:
    return len(condition.split("+"))


def _verdict(lo: float, hi: float) -> str:
    if lo > 1:
        return "slower"
    if hi < 1:
        return "faster"
    if 1 / NO_DIFFERENCE_BAND <= lo and hi <= NO_DIFFERENCE_BAND:
        return "no difference"
    return "inconclusive: the interval holds 1 but reaches beyond [0.91, 1.1]"


def interference(spans: pd.DataFrame, conditions: pd.Series, seed: int, contended: bool) -> list[Interference]:
    """Per phase that ran in more than one condition: latency together / alone (see the module docstring)."""
    s = timed_spans(spans)
    cond = s["iteration"].map(conditions)  # pyright: ignore[reportArgumentType]  pandas types map() for a function only
    s = s.loc[s["phase"] != ITERATION].assign(cond=cond)
    s = s.loc[s["cond"].notna()]
    order = list(dict.fromkeys(conditions.tolist()))
    out = []
    for phase, g in s.groupby("phase", sort=False):
        present = [c for c in order if (g["cond"] == c).any()]
        if len(present) < 2:
            continue
        alone = min(present, key=streams_in)
        lat = (g["end_ns"] - g["start_ns"]).astype(float) / NS
        for together in present:
            if together == alone:
                continue
            a, b = lat[g["cond"] == together].to_numpy(), lat[g["cond"] == alone].to_numpy()
            r = ratio_ci(a, b, seed)
            item = Interference(phase=str(phase), alone=alone, together=together, ratio=r.get("ratio"), ci95=r.get("ci95"), n=[b.size, a.size], verdict="")
            if r.get("ratio") is None:
                item.verdict = "inconclusive: no spans to compare"
            elif min(a.size, b.size) < MIN_SAMPLES:
                item.verdict = f"inconclusive: fewer than {MIN_SAMPLES} spans in a condition ({a.size} together, {b.size} alone)"
            elif contended:
                item.verdict = "inconclusive: measured under contention (see the run's contention)"
            else:
                item.verdict = _verdict(*r["ci95"])
            cond = spans["iteration"].map(conditions)  # pyright: ignore[reportArgumentType]  pandas types map() for a function only
            with_drops = spans.loc[spans["phase"] == phase].assign(cond=cond)
            if "deadline_ns" in with_drops and with_drops["deadline_ns"].notna().any():
                item.miss_rate_alone = _miss_rate(with_drops.loc[with_drops["cond"] == alone])
                item.miss_rate_together = _miss_rate(with_drops.loc[with_drops["cond"] == together])
            out.append(item)
    return out


def _miss_rate(g: pd.DataFrame) -> float | None:
    d = g.loc[g["deadline_ns"].notna()]
    if d.empty:
        return None
    return float(missed_deadlines(d).mean())


def energy_by_condition(
    spans: pd.DataFrame, samples: pd.DataFrame, conditions: pd.Series, request: str
) -> tuple[dict[str, dict[str, float | None]], str | None]:
    """({condition: {average_power_w, energy_per_request_j}}, None) or ({}, why unavailable)."""
    if samples.empty or "gpu_energy_j" not in samples or bool(samples["gpu_energy_j"].isna().all()):
        return {}, "no NVML energy counter readings (no NVIDIA GPU, or the driver does not expose total energy)"
    s = samples.loc[samples["gpu_energy_j"].notna()].sort_values("t_ns")
    t, e = s["t_ns"].to_numpy(dtype=float), s["gpu_energy_j"].to_numpy(dtype=float)
    it = spans.loc[spans["phase"] == ITERATION].assign(cond=lambda x: x["iteration"].map(conditions))
    out: dict[str, dict[str, float | None]] = {}
    for cond, g in it.loc[it["cond"].notna()].groupby("cond"):
        a, b = g["start_ns"].to_numpy(dtype=float), g["end_ns"].to_numpy(dtype=float)
        seconds = float((b - a).sum() / NS)
        if seconds < MIN_WINDOW_S or a.min() < t[0] or b.max() > t[-1]:
            continue
        joules = float((np.interp(b, t, e) - np.interp(a, t, e)).sum())
        entry: dict[str, float | None] = {"average_power_w": joules / seconds, "energy_per_request_j": None}
        r = spans.loc[(spans["phase"] == request) & spans["iteration"].isin(g["iteration"])]
        if "request_id" in r:
            r = r.loc[r["request_id"].notna()]
            busy = float(((r["end_ns"] - r["start_ns"]) / NS).sum())
            if len(r) and busy >= MIN_WINDOW_S:
                ra, rb = r["start_ns"].to_numpy(dtype=float), r["end_ns"].to_numpy(dtype=float)
                entry["energy_per_request_j"] = float((np.interp(rb, t, e) - np.interp(ra, t, e)).sum() / len(r))
        out[str(cond)] = entry
    if not out:
        return {}, f"no condition's iterations total {MIN_WINDOW_S:.0f} s within the energy samples"
    return out, None


def stream_warnings(streams: Streams) -> list[str]:
    """Conditions that drew no request where another one did (a sparse arrival process in short sessions): their request
    figures and the interference on requests are missing, which a reader must be told."""
    counts = {c: (s.metrics.request_latency_s.count if s.metrics and s.metrics.request_latency_s else 0) for c, s in streams.conditions.items()}
    with_requests = {c: n for c, n in counts.items() if n}
    out = []
    for cond, n in counts.items():
        if n or not with_requests:
            continue
        kin = [c for c in with_requests if set(c.split("+")) <= set(cond.split("+"))]
        if kin:
            seconds = streams.conditions[cond].seconds
            out.append(
                f"condition {cond} drew no request in its {seconds:.0f} s of sessions, where {kin[0]} drew {with_requests[kin[0]]}: "
                "the interference on requests is not measured; lengthen the sessions or raise the arrival rate"
            )
    return out


def streams_summary(spans: pd.DataFrame, samples: pd.DataFrame, declaration: Declaration, seed: int, contended: bool, per_condition: Any) -> Streams:
    """The Streams block. `per_condition(spans) -> (RequestMetrics, Deadlines | None, {phase: Stats})` builds one
    condition's figures from its spans (summary.py passes its own builders, so the definitions are the workload's)."""
    out = Streams(streams=list(declaration.streams))
    if spans.empty or "condition" not in spans or bool(spans["condition"].isna().all()):
        return out
    conditions = condition_of_iterations(spans)
    energy, why = energy_by_condition(spans, samples, conditions, declaration.request)
    out.energy_unavailable = why
    for cond in dict.fromkeys(conditions.tolist()):
        iters = conditions.index[conditions == cond]
        part = spans.loc[spans["iteration"].isin(iters)]
        it = part.loc[part["phase"] == ITERATION]
        metrics, deadlines, phases = per_condition(part)
        power = energy.get(cond, {})
        out.conditions[cond] = ConditionStats(
            iterations=len(iters),
            seconds=float(((it["end_ns"] - it["start_ns"]) / NS).sum()),
            phases=phases,
            metrics=metrics,
            deadlines=deadlines,
            average_power_w=power.get("average_power_w"),
            energy_per_request_j=power.get("energy_per_request_j"),
        )
    out.interference = interference(spans, conditions, seed, contended)
    return out
