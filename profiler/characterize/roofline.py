"""Intensity, MFU, MBU, roofline position and bound class per phase, from counted work and the
measured ceilings (calibrate.py). Pure pandas: reports can recompute it from a run directory.

Definitions (metrics.md):
- FLOPs per span = counted (FlopCounterMode) + analytic (workload-declared), medians per phase;
- bytes per span = the unfused op-level traffic model of work.py;
- arithmetic intensity = FLOPs / bytes; roofline bound = min(peak FLOP/s, bandwidth x intensity);
- achieved FLOP/s and bytes/s use the phase's median time (device time from CUDA events where
  recorded, else host time); MFU = achieved FLOP/s / measured peak for the workload's dtype;
  MBU = achieved bytes/s / measured copy bandwidth;
- bound class (BOUND_RULE): overhead-bound only where the phase's measured overhead dominates:
  the operator mix's host/framework share of the phase on the CPU (Python and framework time
  outside any op), its device-idle fraction on CUDA (the GPU waiting on launches and the host).
  Below OVERHEAD_SHARE - NEAR_SHARE, the roofline position decides: compute-bound when the
  intensity is at or above the ridge point (peak / bandwidth), else memory-bound. Between the two
  thresholds the class is inconclusive (a rerun could land on either side). Under contention the
  share moves either way (a busy loop on one core took the VLA's host share from 45-52% quiet to
  30% and 41%; LLM decode's from 11-15% to 8-10%: benchmarks/stability.py), so there the class
  stands only where the share is below CONTENDED_BELOW, a third of the overhead threshold, and is
  inconclusive otherwise (the roofline position is counted, not timed, and stands). Without the
  operator mix (measure.trace_ops off, or its pass failed) the roofline position decides and the
  basis says overhead was not measured. Low MFU and MBU alone are not evidence of overhead.
- a phase whose achieved FLOP/s or bytes/s is above the ceiling has beaten a measured maximum:
  the ceiling is wrong for it (too low, or, for bytes, a working set that stays in cache beats a
  DRAM copy). Its MFU or MBU is then not a number: None, with the reason under
  `ceiling_exceeded` (kept in runmodel.Work), and no bound class (metrics.md: never a
  utilization above 100%).
"""

from __future__ import annotations

from typing import Any, cast

import pandas as pd

from ..measure.opmix import HOST
from ..runmodel import beaten_ceiling, ceiling_exceeded_reason

OVERHEAD_SHARE = 0.5
NEAR_SHARE = 0.1
CONTENDED_BELOW = 0.2
BOUND_RULE = (
    f"overhead-bound when the phase's measured overhead (operator mix: host/framework share on CPU, device-idle fraction on CUDA) "
    f"exceeds {OVERHEAD_SHARE + NEAR_SHARE:.0%}; below {OVERHEAD_SHARE - NEAR_SHARE:.0%} (or not measured), compute-bound if intensity >= ridge point "
    f"(peak FLOP/s / copy bandwidth), else memory-bound; inconclusive between the two, and at or above {CONTENDED_BELOW:.0%} under contention"
)


def work_by_phase(
    work: pd.DataFrame,
    phases: dict[str, Any],
    calibration: dict[str, Any] | None,
    dtype: str | None,
    overhead: dict[str, tuple[float, str]] | None = None,
    contended: bool = False,
) -> dict[str, Any]:
    """Per phase: FLOPs (counted / analytic), bytes, intensity, achieved rates, MFU, MBU, bound class and its basis.

    `overhead`: phase -> (measured overhead share 0..1, what it is) from the operator mix (`overhead_shares`);
    `contended`: the workload ran under contention (runmodel.Contention). See BOUND_RULE."""
    if work.empty:
        return {}
    peak = ((calibration or {}).get("matmul_flops_per_s") or {}).get(dtype or "", None)
    bandwidth = (calibration or {}).get("copy_bytes_per_s")
    out: dict[str, Any] = {}
    for phase, g in work.groupby("phase", sort=False):
        counted = float(cast(pd.Series, g["flops_counted"]).median())
        analytic = float(cast(pd.Series, g["analytic_flops"]).median()) if "analytic_flops" in g else 0.0
        flops = counted + analytic
        moved = float(cast(pd.Series, g["bytes_moved"]).median())
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
            _utilisation(entry, peak, bandwidth, dtype)
        if peak and bandwidth:
            entry["ridge_flop_per_byte"] = peak / bandwidth
            if entry["intensity_flop_per_byte"] is not None:
                entry["roofline_bound_flops_per_s"] = min(peak, bandwidth * entry["intensity_flop_per_byte"])
        if ("mfu" in entry or "mbu" in entry) and "ridge_flop_per_byte" in entry and "ceiling_exceeded" not in entry:
            bound, basis = classify(entry["intensity_flop_per_byte"], entry["ridge_flop_per_byte"], (overhead or {}).get(str(phase)), contended)
            if bound is not None:
                entry["bound"] = bound
            entry["bound_basis"] = basis
        out[str(phase)] = entry
    return out


def _utilisation(entry: dict[str, Any], peak: float | None, bandwidth: float | None, dtype: str | None) -> None:
    """MFU and MBU into `entry`, each only when the achieved rate is within its ceiling; else the reason under
    `ceiling_exceeded` (see the module docstring)."""
    beaten = []
    if peak:
        if entry["achieved_flops_per_s"] <= peak:
            entry["mfu"] = entry["achieved_flops_per_s"] / peak
        else:
            beaten.append(beaten_ceiling(entry["achieved_flops_per_s"], peak, "FLOP/s", f"{dtype} matmul peak"))
    if bandwidth:
        if entry["achieved_bytes_per_s"] <= bandwidth:
            entry["mbu"] = entry["achieved_bytes_per_s"] / bandwidth
        else:
            beaten.append(beaten_ceiling(entry["achieved_bytes_per_s"], bandwidth, "B/s", "copy bandwidth; a working set that stays in cache also beats it"))
    if beaten:
        entry["ceiling_exceeded"] = ceiling_exceeded_reason(beaten)


def _phase_seconds(timing: dict[str, Any]) -> tuple[float | None, str]:
    device = (timing.get("device_s") or {}).get("median")
    if device:
        return device, "device (CUDA events)"
    host = (timing.get("latency_s") or {}).get("median")
    return (host, "host") if host else (None, "")


def classify(intensity: float | None, ridge: float, overhead: tuple[float, str] | None, contended: bool = False) -> tuple[str | None, str]:
    """(bound class or None, its basis in words) by BOUND_RULE. `intensity`, `ridge`: FLOP/byte; `overhead`: (share
    0..1, what was measured) or None when not measured. None with the reason when the phase moved no counted bytes."""
    position = None
    if intensity is not None:
        position = "compute-bound" if intensity >= ridge else "memory-bound"
        where = f"intensity {intensity:.3g} FLOP/B {'at or above' if intensity >= ridge else 'below'} the ridge point {ridge:.3g} FLOP/B"
    if overhead is None:
        if position is None:
            return None, "no counted bytes, so no intensity; overhead not measured (no operator mix)"
        return position, f"{where}; overhead not measured (no operator mix)"
    share, what = overhead
    measured = f"{what} {share:.0%}"
    low, high = OVERHEAD_SHARE - NEAR_SHARE, OVERHEAD_SHARE + NEAR_SHARE
    if share >= CONTENDED_BELOW and contended:
        return "inconclusive", f"{measured} under contention (>= {CONTENDED_BELOW:.0%}), which moves the host share"
    if share > high:
        return "overhead-bound", f"{measured} > {high:.0%}"
    if share >= low:
        return "inconclusive", f"{measured}: within {NEAR_SHARE:.0%} of {OVERHEAD_SHARE:.0%}, a rerun could land on either side"
    if position is None:
        return None, f"{measured} < {low:.0%}, but no counted bytes, so no intensity"
    return position, f"{measured} < {low:.0%}; {where}"


def overhead_shares(opmix: dict[str, Any] | None, cuda: bool) -> dict[str, tuple[float, str]]:
    """Phase -> (measured overhead share, what it is) from the operator mix (profiler/measure/opmix.py): on CUDA the
    phase's device-idle fraction, on the CPU its host/framework share of the traced time. Phases without the reading are
    left out (not measured)."""
    out: dict[str, tuple[float, str]] = {}
    for phase, entry in ((opmix or {}).get("phases") or {}).items():
        if cuda:
            idle = entry.get("device_idle_fraction")
            if idle is not None:
                out[phase] = (float(idle), "device idle")
        elif entry.get("share_by_category"):
            out[phase] = (float(entry["share_by_category"].get(HOST, 0.0)), "host/framework share")
    return out
