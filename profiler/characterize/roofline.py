"""Intensity, MFU, MBU, roofline position and bound class per phase, from counted work and the
measured ceilings (calibrate.py). Pure pandas: reports can recompute it from a run directory.

Definitions (metrics.md):
- FLOPs per span = counted (FlopCounterMode) + analytic (workload-declared), medians per phase;
- bytes per span = the unfused op-level traffic model of work.py;
- arithmetic intensity = FLOPs / bytes; roofline bound = min(peak FLOP/s, bandwidth x intensity);
- achieved FLOP/s and bytes/s use the phase's median time (device time from CUDA events where
  recorded, else host time); MFU = achieved FLOP/s / measured peak for the workload's dtype;
  MBU = achieved bytes/s / measured copy bandwidth;
- bound class: a phase reaching less than OVERHEAD_BELOW of both ceilings is overhead-bound
  (its time goes to launches, Python and the host, not to arithmetic or memory); otherwise it is
  compute-bound when its intensity is at or above the ridge point (peak / bandwidth), else
  memory-bound.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

OVERHEAD_BELOW = 0.2
BOUND_RULE = (
    f"overhead-bound if MFU < {OVERHEAD_BELOW:.0%} and MBU < {OVERHEAD_BELOW:.0%}; otherwise compute-bound if "
    "intensity >= ridge point (peak FLOP/s / copy bandwidth), else memory-bound"
)


def work_by_phase(work: pd.DataFrame, phases: dict[str, Any], calibration: dict[str, Any] | None, dtype: str | None) -> dict[str, Any]:
    """Per phase: FLOPs (counted / analytic), bytes, intensity, achieved rates, MFU, MBU, bound."""
    if work.empty:
        return {}
    peak = ((calibration or {}).get("matmul_flops_per_s") or {}).get(dtype or "", None)
    bandwidth = (calibration or {}).get("copy_bytes_per_s")
    out: dict[str, Any] = {}
    for phase, g in work.groupby("phase", sort=False):
        counted = float(g["flops_counted"].median())
        analytic = float(g["analytic_flops"].median()) if "analytic_flops" in g else 0.0
        flops = counted + analytic
        moved = float(g["bytes_moved"].median())
        entry: dict[str, Any] = {
            "spans_counted": int(len(g)),
            "flops_counted": counted,
            "flops_analytic": analytic,
            "flops": flops,
            "bytes": moved,
            "intensity_flop_per_byte": flops / moved if moved else None,
        }
        timing = phases.get(str(phase), {})
        seconds, source = _phase_seconds(timing)
        if seconds:
            entry["time_s"] = seconds
            entry["time_source"] = source
            entry["achieved_flops_per_s"] = flops / seconds
            entry["achieved_bytes_per_s"] = moved / seconds
        if seconds and peak:
            entry["mfu"] = entry["achieved_flops_per_s"] / peak
        if seconds and bandwidth:
            entry["mbu"] = entry["achieved_bytes_per_s"] / bandwidth
        if peak and bandwidth:
            entry["ridge_flop_per_byte"] = peak / bandwidth
            if entry["intensity_flop_per_byte"] is not None:
                entry["roofline_bound_flops_per_s"] = min(peak, bandwidth * entry["intensity_flop_per_byte"])
        if "mfu" in entry and "mbu" in entry:
            bound = classify(entry["mfu"], entry["mbu"], entry["intensity_flop_per_byte"], entry["ridge_flop_per_byte"])
            if bound is not None:
                entry["bound"] = bound
        out[str(phase)] = entry
    return out


def _phase_seconds(timing: dict[str, Any]) -> tuple[float | None, str]:
    device = (timing.get("device_s") or {}).get("median")
    if device:
        return device, "device (CUDA events)"
    host = (timing.get("latency_s") or {}).get("median")
    return (host, "host") if host else (None, "")


def classify(mfu: float, mbu: float, intensity: float | None, ridge: float) -> str | None:
    """The bound rule (BOUND_RULE); None when the phase is busy but moved no counted bytes
    (no intensity to place against the ridge)."""
    if mfu < OVERHEAD_BELOW and mbu < OVERHEAD_BELOW:
        return "overhead-bound"
    if intensity is None:
        return None
    return "compute-bound" if intensity >= ridge else "memory-bound"
