"""`python -m profiler compare RUN_A RUN_B`: an A/B report of two runs of the same workloads.

For every workload present in both runs, each per-request metric and each phase's latency is
compared as B / A (ratio of medians with a 95% bootstrap interval; "no difference" when the
interval includes 1). `--fail-if "e2e_s>1.10"` (or "llm:tpot_s>1.05", "phase:decode_step>1.1")
makes the command exit 1 when a ratio crosses the threshold, so it can guard CI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from profiler.characterize.analysis import NS, request_metrics
from profiler.characterize.stats import ratio_ci
from profiler.format import duration, rate, ratio, sig
from profiler.rundir import Run

from .render import render
from .verdicts import css_class

CONDITION = re.compile(r"^\s*(?:(?P<workload>[^:<>]+):)?(?P<metric>[A-Za-z_][\w.:]*)\s*(?P<op>[<>])\s*(?P<threshold>[0-9]*\.?[0-9]+)\s*$")
REQUEST_METRICS = ("e2e_s", "ttft_s", "tpot_s", "itl_s", "output_units_per_s")


@dataclass(frozen=True)
class Condition:
    workload: str | None
    metric: str
    op: str
    threshold: float
    text: str

    def fails(self, row: dict[str, Any]) -> bool:
        if self.workload and row["workload"] != self.workload:
            return False
        if row["metric"] != self.metric or row.get("ratio") is None:
            return False
        return row["ratio"] > self.threshold if self.op == ">" else row["ratio"] < self.threshold


def parse_condition(text: str) -> Condition:
    m = CONDITION.match(text)
    if not m:
        raise ValueError(f"--fail-if '{text}': expected METRIC>RATIO or WORKLOAD:METRIC<RATIO, e.g. 'e2e_s>1.10' or 'llm:phase:decode_step>1.05'")
    return Condition(m["workload"], m["metric"], m["op"], float(m["threshold"]), text)


def samples(run: Run, name: str) -> dict[str, np.ndarray]:
    w = run.workloads[name]
    m = w.measured
    if m.empty:
        return {}
    out = dict(request_metrics(m, w.declaration.deliveries))
    for phase, g in m.groupby("phase"):
        if phase != "iteration":
            out[f"phase:{phase}"] = ((g["end_ns"] - g["start_ns"]) / NS).to_numpy(dtype=float)
    return out


def compare_runs(a: Run, b: Run, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    notes = []
    common = [n for n in a.workloads if n in b.workloads]
    for n in a.workloads:
        if n not in b.workloads:
            notes.append(f"{n}: only in A")
    for n in b.workloads:
        if n not in a.workloads:
            notes.append(f"{n}: only in B")
    rows = []
    for name in common:
        sa, sb = samples(a, name), samples(b, name)
        for metric in sorted(set(sa) & set(sb), key=lambda k: (k not in REQUEST_METRICS, k)):
            if not len(sa[metric]) or not len(sb[metric]):
                continue
            r = ratio_ci(sb[metric], sa[metric], seed)
            if r.get("ratio") is None:
                continue
            lo, hi = r["ci95"]
            rows.append(
                {
                    "workload": name,
                    "metric": metric,
                    "a_median": float(np.median(sa[metric])),
                    "b_median": float(np.median(sb[metric])),
                    "ratio": r["ratio"],
                    "ci_low": lo,
                    "ci_high": hi,
                    "verdict": "higher" if lo > 1 else "lower" if hi < 1 else "no difference",
                }
            )
    return pd.DataFrame(rows), notes


def compare_html(a: Run, b: Run, table: pd.DataFrame, notes: list[str], failed: list[str]) -> str:
    """The A/B page (templates/compare.html.j2, autoescaped): every metric of every common workload,
    both medians in their units, B / A with its interval, and the failed conditions first."""
    rows = [
        {
            "workload": r["workload"],
            "metric": r["metric"],
            "a": _metric_value(r["metric"], r["a_median"], _unit(b, r["workload"])),
            "b": _metric_value(r["metric"], r["b_median"], _unit(b, r["workload"])),
            "ratio": ratio(r["ratio"], r["ci_low"], r["ci_high"]),
            "verdict": r["verdict"],
            # B / A of a latency: higher is worse; of a throughput: better
            "cls": css_class(r["verdict"], "higher" if r["metric"] == "output_units_per_s" else "lower"),
        }
        for r in table.to_dict("records")
    ]
    return str(render("compare.html.j2", a=str(a.path), b=str(b.path), rows=rows, notes=notes, failed=failed))


def _unit(run: Run, name: str) -> str:
    w = run.workloads.get(name)
    return w.declaration.output_unit if w is not None else "unit"


def _metric_value(metric: str, value: float, unit: str) -> str:
    """A compared median in its unit: seconds for latencies and phases, output units/s for throughput."""
    if metric == "output_units_per_s":
        return rate(value, unit)
    if metric.endswith("_s") or metric.startswith("phase:"):
        return duration(value)
    return sig(value)


def write_compare(a: Run, b: Run, out: Path, conditions: list[Condition]) -> tuple[pd.DataFrame, list[str], list[str]]:
    from profiler.measure.store import atomic_write_text

    table, notes = compare_runs(a, b)
    records = table.to_dict("records")
    failed = [f"{c.text}: {r['workload']} {r['metric']} B/A = {r['ratio']:.3f}" for c in conditions for r in records if c.fails(r)]
    unmatched = [c.text for c in conditions if not any(r["metric"] == c.metric and (not c.workload or r["workload"] == c.workload) for r in records)]
    notes += [f"--fail-if {t}: no such metric in both runs" for t in unmatched]
    atomic_write_text(out, compare_html(a, b, table, notes, failed))
    atomic_write_text(out.with_suffix(".json"), table.to_json(orient="records", indent=1))
    return table, notes, failed
