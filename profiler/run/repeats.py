"""Repeats (`measure.repeats` > 1, `run --repeats N`): the whole suite runs N times, workloads
interleaved (repeat 1 of every workload, then repeat 2 of every workload, ...), so a slow minute
of the machine lands on every workload rather than on one. Each repeat is its own child process.

Layout of a workload's directory when N > 1 (README, "Run directory"):
- `repeat-<k>/` (k = 1..N): one child's complete directory, exactly as a workload's directory of
  a run without repeats (spans, samples, summary.json, child.json, work, opmix, trace, error.json);
- `spans.parquet`, `samples.parquet`: the rows of the repeats that completed, pooled, with a
  `repeat` column; iteration numbers are offset per repeat so they stay unique;
- `summary.json`: built from the pooled rows (pooled medians and intervals), with `repeats`
  listing each repeat's status, median E2E and contention; the workload is contended when any
  repeat was;
- `child.json`, `work.parquet`, `opmix.json`, `trace.json.gz` (and `node.json` on a cluster): copied from the first
  repeat that completed (the untimed passes count and trace one iteration; they do not vary by repeat).
`profiler.load_run` reads the pooled directory as it reads any workload, and each repeat under
`WorkloadRun.repeats`. The report's differences and `compare` use the between-repeat variation
(profiler/characterize/stats.py: ratio_between_repeats) when both sides have at least two
completed repeats.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..measure.opmix import TRACE_FILE
from ..measure.store import SAMPLES, SPANS, atomic_write_json, atomic_write_table, read_arrow, read_json
from ..rundir import SUMMARY_JSON, repeat_dir
from ..runmodel import ChildError, Contention, Loop, RepeatInfo, ServerDeclaration, Status, WorkloadSummary
from ..suite.config import SuiteConfig
from ..suite.resolve import ResolvedWorkload
from .child import CHILD_JSON, OPMIX_JSON, WORK
from .finish import NODE_JSON, child_record, summarize_directory, workload_outcome
from .record import RunRecord

COPIED_FROM_FIRST = (CHILD_JSON, f"{WORK}.parquet", OPMIX_JSON, TRACE_FILE, NODE_JSON)


def pool_repeats(w: ResolvedWorkload, workdir: Path, done: dict[int, WorkloadSummary], suite: SuiteConfig, record: RunRecord, planned: int) -> WorkloadSummary:
    """Pool the finished repeats `done` (repeat number k -> its summary; repeat k in `repeat-<k>/`; on a cluster they
    can end in any order) of the `planned` ones into `workdir` and write its summary.json; returns it. Status: ok when
    at least one repeat completed; else the last repeat's status and error. A repeat that did not complete, or never
    ran (the run was stopped), is named in `problems`."""
    done = dict(sorted(done.items()))
    ok = [(k, s) for k, s in done.items() if s.status == Status.OK]
    last_k = max(done)
    last = done[last_k]
    # no repeat completed: what the last one measured before it stopped is kept, as a run without repeats keeps it
    pooled = ok or ([(last_k, last)] if last.loop is not None or last.metrics.e2e_s is not None else [])
    problems = [
        f"repeat {k} of {planned}: {s.status.value}"
        + (f" in phase '{s.error.phase}': {s.error.reason}" if s.error else "")
        + ("; its measured iterations are kept" if any(k == p for p, _ in pooled) else "; it is left out of the pooled statistics")
        for k, s in done.items()
        if s.status != Status.OK
    ]
    if len(done) < planned:
        problems.append(f"only {len(done)} of {planned} repeats ran (the run was stopped); the pooled statistics hold those")
    _pool_table(workdir, SPANS, [k for k, _ in pooled], offset_iterations=True, problems=problems)
    _pool_table(workdir, SAMPLES, [k for k, _ in pooled], offset_iterations=False, problems=problems)
    first = pooled[0][0] if pooled else None
    if first is not None:
        for name in COPIED_FROM_FIRST:
            src = repeat_dir(workdir, first) / name
            if src.exists():
                shutil.copyfile(src, workdir / name)
    base = pooled[0][1] if pooled else last
    outcome = workload_outcome(
        w,
        record.info.device,
        suite.seed,
        status=Status.OK if ok else last.status,
        error=None if ok or last.error is None else ChildError(phase=last.error.phase, reason=last.error.reason),
        child=child_record((read_json(workdir / CHILD_JSON) if first is not None else None) or {"device": record.info.device}, problems),
        wall_s=sum(s.wall_s or 0.0 for s in done.values()),
        gpu_unavailable={k: v for k, v in base.unavailable.items() if k.startswith("gpu_")},
        problems=problems,
        placement=base.placement,
        server_gpu=base.local_server.gpu_uuid if base.local_server else None,
        own_server=ServerDeclaration(pid=base.local_server.pid, found_by=base.local_server.found_by, cores=base.local_server.cores)
        if base.local_server
        else None,
        server_confirmed=base.local_server.confirmed if base.local_server else None,
        other_servers=list(zip(base.other_servers.pids, base.other_servers.workloads, strict=False)) if base.other_servers else [],
    )
    summary = summarize_directory(outcome, workdir, suite.measure, record)
    summary.contention = pooled_contention([s for _, s in pooled] or list(done.values()))
    summary.loop = pooled_loop([s for _, s in pooled])
    rates = sorted(s.sample_hz_achieved for _, s in pooled if s.sample_hz_achieved is not None)
    summary.sample_hz_achieved = rates[len(rates) // 2] if rates else None  # the pooled rows span the gaps between repeats
    summary.repeats = [
        RepeatInfo(
            repeat=k,
            dir=repeat_dir(workdir, k).name,
            status=s.status,
            e2e_median_s=s.metrics.e2e_s.median if s.metrics.e2e_s else None,
            contended=s.contention.contended if s.contention else None,
        )
        for k, s in done.items()
    ]
    atomic_write_json(workdir / SUMMARY_JSON, summary.model_dump(mode="json"))
    return summary


def pooled_loop(summaries: list[WorkloadSummary]) -> Loop | None:
    """The pooled repeats' loops as one: iterations and measured seconds summed; stopped at max_seconds if any was."""
    loops = [s.loop for s in summaries if s.loop is not None]
    if not loops:
        return None
    return Loop(
        warmup_iters=sum(x.warmup_iters for x in loops),
        measured_iters=sum(x.measured_iters for x in loops),
        measure_s=sum(x.measure_s for x in loops),
        stopped_at_max_seconds=any(x.stopped_at_max_seconds for x in loops),
        hit_max_seconds=any(x.hit_max_seconds for x in loops),
    )


def pooled_contention(summaries: list[WorkloadSummary]) -> Contention | None:
    """The repeats' contention as one: contended when any repeat was (its reason named), quiet when every measured one
    was; medians of the repeats' medians, p90 the largest."""
    measured = [(k, s.contention) for k, s in enumerate(summaries, start=1) if s.contention is not None and s.contention.contended is not None]
    if not measured:
        return next((s.contention for s in summaries if s.contention is not None), None)
    first = measured[0][1]
    medians = sorted(c.other_cpu_cores_median for _, c in measured if c.other_cpu_cores_median is not None)
    steals = sorted(c.steal_cores_median for _, c in measured if c.steal_cores_median is not None)
    contended = [(k, c) for k, c in measured if c.contended]
    gpu = [c.gpu_other_processes_max for _, c in measured if c.gpu_other_processes_max is not None]
    return Contention(
        cores=first.cores,
        torch_threads=first.torch_threads,
        samples=sum(c.samples for _, c in measured),
        other_cpu_cores_median=medians[len(medians) // 2] if medians else None,
        other_cpu_cores_p90=max((c.other_cpu_cores_p90 for _, c in measured if c.other_cpu_cores_p90 is not None), default=None),
        steal_cores_median=steals[len(steals) // 2] if steals else None,
        gpu_other_processes_max=max(gpu) if gpu else None,
        contended=bool(contended),
        summary=_pooled_text(measured, contended),
    )


def _pooled_text(measured: list[tuple[int, Contention]], contended: list[tuple[int, Contention]]) -> str:
    """'contended in repeats 1, 3 of 3: other processes used 0.52-1.00 of a core (median)' or 'quiet in all 3 repeats: ...'."""

    def others(items: list[tuple[int, Contention]]) -> str:
        values = sorted(c.other_cpu_cores_median for _, c in items if c.other_cpu_cores_median is not None)
        if not values:
            return ""
        spread = f"{values[0]:.2f}" if values[0] == values[-1] else f"{values[0]:.2f}-{values[-1]:.2f}"
        return f": other processes used {spread} of a core on its cores (median)"

    if contended:
        reasons = {c.summary.removeprefix("contended: ") for _, c in contended}
        extra = "" if all("other processes used" in r for r in reasons) else f" ({'; '.join(sorted(reasons))})"
        return f"contended in repeat{'s' if len(contended) > 1 else ''} {', '.join(str(k) for k, _ in contended)} of {len(measured)}{others(contended)}{extra}"
    return f"quiet in all {len(measured)} repeats{others(measured)}"


def _pool_table(workdir: Path, name: str, repeats: list[int], offset_iterations: bool, problems: list[str]) -> None:
    """Concatenate `name`.parquet of the given repeats into workdir, with a `repeat` column (and unique iterations)."""
    tables = []
    offset = 0
    for k in repeats:
        path = repeat_dir(workdir, k) / f"{name}.parquet"
        if not path.exists():
            continue
        try:
            table = read_arrow(path)
        except Exception as exc:
            problems.append(f"{path}: unreadable ({type(exc).__name__}); repeat {k} is left out of the pooled {name}")
            continue
        if offset_iterations and "iteration" in table.column_names and table.num_rows:
            column = table["iteration"]
            table = table.set_column(table.column_names.index("iteration"), "iteration", pc.add(column, pa.scalar(offset, column.type)))  # pyright: ignore[reportAttributeAccessIssue] (generated at import)
            offset = int(pc.max(table["iteration"]).as_py()) + 1  # pyright: ignore[reportAttributeAccessIssue] (generated at import)
        tables.append(table.append_column("repeat", pa.array([k] * table.num_rows, pa.int32())))
    if tables:
        atomic_write_table(workdir / f"{name}.parquet", pa.concat_tables(tables, promote_options="permissive"))
