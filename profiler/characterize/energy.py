"""Energy from the NVML total-energy counter (Volta and newer), never from integrated power.

NVML's power reading is a one-second average, so integrating it over short windows is wrong
(metrics.md). The energy counter (mJ, cumulative) is sampled by the parent at `sample_hz`; the
energy of a window is the counter's difference, linearly interpolated at the window's ends.
- Workload: the measured window (first to last measured iteration), at least MIN_WINDOW_S long:
  energy, average power, energy above idle, and J per output unit.
- Per phase: the counter interpolated at every span boundary and summed over all measured spans
  of the phase; reported only where the phase totals at least MIN_WINDOW_S (repeated iterations
  aggregate short phases), else unavailable with the reason.
Idle power is measured before the run, over at least MIN_WINDOW_S, from the same counter
(profiler/measure/nvml.py: idle_power).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..measure.nvml import MIN_WINDOW_S
from .analysis import ITERATION, NS, measured_spans


def energy_summary(spans: pd.DataFrame, samples: pd.DataFrame, idle_power_w: float | None) -> tuple[dict[str, Any], str | None]:
    """(energy facts, None) or ({}, reason unavailable)."""
    if samples.empty or "gpu_energy_j" not in samples or bool(samples["gpu_energy_j"].isna().all()):
        return {}, "no NVML energy counter readings (no NVIDIA GPU, or the driver does not expose total energy)"
    m = measured_spans(spans)
    if m.empty:
        return {}, "no measured iterations"
    s = samples.loc[samples["gpu_energy_j"].notna()].sort_values("t_ns")
    t, e = s["t_ns"].to_numpy(dtype=float), s["gpu_energy_j"].to_numpy(dtype=float)

    def energy(a: Any, b: Any) -> Any:
        return np.interp(b, t, e) - np.interp(a, t, e)

    it = m.loc[m["phase"] == ITERATION]
    start, end = float(it["start_ns"].min()), float(it["end_ns"].max())
    window_s = (end - start) / NS
    if window_s < MIN_WINDOW_S:
        return {}, f"the measured window is {window_s:.2f} s, under {MIN_WINDOW_S:.0f} s; raise measure.min_seconds"
    if start < t[0] or end > t[-1]:
        return {}, "the energy samples do not cover the measured window"
    total = float(energy(start, end))
    units = float(m.loc[(m["phase"] != ITERATION) & (m["units"] > 0), "units"].sum())
    out: dict[str, Any] = {
        "window_s": window_s,
        "energy_j": total,
        "average_power_w": total / window_s,
        "idle_power_w": idle_power_w,
        "energy_above_idle_j": total - idle_power_w * window_s if idle_power_w is not None else None,
        "j_per_output_unit": total / units if units else None,
        "method": "NVML total-energy counter, interpolated at window ends",
        "phases": {},
    }
    for phase, g in m.loc[m["phase"] != ITERATION].groupby("phase"):
        seconds = float(((g["end_ns"] - g["start_ns"]) / NS).sum())
        if seconds < MIN_WINDOW_S:
            out["phases"][str(phase)] = {"unavailable": f"the phase totals {seconds:.2f} s over measured iterations, under {MIN_WINDOW_S:.0f} s"}
            continue
        joules = float(energy(g["start_ns"].to_numpy(dtype=float), g["end_ns"].to_numpy(dtype=float)).sum())
        phase_units = float(g["units"].sum())
        out["phases"][str(phase)] = {
            "seconds": seconds,
            "energy_j": joules,
            "average_power_w": joules / seconds,
            "j_per_output_unit": joules / phase_units if phase_units else None,
        }
    return out, None
