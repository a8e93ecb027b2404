"""Synchronous batches and staged iterations: the straggler tail, the stage breakdown, memory by kind.

Why: an RL step (and any batch job that waits for its slowest member) is judged by how long the
whole batch takes, and its lever is the tail: how long the last requests run after most have
finished, while the batch runs nearly empty (Seer, arXiv 2511.14617: the slowest 10% of requests
take up to half of the rollout). Everything here is read from spans (profiler/plugin.py, Mark):

Straggler tail, per measured iteration, from the step spans that carry `finished` (requests that
ended at that step) and `sequences` (requests in the batch at that step):
- N = the iteration's summed `finished`; the k-th finish time is the end of the step at which the
  running count of finished requests reaches k (requests finishing at one step share its end);
- batch time = last step end - first step start;
- tail (from the median) = finish of request ceil(N/2) to the last finish; the p90 tail is the same
  from request max(1, floor(0.9 N)): the time only the slowest 10% (at least one request) still run;
- shares = tail / batch time;
- occupancy = sum(step duration x sequences) / (batch time x peak sequences): how full the batch
  ran, time-weighted (1: full to the end); tail occupancy is the same over the steps after the
  median finish.

Stage breakdown (Declaration.breakdown): per iteration, each stage's summed span time over the
iteration's time; "other" is what no stage covers. Tokens per second of a stage = its spans'
summed `tokens` over their summed time.

Memory by kind: the peak over measured spans of each `memory_<kind>_bytes` attribute.
"""

from __future__ import annotations

import math
import re
from typing import Any, cast

import numpy as np
import pandas as pd

from ..plugin import ITERATION

NS = 1e9
MEMORY_ATTR = re.compile(r"^memory_(?P<kind>\w+)_bytes$")
OTHER = "other"


def batch_tails(spans: pd.DataFrame, step: str) -> pd.DataFrame:
    """One row per measured iteration whose `step` spans carry `finished`.

    Columns: iteration, requests, steps, batch_s, tail_s, tail_share, p90_tail_s, p90_tail_share,
    occupancy, tail_occupancy, peak_sequences, tail_steps (steps after the median finish).
    `spans`: measured spans (columns phase, iteration, start_ns, end_ns, finished, sequences).
    Empty when no step span carries `finished`."""
    columns = ["iteration", "requests", "steps", "batch_s", "tail_s", "tail_share", "p90_tail_s", "p90_tail_share"]
    columns += ["occupancy", "tail_occupancy", "peak_sequences", "tail_steps"]
    if spans.empty or "finished" not in spans or "sequences" not in spans:
        return pd.DataFrame(columns=columns)
    s = spans.loc[(spans["phase"] == step) & (spans["finished"] >= 0)]
    rows = []
    for iteration, g in s.sort_values("start_ns").groupby("iteration", sort=True):
        rows.append({"iteration": int(iteration), **tail_of(g["start_ns"].to_numpy(), g["end_ns"].to_numpy(), g["finished"], g["sequences"])})
    return pd.DataFrame([r for r in rows if r["requests"] > 0], columns=columns)


def tail_of(start_ns: Any, end_ns: Any, finished: Any, sequences: Any) -> dict[str, Any]:
    """The tail of one synchronous batch from its steps in order (arrays of equal length; ns, counts).

    See the module docstring for the definitions; times in seconds."""
    start = np.asarray(start_ns, dtype=np.int64)
    end = np.asarray(end_ns, dtype=np.int64)
    done = np.nan_to_num(np.asarray(finished, dtype=float)).astype(np.int64)
    seqs = np.nan_to_num(np.asarray(sequences, dtype=float))
    n = int(done.sum())
    if n == 0:
        return {"requests": 0, "steps": int(len(start))}
    cumulative = np.cumsum(done)
    t0, last = int(start[0]), int(end[np.nonzero(done)[0][-1]])
    batch = (last - t0) / NS
    median_step = int(np.searchsorted(cumulative, math.ceil(n / 2)))
    p90_step = int(np.searchsorted(cumulative, max(1, math.floor(0.9 * n))))
    tail = (last - int(end[median_step])) / NS
    p90_tail = (last - int(end[p90_step])) / NS
    duration = (end - start) / NS
    peak = float(seqs.max()) if len(seqs) else 0.0
    after = slice(median_step + 1, None)
    tail_time = float(duration[after].sum())
    return {
        "requests": n,
        "steps": int(len(start)),
        "batch_s": batch,
        "tail_s": tail,
        "tail_share": tail / batch if batch > 0 else None,
        "p90_tail_s": p90_tail,
        "p90_tail_share": p90_tail / batch if batch > 0 else None,
        "occupancy": float((duration * seqs).sum() / (batch * peak)) if batch > 0 and peak > 0 else None,
        "tail_occupancy": float((duration[after] * seqs[after]).sum() / (tail_time * peak)) if tail_time > 0 and peak > 0 else None,
        "peak_sequences": peak,
        "tail_steps": int(len(start) - median_step - 1),
    }


def stage_shares(spans: pd.DataFrame, stages: tuple[str, ...]) -> pd.DataFrame:
    """[iterations x (stages + other)]: each stage's summed span time over its iteration's time.

    `spans`: measured spans. Rows are iterations with an iteration span; a stage never marked in
    an iteration has share 0 there (it did not run), `other` = 1 - the stages' sum."""
    if spans.empty or not stages:
        return pd.DataFrame(columns=[*stages, OTHER])
    dur = cast(pd.Series, (spans["end_ns"] - spans["start_ns"]) / NS)
    whole = dur.loc[spans["phase"] == ITERATION].groupby(spans["iteration"]).sum()
    parts = dur.loc[spans["phase"].isin(stages)].groupby([spans["iteration"], spans["phase"]]).sum().unstack(fill_value=0.0)
    table = parts.reindex(index=whole.index, columns=list(stages), fill_value=0.0).fillna(0.0).div(whole, axis=0)
    table[OTHER] = 1.0 - table[list(stages)].sum(axis=1)
    return table


def stage_tokens_per_s(spans: pd.DataFrame, stages: tuple[str, ...]) -> dict[str, float]:
    """Stage -> summed `tokens` / summed time of its measured spans (stages whose spans carry `tokens`)."""
    if spans.empty or "tokens" not in spans:
        return {}
    out = {}
    for stage in stages:
        g = spans.loc[(spans["phase"] == stage) & (spans["tokens"] >= 0)]
        seconds = float(((g["end_ns"] - g["start_ns"]) / NS).sum())
        if len(g) and seconds > 0:
            out[stage] = float(g["tokens"].sum()) / seconds
    return out


def memory_by_kind(spans: pd.DataFrame) -> dict[str, int]:
    """Kind -> peak bytes over the measured spans' `memory_<kind>_bytes` attributes (negative values, which no
    measurement gives, are left out: `attribute_warnings` names them)."""
    out = {}
    for column in spans.columns:
        match = MEMORY_ATTR.match(str(column))
        if match:
            values = cast(pd.Series, pd.to_numeric(spans[column], errors="coerce"))
            values = values.loc[values >= 0]
            if len(values):
                out[match["kind"]] = int(values.max())
    return out


def attribute_warnings(spans: pd.DataFrame, stages: tuple[str, ...], step: str | None) -> list[str]:
    """What a reader must know about the attributes these analyses read: negative counts or bytes (left out), more
    requests finishing at a step than it held, and declared stages that overlap (their shares then sum above 1)."""
    out = []
    for column in [c for c in spans.columns if MEMORY_ATTR.match(str(c))] + [c for c in ("tokens", "finished", "sequences") if c in spans]:
        negative = int((cast(pd.Series, pd.to_numeric(spans[column], errors="coerce")) < 0).sum())
        if negative:
            out.append(f"span attribute `{column}` is negative on {negative} measured span(s): those values are left out")
    if step is not None and {"finished", "sequences"} <= set(spans.columns):
        s = spans.loc[spans["phase"] == step]
        over = int((s["finished"] > s["sequences"]).sum())
        if over:
            out.append(f"{over} '{step}' span(s) report more requests `finished` than `sequences` in the batch: the tail counts them as given")
    if stages:
        shares = stage_shares(spans, stages)
        lowest = float(cast(pd.Series, shares[OTHER]).min()) if not shares.empty else 0.0
        if lowest < -0.01:
            out.append(
                f"the declared breakdown's stages overlap ({', '.join(stages)}: their time sums to {1 - lowest:.0%} of an iteration); "
                "name only top-level phases in Declaration.breakdown"
            )
    return out
