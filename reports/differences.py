"""Where each workload differs from the baseline: one row per characteristic, with the ratio and
its 95% bootstrap interval, a verdict, and the reading and lever from reports/rules.yaml.

Values come from the run directory only (summaries, spans, sweeps.json). Each characteristic is
read from the workload's *main phase*: the step phase that carries `position` with the most spans
(decode_step, denoise_step), else the phase with the most counted FLOPs (a VLA's action head).
Verdicts:
- ratios with samples (latencies, derived MFU/MBU): higher / lower when the 95% interval of the
  ratio excludes 1, else "no difference";
- slopes (growth per token of context): bootstrap intervals of both slopes; higher / lower when
  they do not overlap;
- counted values (FLOPs per byte): exact, so higher / lower beyond +-10%, else "no difference";
- categories (bound class, dominant operator): differs / same;
- present: the baseline has no such thing (deadlines).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from profiler.analysis import ITERATION, NS, request_metrics
from profiler.rundir import Run, WorkloadRun
from profiler.stats import ols_slope, ratio_ci, slope_ci
from profiler.store import read_json

RULES_FILE = Path(__file__).with_name("rules.yaml")
EXACT_BAND = 0.10


@dataclass
class Char:
    """One characteristic of one workload."""

    value: Any = None
    unit: str = ""
    kind: str = "samples"  # samples | slope | exact | category | present | given
    samples: Any = None
    why: str | None = None
    ci: list[float] | None = None  # for kind "given" (already computed, e.g. batching gain)
    extra: dict[str, Any] = field(default_factory=dict)


LABELS = {
    "latency_e2e": "latency per request (E2E; inference latency for control loops)",
    "latency_per_step": "latency per step",
    "state_per_token": "state growth per token of context",
    "latency_growth_per_token": "per-step latency growth per token of context",
    "intensity": "arithmetic intensity",
    "mfu": "MFU",
    "mbu": "MBU",
    "bound": "bound class",
    "dominant_op": "dominant operator category",
    "host_overhead_share": "host/launch overhead share",
    "batching_gain": "batching gain (largest batch / smallest)",
    "deadline_miss_rate": "deadline-miss rate",
    "jitter": "tick-interval jitter (p99 - p50)",
    "energy_per_unit": "energy per output unit",
}


def main_phase(w: WorkloadRun) -> str | None:
    m = w.measured
    if not m.empty and "position" in m:
        phases = m.loc[m["position"].notna() & (m["phase"] != ITERATION), "phase"]
        if not phases.empty:
            return str(phases.value_counts().idxmax())
    work = ((w.summary.get("work") or {}).get("phases") or {})
    candidates = {p: e.get("flops", 0) for p, e in work.items() if p != "iteration" and p in (w.summary.get("phases") or {})}
    leaves = {p: f for p, f in candidates.items() if f}
    if not leaves:
        return None
    # prefer the leaf phase with most FLOPs that is not an enclosing one (an enclosing phase's
    # FLOPs include its children's: take the largest phase whose FLOPs are below the total)
    ordered = sorted(leaves, key=leaves.get, reverse=True)
    return ordered[1] if len(ordered) > 1 and leaves[ordered[0]] >= sum(leaves[p] for p in ordered[1:]) * 0.99 else ordered[0]


def phase_latencies(w: WorkloadRun, phase: str | None) -> np.ndarray:
    spans = w.measured
    if phase is None or spans.empty:
        return np.array([])
    g = spans.loc[spans["phase"] == phase, ["start_ns", "end_ns"]]
    return ((g["end_ns"] - g["start_ns"]) / NS).to_numpy(dtype=float)


def characteristics(w: WorkloadRun, sweeps: dict[str, Any]) -> dict[str, Char]:
    s = w.summary
    spans = w.measured
    phase = main_phase(w)
    out: dict[str, Char] = {}
    rm = request_metrics(spans) if not spans.empty else {}
    # a control loop's request is one inference (observation -> action chunk), not its episode
    basis = "inference latency (observation to action chunk)" if "obs_to_output_s" in (s.get("metrics") or {}) else "E2E per iteration"
    e2e = _obs_to_output(spans) if basis.startswith("inference") else rm.get("e2e_s", np.array([]))
    out["latency_e2e"] = Char(float(np.median(e2e)) if e2e.size else None, "s", samples=e2e, why=None if e2e.size else "no measured iterations",
                              extra={"basis": basis})
    lat = phase_latencies(w, phase)
    out["latency_per_step"] = Char(float(np.median(lat)) if lat.size else None, "s", samples=lat,
                                   why=None if lat.size else "no repeated step phase", extra={"phase": phase})
    positioned = _positioned(spans, phase)
    position_unit = (s.get("facts") or {}).get("position_unit", "token of context")
    short = "token" if position_unit.startswith("token") else position_unit
    for key, column, unit, why in (("state_per_token", "state_bytes", f"B/{short}", "no state_bytes against position"),
                                   ("latency_growth_per_token", "latency_s", f"s/{short}", "no per-step latency against position")):
        out[key] = _slope_char(positioned, column, unit, why)
        out[key].extra["position_unit"] = position_unit
    work = ((s.get("work") or {}).get("phases") or {}).get(phase or "", {})
    why_work = (s.get("unavailable") or {}).get("work") or ("no counted work for the main phase" if not work else None)
    out["intensity"] = Char(work.get("intensity_flop_per_byte"), "FLOP/B", "exact", why=None if work.get("intensity_flop_per_byte") is not None else why_work)
    for key in ("mfu", "mbu"):
        out[key] = Char(work.get(key), "of peak" if key == "mfu" else "of bandwidth", "derived", samples=lat,
                        why=None if work.get(key) is not None else (why_work or "no measured ceilings"))
    why_bound = why_work or ("no counted bytes, so no intensity" if work.get("mfu") is not None else "no measured ceilings")
    out["bound"] = Char(work.get("bound"), "", "category", why=None if work.get("bound") else why_bound)
    mix = ((s.get("operator_mix") or {}).get("phases") or {}).get(phase or "", {})
    why_mix = (s.get("unavailable") or {}).get("operator_mix") or "no traced pass for the main phase"
    out["dominant_op"] = Char(mix.get("dominant_category"), "", "category", why=None if mix.get("dominant_category") else why_mix)
    host = mix.get("device_idle_fraction") if mix.get("device_idle_fraction") is not None else (mix.get("share_by_category") or {}).get("host/framework")
    out["host_overhead_share"] = Char(host, "of phase time", "exact", why=None if host is not None else why_mix,
                                      extra={"basis": "device idle fraction" if mix.get("device_idle_fraction") is not None else "host/framework share of CPU time"})
    out["batching_gain"] = _batching(w, sweeps)
    metrics = s.get("metrics") or {}
    miss = metrics.get("deadline_miss_rate")
    out["deadline_miss_rate"] = Char(miss.get("mean") if miss else None, "of ticks", "present", why=None if miss else "no deadlines")
    jitter = (metrics.get("tick_interval_s") or {}).get("jitter_p99_minus_p50")
    out["jitter"] = Char(jitter, "s", "present", why=None if jitter is not None else "no periodic ticks")
    energy = (s.get("energy") or {}).get("j_per_output_unit")
    out["energy_per_unit"] = Char(energy, f"J/{(s.get('facts') or {}).get('output_unit', 'unit')}", "exact",
                                  why=None if energy is not None else (s.get("unavailable") or {}).get("energy", "not measured"))
    return out


def _obs_to_output(m: pd.DataFrame) -> np.ndarray:
    if "obs_ns" not in m:
        return np.array([])
    o = m.loc[m["obs_ns"].notna(), ["obs_ns", "end_ns"]]
    return ((o["end_ns"] - o["obs_ns"]) / NS).to_numpy(dtype=float)


def _positioned(m: pd.DataFrame, phase: str | None) -> pd.DataFrame:
    if phase is None or m.empty or "position" not in m:
        return pd.DataFrame()
    g = m.loc[(m["phase"] == phase) & m["position"].notna(), [c for c in ("position", "state_bytes", "start_ns", "end_ns") if c in m]]
    return g.assign(latency_s=(g["end_ns"] - g["start_ns"]) / NS)


def _slope_char(g: pd.DataFrame, column: str, unit: str, why: str) -> Char:
    if g.empty or column not in g or g[column].isna().all() or g["position"].nunique() < 3:
        return Char(None, unit, "slope", why=why)
    x, y = g["position"].to_numpy(dtype=float), g[column].to_numpy(dtype=float)
    slope = ols_slope(x, y)
    return Char(slope, unit, "slope", samples=(x, y))


def _batching(w: WorkloadRun, sweeps: dict[str, Any]) -> Char:
    group = (w.summary.get("sweep") or {}).get("group")
    rows = (sweeps.get(group) or {}).get("batch", []) if group else []
    rows = [r for r in rows if r["throughput_gain"].get("ratio") is not None]
    if not rows:
        return Char(None, "x", "given", why="no batch_size sweep")
    best = max(rows, key=lambda r: r["batch_size"] / r["base_batch_size"])
    gain = best["throughput_gain"]
    return Char(gain["ratio"], f"x at batch {best['batch_size']} vs {best['base_batch_size']}", "given", ci=gain["ci95"])


def compare(w: Char, b: Char, seed: int = 0) -> dict[str, Any]:
    """Ratio, interval and verdict of a workload's characteristic against the baseline's."""
    if w.value is None:
        return {"verdict": "unavailable", "why": w.why}
    if w.kind == "present":
        return {"verdict": "present" if b.value is None else _ratio_verdict(w, b, seed)["verdict"]}
    if b.value is None:
        return {"verdict": "baseline unavailable", "why": b.why}
    if w.extra.get("position_unit") != b.extra.get("position_unit"):
        # different units (denoising steps vs tokens): only "constant vs growing" is comparable
        wl, wh = slope_ci(*w.samples, seed=seed)
        bl, bh = slope_ci(*b.samples, seed=seed)
        w_flat, b_flat = wl <= 0 <= wh or abs(w.value) < 1e-9, bl <= 0 <= bh or abs(b.value) < 1e-9
        if w_flat and not b_flat:
            return {"verdict": "lower", "ratio": 0.0, "ci95": None, "basis": "constant vs growing (different position units)"}
        if b_flat and not w_flat:
            return {"verdict": "higher", "ratio": None, "ci95": None, "basis": "growing vs constant (different position units)"}
        return {"verdict": "not comparable", "why": f"position is '{w.extra.get('position_unit')}' here and '{b.extra.get('position_unit')}' in the baseline"}
    if w.kind == "category":
        return {"verdict": "same" if w.value == b.value else "differs"}
    if w.kind == "slope":
        wl, wh = slope_ci(*w.samples, seed=seed)
        bl, bh = slope_ci(*b.samples, seed=seed)
        verdict = "lower" if wh < bl else "higher" if wl > bh else "no difference"
        ratio = w.value / b.value if b.value else None
        return {"verdict": verdict, "ratio": ratio, "ci95": None, "interval_value": [wl, wh], "interval_baseline": [bl, bh]}
    return _ratio_verdict(w, b, seed)


def _ratio_verdict(w: Char, b: Char, seed: int) -> dict[str, Any]:
    if w.kind == "samples" and w.samples is not None and b.samples is not None and len(w.samples) and len(b.samples):
        r = ratio_ci(w.samples, b.samples, seed)
    elif w.kind == "derived" and w.samples is not None and b.samples is not None and len(w.samples) and len(b.samples) and b.value:
        t = ratio_ci(b.samples, w.samples, seed)  # MFU, MBU scale as 1 / time for fixed work
        point = w.value / b.value
        r = {"ratio": point, "ci95": [point * t["ci95"][0] / t["ratio"], point * t["ci95"][1] / t["ratio"]]} if t.get("ratio") else {"ratio": point, "ci95": None}
    elif w.kind == "given" and b.value:
        point = w.value / b.value
        r = {"ratio": point, "ci95": None}
        if w.ci and b.ci:
            r["ci95"] = [w.ci[0] / b.ci[1], w.ci[1] / b.ci[0]]
    else:
        point = w.value / b.value if b.value else None
        r = {"ratio": point, "ci95": [point, point] if point is not None else None}
        if point is not None and w.kind == "exact":
            verdict = "higher" if point > 1 + EXACT_BAND else "lower" if point < 1 - EXACT_BAND else "no difference"
            return {**r, "verdict": verdict}
    if r.get("ratio") is None:
        return {"verdict": "no ratio (baseline is zero)", **r}
    if not r.get("ci95"):
        return {**r, "verdict": "no interval"}
    lo, hi = r["ci95"]
    return {**r, "verdict": "higher" if lo > 1 else "lower" if hi < 1 else "no difference"}


def load_rules(path: Path = RULES_FILE) -> list[dict[str, Any]]:
    return yaml.safe_load(path.read_text()) or []


def run_characteristics(run: Run) -> dict[str, dict[str, Char]]:
    """The characteristics of every workload that ran to the end (computed once per report:
    they read every measured span)."""
    sweeps = read_json(run.path / "sweeps.json") or {}
    return {name: characteristics(w, sweeps) for name, w in run.workloads.items() if w.status == "ok"}


def differences(run: Run, seed: int = 0, chars: dict[str, dict[str, Char]] | None = None) -> pd.DataFrame:
    """The differences table: one row per (workload, characteristic) against the baseline."""
    baseline_name = _baseline(run)
    if baseline_name is None:
        return pd.DataFrame()
    chars = run_characteristics(run) if chars is None else chars
    if baseline_name not in chars:
        return pd.DataFrame()
    base = chars[baseline_name]
    rules = load_rules()
    rows = []
    for name, cs in chars.items():
        if name == baseline_name:
            continue
        for key, c in cs.items():
            b = base[key]
            result = compare(c, b, seed)
            if result["verdict"] in ("unavailable",) and c.kind == "present":
                continue  # neither has deadlines: nothing to say
            reading, lever, source = _reading(rules, key, result, name, baseline_name, c, b)
            ci = result.get("ci95") or [None, None]
            rows.append({
                "workload": name, "characteristic": key, "label": LABELS[key],
                "baseline": baseline_name, "baseline_value": _plain(b.value), "value": _plain(c.value), "unit": c.unit,
                "ratio": result.get("ratio"), "ci_low": ci[0], "ci_high": ci[1], "verdict": result["verdict"],
                "reading": reading, "lever": lever, "source": source,
                "why_unavailable": result.get("why"),
            })
    return pd.DataFrame(rows)


def _baseline(run: Run) -> str | None:
    name = run.info.get("baseline")
    if name in run.workloads:
        return name
    group = [n for n, w in run.workloads.items() if (w.summary.get("sweep") or {}).get("group") == name]
    return group[0] if group else (next(iter(run.workloads), None))


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, (np.floating, np.integer)) else value


def fmt(value: Any, unit: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if unit in ("of peak", "of bandwidth", "of ticks", "of phase time"):
        return f"{value:.1%}"
    if unit == "s":
        return f"{value * 1e3:.3g} ms"
    if unit.startswith("s/"):
        return f"{value * 1e6:.3g} µs/{unit[2:]}"
    if unit.startswith("B/"):
        return f"{0.0 if abs(value) < 0.01 else value:.4g} {unit}"  # a fitted zero prints as 0
    return f"{value:.3g} {unit}".strip()


def _reading(rules: list[dict[str, Any]], key: str, result: dict[str, Any], name: str, baseline: str, c: Char, b: Char) -> tuple[str, str, str]:
    verdict = result["verdict"]
    if verdict == "no difference":
        return f"No difference from {baseline} within the 95% interval.", "", ""
    if verdict in ("unavailable", "baseline unavailable", "not comparable"):
        return f"Not compared: {result.get('why') or 'unavailable'}.", "", ""
    ratio = result.get("ratio")
    fields = {"workload": name, "baseline": baseline, "value": fmt(c.value, c.unit), "baseline_value": fmt(b.value, b.unit),
              "ratio": f"{ratio:.3g}x" if isinstance(ratio, float) else "—", "unit": c.unit.split("/")[-1]}
    if verdict == "same":
        return f"Same as {baseline} ({fields['value']}).", "", ""
    for rule in rules:  # the first rule that matches wins; rules with bounds come before general ones
        if (rule["characteristic"] == key and rule["verdict"] == verdict
                and ("min_ratio" not in rule or (ratio or 0) >= rule["min_ratio"])
                and ("max_ratio" not in rule or (ratio or 0) <= rule["max_ratio"])):
            return rule["reading"].format(**fields), rule.get("lever", ""), rule.get("source", "")
    return f"{name}: {LABELS[key]} is {verdict} than {baseline}'s ({fields['value']} vs {fields['baseline_value']}).", "", ""
