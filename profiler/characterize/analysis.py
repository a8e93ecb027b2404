"""From raw spans and samples to numbers: per-phase statistics and per-request latency metrics.

Definitions follow metrics.md (vLLM's, for any stream of output units):
- an iteration is one request; its `iteration` span is the request's end-to-end time (E2E);
  where deliveries carry `request_id` (several requests in one iteration), a request is the
  request phase's span with that id, from its `obs_ns` (else its start);
- a delivery is a span with units > 0 (a token, an image, an action chunk reaches the host);
- TTFT = first delivery's end - iteration start; TPOT = (E2E - TTFT) / (deliveries - 1);
- ITL = gap between consecutive deliveries of one request, per delivery (never per chunk);
- output units/s = units delivered in the iteration / E2E.
Deadline-driven loops (metrics.md, VLA) are read from span attributes, never from the workload's
name: a span with `deadline_ns` is a deadline (missed when it delivered nothing or ended after
it, or carries `dropped=1`: a skipped periodic input, counted in the drop rate; lateness = end -
deadline, skipped inputs left out); spans with `scheduled_ns` are periodic ticks (achieved rate,
interval jitter = p99 - p50 and std of the start-to-start interval); `staleness_s` is the age of
the observation behind an executed action; a span with `obs_ns` ends an observation-to-output
path (inference latency = end - obs_ns). Each phase's share of iteration time is its duty cycle.

Warmup iterations and iterations that raised are excluded from every statistic. Nothing here
imports torch: a run directory can be analysed on any laptop.
"""

from __future__ import annotations

import re
from typing import Any, cast

import numpy as np
import pandas as pd

from ..plugin import ITERATION
from .stats import describe

NS = 1e9
MEASURED_COLUMNS = (
    "iteration",
    "warmup",
    "phase",
    "start_ns",
    "end_ns",
    "units",
    "sequences",
    "device_s",
    "error",
    "position",
    "state_bytes",
    "deadline_ns",
    "scheduled_ns",
    "staleness_s",
    "obs_ns",
    "finished",
    "tokens",
    "request_id",
    "condition",
    "dropped",
    re.compile(r"^memory_\w+_bytes$"),
)
"""Span columns the analyses read (profiler/plugin.py, Mark: the attributes the profiler reads); the
pattern stands for every `memory_<kind>_bytes` column."""


def measured_columns(names: Any) -> list[str]:
    """The names among `names` (a frame's columns) that MEASURED_COLUMNS selects, in their order there."""
    names = list(names)
    fixed = [c for c in MEASURED_COLUMNS if isinstance(c, str) and c in names]
    patterns = [c for c in MEASURED_COLUMNS if not isinstance(c, str)]
    return fixed + [n for n in names if n not in fixed and any(p.match(str(n)) for p in patterns)]


MEASURED_RULE_COLUMNS = ("iteration", "warmup", "error")


def measured_mask(spans: pd.DataFrame) -> pd.Series:
    """True for the spans of measured iterations that completed without an error (reads only
    MEASURED_RULE_COLUMNS)."""
    failed = spans.loc[spans["error"].notna(), "iteration"].unique()
    return cast(pd.Series, ~spans["warmup"].astype(bool) & ~spans["iteration"].isin(failed))


def measured_spans(spans: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """Spans of measured iterations that completed without an error (the same frame, not a
    copy, when nothing is dropped: a million spans must not be copied once per statistic).
    `columns` selects in the same single copy."""
    if spans.empty:
        return spans
    keep = measured_mask(spans)
    if columns is not None:
        return spans.loc[keep, columns]
    return spans if keep.all() else spans.loc[keep]


def sequences_of(m: pd.DataFrame, rows: pd.Series | np.ndarray | None = None) -> pd.Series:
    """How many sequences each span (of `rows`, a boolean mask; None: every span) delivers for: its `sequences`
    attribute; where it has none, one token to each of `units` sequences (a decode step of a batch, the 0.1 reading).
    Only those two columns are read: a million spans are never copied whole for them."""
    units = cast(pd.Series, m["units"] if rows is None else m.loc[rows, "units"]).astype(float).clip(lower=1.0)
    if "sequences" not in m:
        return units
    sequences = cast(pd.Series, m["sequences"] if rows is None else m.loc[rows, "sequences"])
    return sequences.astype(float).fillna(units).clip(lower=1.0)


def request_metrics(spans: pd.DataFrame, deliveries: tuple[str, ...] = (), request: str = ITERATION, keyed_only: bool = False) -> dict[str, np.ndarray]:
    """Per-request latency samples (seconds) from measured spans: e2e, ttft, tpot, itl, units/s.

    `deliveries`: the phases whose spans with units > 0 are deliveries (the declaration's);
    empty: every phase but the iteration. A delivery of `units` output units for `sequences`
    sequences hands each sequence k = units / sequences tokens (metrics.md, vLLM): TPOT =
    (E2E - TTFT) / (tokens per sequence - 1); ITL is per token, so a delivery of k tokens after a
    gap g is k gaps of g / k (a chunk of 4 tokens 20 ms after the last is four 5 ms gaps);
    output units/s is every unit of the request (all its sequences) over its E2E.

    A request is an iteration, unless the deliveries carry `request_id` (several requests in one
    iteration): then a request is the span of the `request` phase with that id, from its `obs_ns`
    (else its start) to its end, and TPOT = (last delivery - first) / (tokens - 1), vLLM's
    (latency - TTFT) / (output tokens - 1) with latency to the last token. `keyed_only` (a workload whose
    requests always carry `request_id`, Declaration.streams): without any, there were no requests, and every
    sample is empty rather than the iteration's.
    """
    m = measured_spans(spans)
    empty = np.array([], dtype=float)
    if m.empty:
        return {k: empty for k in ("e2e_s", "ttft_s", "tpot_s", "itl_s", "output_units_per_s")}
    delivering = (m["phase"].isin(deliveries) if deliveries else m["phase"] != ITERATION) & (m["units"] > 0)
    keyed = "request_id" in m and m.loc[delivering, "request_id"].notna().any()
    if keyed_only and not keyed:
        return {k: empty for k in ("e2e_s", "ttft_s", "tpot_s", "itl_s", "output_units_per_s")}
    keys = ["iteration", "request_id"] if keyed else ["iteration"]
    if keyed:
        r = m.loc[(m["phase"] == request) & m["request_id"].notna()]
        start = r["obs_ns"].astype(float).fillna(r["start_ns"].astype(float)) if "obs_ns" in r else r["start_ns"].astype(float)
        it = pd.DataFrame({"iteration": r["iteration"], "request_id": r["request_id"], "start_ns": start, "end_ns": r["end_ns"]}).set_index(keys)
        delivering &= m["request_id"].notna()
    else:
        it = m.loc[m["phase"] == ITERATION, ["iteration", "start_ns", "end_ns"]].set_index("iteration")
    e2e = cast(pd.Series, (it["end_ns"] - it["start_ns"]) / NS)
    d = _deliveries(m, cast(pd.Series, delivering), keys)
    by_req = d.groupby(keys)
    first_end = cast(pd.Series, by_req["end_ns"].min())
    tokens = cast(pd.Series, by_req["per_sequence"].sum())  # output tokens per sequence in the request
    units = cast(pd.Series, by_req["units"].sum())
    ttft = ((first_end - it["start_ns"].reindex(first_end.index)) / NS).dropna()
    n = tokens.reindex(ttft.index)
    if keyed:
        last_end = cast(pd.Series, by_req["end_ns"].max())
        tpot = cast(pd.Series, ((last_end.reindex(ttft.index) - first_end.reindex(ttft.index)) / NS / (n - 1))[n > 1])
    else:
        tpot = cast(pd.Series, ((e2e.reindex(ttft.index) - ttft) / (n - 1))[n > 1])
    itl = _inter_token(by_req["end_ns"].diff().to_numpy(dtype=float), d["per_sequence"].to_numpy(dtype=float))
    rate = (units.reindex(e2e.index) / e2e).dropna()
    return {
        "e2e_s": e2e.to_numpy(dtype=float),
        "ttft_s": ttft.to_numpy(dtype=float),
        "tpot_s": tpot.to_numpy(dtype=float),
        "itl_s": itl,
        "output_units_per_s": rate.to_numpy(dtype=float),
    }


def _deliveries(m: pd.DataFrame, delivering: pd.Series, keys: list[str]) -> pd.DataFrame:
    """The delivering spans as `keys`, end_ns, units (float) and per_sequence (the tokens each sequence receives in the
    delivery), sorted by request and end. Only those columns are copied, once, never the whole measured frame."""
    columns = keys + ["end_ns", "units"] + (["sequences"] if "sequences" in m else [])
    d = m.loc[delivering, columns].sort_values(keys + ["end_ns"], ignore_index=True)
    d["units"] = d["units"].astype(float)
    d["per_sequence"] = d["units"] / sequences_of(d)
    return d.drop(columns="sequences") if "sequences" in d else d


def _inter_token(gap_ns: np.ndarray, per_sequence: np.ndarray) -> np.ndarray:
    """ITL samples (seconds): each delivery's gap since its request's previous one (`gap_ns`, NaN for a request's first
    delivery) as k gaps of gap / k, where k is the tokens each sequence received in it (`per_sequence`)."""
    later = ~np.isnan(gap_ns)
    gaps, k = gap_ns[later], per_sequence[later]
    gaps /= NS  # in place: a million deliveries are not copied once per operation
    counts = np.rint(k).astype(np.int64)
    np.maximum(counts, 1, out=counts)
    gaps /= np.maximum(k, 1e-12, out=k)
    del k
    return np.repeat(gaps, counts)


def request_latencies(spans: pd.DataFrame, phase: str = ITERATION) -> np.ndarray:
    """Latency (seconds) of every measured span of the request phase: end - obs_ns where the span
    carries `obs_ns` (its observation was captured before the span began), else end - start."""
    m = measured_spans(spans)
    if m.empty:
        return np.array([], dtype=float)
    r = m.loc[m["phase"] == phase]
    start = r["start_ns"].astype(float)
    if "obs_ns" in r:
        start = r["obs_ns"].astype(float).fillna(start)
    return ((r["end_ns"] - start) / NS).to_numpy(dtype=float)


UNAVAILABLE_WHY = {
    "ttft_s": "no span delivered output units (units > 0)",
    "tpot_s": "fewer than two deliveries per request",
    "itl_s": "fewer than two deliveries per request",
    "output_units_per_s": "no span delivered output units (units > 0)",
    "e2e_s": "no measured iteration completed",
}


DEADLINE_FIELDS = {
    "lateness_s": "lateness_s",
    "deadline_miss_rate": "miss_rate",
    "tick_interval_s": "tick_interval_s",
    "control_rate_hz": "control_rate_hz",
    "staleness_s": "staleness_s",
    "obs_to_output_s": "inference_latency_s",
    "drop_rate": "drop_rate",
}
"""deadline_metrics' sample names -> the fields of runmodel.Deadlines (schema 1 stored the former in `metrics`)."""


ANY_PHASE = "*"


def deadline_metrics(spans: pd.DataFrame, inference: str | None = ANY_PHASE) -> dict[str, np.ndarray]:
    """Samples for deadline-driven loops; empty arrays where no span carries the attributes.

    `inference`: the phase whose spans' `obs_ns` give the observation-to-output latency (the declared inference
    phase); None: no such latency (a request's `obs_ns`, its arrival, is not an inference); ANY_PHASE: every span
    with `obs_ns`.
    """
    m = measured_spans(spans)
    out: dict[str, np.ndarray] = {}
    if m.empty:
        return out
    if "deadline_ns" in m and bool(m["deadline_ns"].notna().any()):
        d = m.loc[m["deadline_ns"].notna()]
        missed = missed_deadlines(d)
        taken = timed_spans(d)  # a skipped input has no lateness of its own
        out["lateness_s"] = ((taken["end_ns"] - taken["deadline_ns"]) / NS).to_numpy(dtype=float)
        out["deadline_miss_rate"] = cast(pd.Series, missed.groupby(d["iteration"]).mean()).to_numpy(dtype=float)
        if "dropped" in d and d["dropped"].notna().any():
            out["drop_rate"] = (d["dropped"] == 1).groupby(d["iteration"]).mean().to_numpy(dtype=float)
    if "scheduled_ns" in m and bool(m["scheduled_ns"].notna().any()):
        ticks = m.loc[m["scheduled_ns"].notna()].sort_values(["iteration", "start_ns"])
        intervals = ticks.groupby("iteration")["start_ns"].diff().dropna() / NS
        out["tick_interval_s"] = intervals.to_numpy(dtype=float)
        g = ticks.groupby("iteration")["start_ns"]
        span_s = (g.max() - g.min()) / NS
        rate = ((g.size() - 1) / span_s).replace([np.inf], np.nan).dropna()
        out["control_rate_hz"] = rate.to_numpy(dtype=float)
    if "staleness_s" in m and bool(m["staleness_s"].notna().any()):
        out["staleness_s"] = m["staleness_s"].dropna().to_numpy(dtype=float)
    if inference is not None and "obs_ns" in m and bool(m["obs_ns"].notna().any()):
        o = m.loc[m["obs_ns"].notna() & ((m["phase"] == inference) if inference != ANY_PHASE else True)]
        if not o.empty:
            out["obs_to_output_s"] = ((o["end_ns"] - o["obs_ns"]) / NS).to_numpy(dtype=float)
    return out


def missed_deadlines(d: pd.DataFrame) -> pd.Series:
    """For spans carrying `deadline_ns`: True where the deadline was missed: the span delivered nothing (units <= 0;
    for a periodic input carrying `dropped`, it was skipped: dropped=1) or ended after its deadline."""
    delivered = d["units"] > 0
    if "dropped" in d:  # a periodic input that carries `dropped` was taken in (0) or skipped (1)
        delivered = delivered.where(d["dropped"].isna(), d["dropped"] == 0)
    return cast(pd.Series, ~delivered | (d["end_ns"] > d["deadline_ns"]))


def timed_spans(spans: pd.DataFrame) -> pd.DataFrame:
    """The spans that have a latency: all but skipped periodic inputs (`dropped=1`, zero-length markers of a frame that
    was never taken)."""
    if "dropped" not in spans or not bool((spans["dropped"] == 1).any()):
        return spans
    return spans.loc[spans["dropped"] != 1]


def phase_shares(spans: pd.DataFrame) -> dict[str, float]:
    """Each phase's summed duration over the summed iteration time (duty cycle; nested phases overlap)."""
    m = measured_spans(spans)
    if m.empty:
        return {}
    dur = (m["end_ns"] - m["start_ns"]) / NS
    total = cast(pd.Series, dur[m["phase"] == ITERATION]).sum()
    if not total:
        return {}
    return {str(k): float(v / total) for k, v in cast(pd.Series, dur.groupby(m["phase"]).sum()).items() if k != ITERATION}


def phase_stats(spans: pd.DataFrame, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per-phase statistics of measured spans (skipped inputs left out: timed_spans): host latency, device time where
    recorded, units."""
    m = timed_spans(measured_spans(spans))
    out: dict[str, dict[str, Any]] = {}
    if m.empty:
        return out
    slim = pd.DataFrame(
        {
            "phase": m["phase"],
            "latency_s": (m["end_ns"] - m["start_ns"]) / NS,
            "units": m["units"],
            "device_s": m["device_s"].astype(float) if "device_s" in m else np.nan,
        }
    )
    for phase, group in slim.groupby("phase", sort=False):
        entry: dict[str, Any] = {
            "latency_s": describe(group["latency_s"], seed),
            "units_per_span": float(cast(pd.Series, group["units"]).mean()),
        }
        if bool(group["device_s"].notna().any()):
            entry["device_s"] = describe(group["device_s"], seed)
        out[str(phase)] = entry
    return out


def phase_noise(spans: pd.DataFrame) -> dict[str, float]:
    """IQR/median of each phase across repeats of the same step.

    "The same step" is the same phase at the same `position` where spans carry one, else the
    k-th occurrence of the phase in each iteration. A step meant to vary (decode latency grows
    with context; a control tick that replans) is not noise. The phase's noise is the median of
    its steps' ratios; steps with fewer than 4 measured repeats are not judged.
    """
    m = timed_spans(measured_spans(spans))
    if m.empty:
        return {}
    # rows are stored in start order within each iteration (spans.py), so occurrence needs no sort
    occurrence = m.groupby(["iteration", "phase"]).cumcount()
    step = (m["position"] if "position" in m else pd.Series(np.nan, index=m.index)).fillna(-1 - occurrence)
    slim = pd.DataFrame({"phase": m["phase"], "step": step, "latency_s": (m["end_ns"] - m["start_ns"]) / NS})
    grouped = slim.groupby(["phase", "step"])["latency_s"]
    ratio = ((grouped.quantile(0.75) - grouped.quantile(0.25)) / grouped.median()).where(grouped.size() >= 4)
    return {str(k): float(v) for k, v in cast(pd.Series, ratio.groupby(level="phase").median()).dropna().items()}


def phase_table(spans: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Tidy per-phase statistics: one row per phase, units in column names (for notebooks)."""
    rows = []
    for phase, entry in phase_stats(spans, seed).items():
        lat = entry["latency_s"]
        rows.append(
            {
                "phase": phase,
                "count": lat["count"],
                **{f"{k}_s": lat[k] for k in ("median", "p90", "p99", "mean", "std", "iqr")},
                "ci95_lo_s": lat["ci95_median"][0],
                "ci95_hi_s": lat["ci95_median"][1],
                "device_median_s": entry.get("device_s", {}).get("median"),
                "units_per_span": entry["units_per_span"],
            }
        )
    return pd.DataFrame(rows)


def position_table(spans: pd.DataFrame, phase: str | None = None) -> pd.DataFrame:
    """Median latency and state bytes per (phase, position) for spans that carry `position`."""
    m = measured_spans(spans)
    columns = ["phase", "position", "median_s", "state_bytes", "count"]
    if m.empty or "position" not in m:
        return pd.DataFrame(columns=columns)
    has_position = m["position"].notna()
    phases = m.loc[has_position, "phase"].unique() if phase is None else [phase]
    tables = []
    for name in sorted(str(p) for p in phases):
        rows = (has_position & (m["phase"] == name)).to_numpy()
        if not rows.any():
            continue
        position = m["position"].to_numpy(dtype=float)[rows]
        latency = (m["end_ns"].to_numpy()[rows] - m["start_ns"].to_numpy()[rows]) / NS
        keys, median_s, count = group_medians(position, latency)
        table = pd.DataFrame({"phase": name, "position": keys, "median_s": median_s, "count": count})
        if "state_bytes" in m:
            state = m["state_bytes"].to_numpy(dtype=float)[rows]
            known = ~np.isnan(state)
            skeys, smedian, _ = group_medians(position[known], state[known])
            table["state_bytes"] = pd.Series(smedian, index=skeys).reindex(keys).to_numpy()
        tables.append(table)
    return cast(pd.DataFrame, pd.concat(tables, ignore_index=True)[[c for c in columns if c in tables[0]]]) if tables else pd.DataFrame(columns=columns)


def group_medians(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct keys in order, median of the values per key, count per key) by one sort:
    pandas' two-key groupby-median holds several copies of a million rows for the same result."""
    order = np.lexsort((values, keys))
    k, v = keys[order], values[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]]) if k.size else np.array([], dtype=np.int64)
    count = np.diff(np.r_[starts, k.size])
    return k[starts], (v[starts + (count - 1) // 2] + v[starts + count // 2]) / 2, count
