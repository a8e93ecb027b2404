"""Scaling figures with their fit quality: how state and cost grow as the work grows.

Within one run (any workload whose spans carry `position`), least squares over every measured
span, with r^2 over the same points (the estimator the differences' slope intervals resample,
so the Scaling table and the differences show one value):
- state bytes per position per sequence: slope of state_bytes / sequences against position
  (per request: a batch of 4 grows 4 times as fast as one sequence, and is not 4 times worse);
- latency per position: slope of each span's latency against position.
Across the points of a sweep (a `sweep:` block; one isolated child run per point):
- batching gain: throughput (output units/s) at batch B over the smallest batch;
- latency growth with batch: E2E at batch B over the smallest batch;
each a ratio of medians with a 95% bootstrap interval, between points that differ only in
batch_size. These are the numbers that separate LLM KV growth from Mamba's constant state, and
diffusion's small batching gain from decode's large one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .analysis import NS, measured_spans, request_metrics, sequences_of
from .stats import linear_fit, ratio_ci


def position_fits(spans: pd.DataFrame) -> dict[str, Any]:
    """Per phase (in name order) whose measured spans carry `position`: the least-squares lines of latency and of
    state bytes per sequence against position (PositionFits' fields), where there are at least 3 positions."""
    m = measured_spans(spans)
    if m.empty or "position" not in m:
        return {}
    positioned = m["position"].notna().to_numpy(dtype=bool)
    out: dict[str, Any] = {}
    for phase, rows in m.groupby("phase").indices.items():  # in name order (groupby sorts), each phase's row positions
        entry = _phase_fits(m, rows[positioned[rows]])
        if entry:
            out[str(phase)] = entry
    return out


def _phase_fits(m: pd.DataFrame, rows: np.ndarray) -> dict[str, Any]:
    """The fits of the spans at `rows` (positions in `m`, all carrying `position`), each column taken as an array of
    those rows: a million spans are not copied as a frame, nor once more per phase."""
    entry: dict[str, Any] = {}
    if not rows.size:
        return entry
    position = m["position"].to_numpy(dtype=float)[rows]
    latency = linear_fit(position, (m["end_ns"].to_numpy()[rows] - m["start_ns"].to_numpy()[rows]) / NS)
    if latency:
        entry["latency_s_per_position"] = latency
    if "state_bytes" in m:
        per_sequence = m["state_bytes"].to_numpy(dtype=float)[rows]
        if not np.isnan(per_sequence).all():
            mask = np.zeros(len(m), dtype=bool)
            mask[rows] = True
            per_sequence /= sequences_of(m, mask).to_numpy(dtype=float)
            state = linear_fit(position, per_sequence)  # linear_fit drops spans without state_bytes
            if state:
                entry["state_bytes_per_position"] = state
    return entry


def batch_fits(points: list[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """`points`: dicts with name, params, sweep point and spans. Rows of batching gain per family."""
    families: dict[tuple, list[dict[str, Any]]] = {}
    for p in points:
        if "batch_size" not in (p["point"] or {}):
            continue
        rest = tuple(sorted((k, repr(v)) for k, v in p["params"].items() if k != "batch_size"))
        families.setdefault(rest, []).append(p)
    rows = []
    for family in families.values():
        family.sort(key=lambda p: p["params"]["batch_size"])
        base = family[0]
        base_m = request_metrics(base["spans"])
        for p in family[1:]:
            m = request_metrics(p["spans"])
            rows.append(
                {
                    "base": base["name"],
                    "point": p["name"],
                    "batch_size": p["params"]["batch_size"],
                    "base_batch_size": base["params"]["batch_size"],
                    "throughput_gain": ratio_ci(m["output_units_per_s"], base_m["output_units_per_s"], seed),
                    "e2e_growth": ratio_ci(m["e2e_s"], base_m["e2e_s"], seed),
                }
            )
    return rows
