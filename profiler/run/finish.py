"""After a child ends: merge its part files, settle its error, and write its summary.json.

What the child wrote (child.json, error.json) wins; what only reached the parent through the
queue (a full disk) or what only the parent knows (killed as hung, a signal, interrupted) fills
the gaps. The summary itself is built in one place, profiler/characterize/summary.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..characterize.summary import Passes, WorkloadOutcome, build_summary
from ..measure.store import SAMPLES, SPANS, atomic_write_json, merge_parts, read_frame, read_json
from ..rundir import SUMMARY_JSON, read_measured
from ..runmodel import Status, SweepPoint, WorkloadSummary
from ..suite.config import SuiteConfig
from ..suite.resolve import ResolvedWorkload
from .child import CHILD_JSON, ERROR_JSON, OPMIX_JSON, WORK
from .record import RunRecord
from .supervisor import ChildWatch


def finish_workload(w: ResolvedWorkload, workdir: Path, watch: ChildWatch, suite: SuiteConfig, record: RunRecord) -> WorkloadSummary:
    """Settle one child's files and write its summary.json; returns the summary."""
    device, seed, measure = record.info.device, suite.seed, suite.measure
    problems: list[str] = []
    for name in (SPANS, SAMPLES):
        try:
            merge_parts(workdir, name)
        except Exception as exc:
            problems.append(f"{name}: could not merge part files ({type(exc).__name__}: {exc}); the parts are kept")
    error = settle_error(workdir, watch)
    if watch.sampler_error:
        problems.append(watch.sampler_error)
    child = read_json(workdir / CHILD_JSON) or watch.done.get("info") or {"device": device}
    outcome = WorkloadOutcome(
        name=w.entry.name,
        type=w.entry.type,
        plugin=w.plugin.source,
        params=w.params.model_dump(mode="json"),
        declaration=w.declaration,
        device=device,
        seed=seed,
        status=Status.INTERRUPTED if watch.interrupted else (Status.FAILED if error else Status.OK),
        error=error,
        child=child,
        wall_s=watch.wall_s,
        sweep=SweepPoint(group=w.sweep_group, point=w.sweep_point or {}) if w.sweep_group else None,
        gpu_unavailable=watch.gpu_unavailable,
        problems=problems,
    )
    # only the columns the summary reads, and only measured spans: one table in memory, not two
    spans, _, span_count = read_measured(workdir / f"{SPANS}.parquet", problems)
    passes = Passes(
        count_work=measure.count_work,
        trace_ops=measure.trace_ops,
        work=_read_frame(workdir / f"{WORK}.parquet") if measure.count_work else None,
        opmix=read_json(workdir / OPMIX_JSON) if measure.trace_ops else None,
        calibration=record.calibration,
        idle_power_w=record.info.gpu_idle_power.idle_power_w,
    )
    summary = build_summary(outcome, spans, _read_frame(workdir / f"{SAMPLES}.parquet"), span_count, passes)
    atomic_write_json(workdir / SUMMARY_JSON, summary.model_dump(mode="json"))
    return summary


def settle_error(workdir: Path, watch: ChildWatch) -> dict[str, Any] | None:
    """error.json as it should stand: the child's own, else the one that came through the queue,
    else the parent's reason (killed, hung, a signal); the parent's reason is prefixed when both exist."""
    error = read_json(workdir / ERROR_JSON)
    if error is None and watch.done.get("error"):  # the child could not write it (a full disk)
        error = watch.done["error"]
        atomic_write_json(workdir / ERROR_JSON, error)
    reason = watch.exit_reason()
    if error is None and reason:
        error = {"phase": watch.stage, "reason": reason, "type": "ChildFailure", "traceback": None}
        atomic_write_json(workdir / ERROR_JSON, error)
    elif error is not None and watch.killed_reason:
        error["reason"] = f"{watch.killed_reason}; {error['reason']}"
        atomic_write_json(workdir / ERROR_JSON, error)
    return error


def _read_frame(path: Path) -> pd.DataFrame:
    try:
        return read_frame(path)
    except Exception:
        return pd.DataFrame()
