"""Intensity, MFU, MBU, roofline position and bound class per phase, from counted work and the
measured ceilings (calibrate.py). Pure pandas: reports can recompute it from a run directory.

Definitions (metrics.md):
- FLOPs per span = counted (FlopCounterMode) + analytic (workload-declared), medians per phase;
- bytes per span = the unfused op-level traffic model of work.py ("counted traffic", an upper bound);
- arithmetic intensity = FLOPs / counted bytes; roofline bound = min(peak FLOP/s, bandwidth x intensity);
- achieved FLOP/s and bytes/s use the phase's median time (device time from CUDA events where
  recorded, else host time); MFU = achieved FLOP/s / measured peak for the workload's dtype;
- MBU = achieved bytes/s / measured copy bandwidth, on one of two bases (MBU_BASIS_RULE). A decode
  step: the bytes a step must read = the weights read once (the workload's fact `step_weight_bytes`)
  + the state read (the median `state_bytes` of the measured step spans: the KV cache at the step's
  context, or the recurrent state), over the median step time: metrics.md's "(parameter bytes +
  state bytes read) / TPOT", the MBU of serving write-ups (Databricks, "LLM Inference Performance
  Engineering: Best Practices", 2023: (model parameter bytes + KV cache bytes) / TPOT; gpt-fast's
  "bandwidth achieved" is the same without the KV term). The weights are those a step reads: an
  untied input embedding table only for its looked-up rows (workloads/decode_loop.py:
  step_weight_bytes), which those write-ups count whole. Every other phase (prefill, diffusion
  and action-head steps, stages, whole requests): the counted traffic over its median time. The
  counted traffic's MBU is kept beside a decode step's as `mbu_counted`, "counted traffic (upper
  bound)": it also charges activations and every re-read, so it overstates what a step must move;
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
from ..runmodel import MbuBasis, beaten_ceiling, ceiling_exceeded_reason

OVERHEAD_SHARE = 0.5
NEAR_SHARE = 0.1
CONTENDED_BELOW = 0.2
BOUND_RULE = (
    f"overhead-bound when the phase's measured overhead (operator mix: host/framework share on CPU, device-idle fraction on CUDA) "
    f"exceeds {OVERHEAD_SHARE + NEAR_SHARE:.0%}; below {OVERHEAD_SHARE - NEAR_SHARE:.0%} (or not measured), compute-bound if intensity >= ridge point "
    f"(peak FLOP/s / copy bandwidth), else memory-bound; inconclusive between the two, and at or above {CONTENDED_BELOW:.0%} under contention"
)

MBU_BASIS_RULE = (
    "decode steps (the step phase of a workload that declares step_weight_bytes, with state_bytes on its spans): MBU = (weights read once "
    "+ state read at the step's context) / median step time / copy bandwidth; every other phase (prefill, diffusion and action-head steps, "
    "stages, requests): counted traffic (upper bound) / median time / copy bandwidth"
)
STEP_WEIGHT_BYTES = "step_weight_bytes"
"""The fact a decode workload declares: the bytes of weights one step reads, each once (plugin.SetupContext.declare)."""


def required_bytes(spans: pd.DataFrame, step: str | None, weight_bytes: Any) -> tuple[dict[str, dict[str, float]], str | None]:
    """The bytes a decode step must read (MBU_BASIS_RULE), as ({step: {"bytes", "weights", "state"}}, None), in bytes.

    `spans`: the measured spans (columns phase, state_bytes); `step`: the declared step phase; `weight_bytes`: the fact
    STEP_WEIGHT_BYTES. State = median `state_bytes` of the step spans (whole batch). ({}, None) where the workload declared
    no weights (its MBU is on counted traffic); ({}, why) where it did but the bytes cannot be computed."""
    if step is None or weight_bytes is None:
        return {}, None
    if isinstance(weight_bytes, bool) or not isinstance(weight_bytes, (int, float)) or not 0 < weight_bytes < float("inf"):
        return {}, f"the fact {STEP_WEIGHT_BYTES} ({weight_bytes!r}) is not a positive number of bytes"
    s = spans.loc[spans["phase"] == step] if not spans.empty and "phase" in spans else pd.DataFrame()
    if s.empty:
        return {}, f"no measured span of the step phase '{step}'"
    state = cast(pd.Series, pd.to_numeric(cast(pd.Series, s["state_bytes"]), errors="coerce")).dropna() if "state_bytes" in s else pd.Series(dtype=float)
    if state.empty:
        return {}, f"the spans of '{step}' carry no state_bytes, so the state a step reads is not known"
    read = float(state.median())
    return {step: {"bytes": float(weight_bytes) + read, "weights": float(weight_bytes), "state": read}}, None


def work_by_phase(
    work: pd.DataFrame,
    phases: dict[str, Any],
    calibration: dict[str, Any] | None,
    dtype: str | None,
    overhead: dict[str, tuple[float, str]] | None = None,
    contended: bool = False,
    required: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Per phase: FLOPs (counted / analytic), bytes, intensity, achieved rates, MFU, MBU, bound class and its basis.

    `overhead`: phase -> (measured overhead share 0..1, what it is) from the operator mix (`overhead_shares`);
    `contended`: the workload ran under contention (runmodel.Contention). See BOUND_RULE. `required`: phase -> the bytes
    a decode step must read (`required_bytes`): those phases' MBU is on that basis (MBU_BASIS_RULE)."""
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
        need = (required or {}).get(str(phase))
        if need is not None:
            entry.update(required_bytes=need["bytes"], required_weight_bytes=need["weights"], required_state_bytes=need["state"])
        timing = phases.get(str(phase), {})
        seconds, source = _phase_seconds(timing)
        if seconds:
            entry["time_s"] = seconds
            entry["time_source"] = source
            entry["achieved_flops_per_s"] = flops / seconds
            entry["achieved_bytes_per_s"] = moved / seconds
            if need is not None:
                entry["achieved_required_bytes_per_s"] = need["bytes"] / seconds
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
        _mbu(entry, bandwidth, beaten)
    if beaten:
        entry["ceiling_exceeded"] = ceiling_exceeded_reason(beaten)


def _mbu(entry: dict[str, Any], bandwidth: float, beaten: list[str]) -> None:
    """`mbu` on its basis (MBU_BASIS_RULE) and `mbu_counted` into `entry`, each only within the bandwidth; what beat it
    appended to `beaten`."""
    counted = entry["achieved_bytes_per_s"]
    if counted <= bandwidth:
        entry["mbu_counted"] = counted / bandwidth
    else:
        beaten.append(beaten_ceiling(counted, bandwidth, "B/s", "copy bandwidth, counted traffic; a working set that stays in cache also beats it"))
    required = entry.get("achieved_required_bytes_per_s")
    if required is None:
        entry["mbu_basis"] = MbuBasis.COUNTED.value
        if "mbu_counted" in entry:
            entry["mbu"] = entry["mbu_counted"]
        return
    entry["mbu_basis"] = MbuBasis.REQUIRED.value
    if required <= bandwidth:
        entry["mbu"] = required / bandwidth
    else:
        beaten.append(beaten_ceiling(required, bandwidth, "B/s", "copy bandwidth, bytes a step must read; weights that stay in cache also beat it"))


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
