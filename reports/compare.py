"""`python -m profiler compare RUN_A RUN_B`: an A/B report of two runs of the same workloads.

For every workload present in both runs, each per-request metric and each phase's latency is
compared as B / A (ratio of medians with a 95% bootstrap interval; "no difference" when the
interval includes 1). `--fail-if "e2e_s>1.10"` (or "llm:tpot_s>1.05", "phase:decode_step>1.1")
makes the command exit 1 when a ratio crosses the threshold, so it can guard CI.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from profiler.analysis import NS, request_metrics
from profiler.rundir import Run
from profiler.stats import ratio_ci

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
    m = run.workloads[name].measured
    if m.empty:
        return {}
    out = dict(request_metrics(m))
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
            rows.append({"workload": name, "metric": metric, "a_median": float(np.median(sa[metric])), "b_median": float(np.median(sb[metric])),
                         "ratio": r["ratio"], "ci_low": lo, "ci_high": hi,
                         "verdict": "higher" if lo > 1 else "lower" if hi < 1 else "no difference"})
    return pd.DataFrame(rows), notes


def compare_html(a: Run, b: Run, table: pd.DataFrame, notes: list[str], failed: list[str]) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(r['workload'])}</td><td>{e(r['metric'])}</td><td>{r['a_median']:.6g}</td><td>{r['b_median']:.6g}</td>"
        f"<td>{r['ratio']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]</td><td>{e(r['verdict'])}</td></tr>"
        for r in table.to_dict("records"))
    fails = "".join(f"<li>{e(f)}</li>" for f in failed)
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Profiler A/B comparison</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:auto;padding:1rem}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:.25rem .5rem}th{background:#f4f5f7}.fail{background:#fdecec;padding:.5rem}</style></head><body>"
        f"<h1>A/B comparison</h1><p>A: {e(str(a.path))}<br>B: {e(str(b.path))}</p>"
        + (f'<div class="fail"><b>Failed conditions</b><ul>{fails}</ul></div>' if failed else "")
        + "".join(f"<p>{e(n)}</p>" for n in notes)
        + "<table><tr><th>workload</th><th>metric</th><th>A median</th><th>B median</th><th>B / A [95% CI]</th><th>verdict</th></tr>"
        + rows + "</table><p>Seconds for latencies, units/s for throughput; ratios of medians with 95% bootstrap intervals.</p></body></html>"
    )


def write_compare(a: Run, b: Run, out: Path, conditions: list[Condition]) -> tuple[pd.DataFrame, list[str], list[str]]:
    from profiler.store import atomic_write_text

    table, notes = compare_runs(a, b)
    records = table.to_dict("records")
    failed = [f"{c.text}: {r['workload']} {r['metric']} B/A = {r['ratio']:.3f}" for c in conditions for r in records if c.fails(r)]
    unmatched = [c.text for c in conditions if not any(r["metric"] == c.metric and (not c.workload or r["workload"] == c.workload) for r in records)]
    notes += [f"--fail-if {t}: no such metric in both runs" for t in unmatched]
    atomic_write_text(out, compare_html(a, b, table, notes, failed))
    atomic_write_text(out.with_suffix(".json"), table.to_json(orient="records", indent=1))
    return table, notes, failed
