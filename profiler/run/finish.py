"""After a child ends: merge its part files, settle its error, and write its summary.json.

What the child wrote (child.json, error.json) wins; what only reached the parent through the
queue (a full disk) or what only the parent knows (killed as hung, a signal, interrupted) fills
the gaps. The summary itself is built in one place, profiler/characterize/summary.py.

A Ctrl-C after a workload's measured loop completed (during its untimed counting or traced pass,
its teardown, or after it finished) does not make it a failure: its timed results are complete,
so it keeps status ok and its place in the comparisons; the passes it lost are named in
`problems` and, as unavailable with the reason, under `work` and `operator_mix`. The run as a
whole is still marked interrupted (the runner re-raises the Ctrl-C).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from ..characterize.serving import none_finished
from ..characterize.summary import Passes, WorkloadOutcome, build_summary
from ..loadconfig import Objective
from ..measure.store import ENGINE, REQUESTS, SAMPLES, SPANS, atomic_write_json, merge_parts, read_frame, read_json, recover_journal
from ..rundir import SUMMARY_JSON, read_measured
from ..runmodel import ChildError, ChildRecord, Placement, Status, SweepPoint, WorkloadSummary
from ..suite.config import MeasureConfig, SuiteConfig
from ..suite.resolve import ResolvedWorkload
from .child import CHILD_JSON, ERROR_JSON, OPMIX_JSON, WORK
from .executor import NodeMeasures
from .record import RunRecord
from .supervisor import ChildWatch


def finish_workload(
    w: ResolvedWorkload, workdir: Path, watch: ChildWatch, suite: SuiteConfig, record: RunRecord, placement: Placement, node: NodeMeasures | None = None
) -> WorkloadSummary:
    """Settle one child's files and write its summary.json; returns the summary. `placement`: where it ran; `node`: the
    ceilings and idle power of the cluster node that ran it (kept as node.json), None when it ran on this machine."""
    device, seed, measure = record.info.device, suite.seed, suite.measure
    problems: list[str] = []
    if node is not None:
        atomic_write_json(workdir / NODE_JSON, asdict(node))
    try:
        recovered = recover_journal(workdir, SPANS)
    except Exception as exc:
        recovered = 0
        problems.append(f"{SPANS}.journal: unreadable ({type(exc).__name__}: {exc}); the spans it held are lost")
    if recovered:
        problems.append(f"{recovered} span(s) read back from the child's journal: it ended before writing them as a part")
    if w.entry.load is not None:
        problems.extend(recovered_requests(workdir))
    for name in (SPANS, SAMPLES):
        try:
            merge_parts(workdir, name)
        except Exception as exc:
            problems.append(f"{name}: could not merge part files ({type(exc).__name__}: {exc}); the parts are kept")
    raw = read_json(workdir / CHILD_JSON)  # the child's own file, else its record through the queue (a full disk)
    child = child_record(raw, problems) if raw is not None else watch.done.info if watch.done else ChildRecord(device=device)
    late = late_interruption(workdir, watch, child, measure.count_work, measure.trace_ops)
    if late is not None:
        (workdir / ERROR_JSON).unlink(missing_ok=True)  # the child's record of the stop is not a failure: the reason is stated below
        child = child.model_copy(update=late.pass_errors)
        problems.extend(late.problems)
        error = None
    else:
        error = settle_error(workdir, watch, problems)
    if watch.sampler_error:
        problems.append(watch.sampler_error)
    problems.extend(watch.server_notes)
    problems.extend(process_problems(watch))
    outcome = workload_outcome(
        w,
        device,
        seed,
        status=Status.INTERRUPTED if watch.interrupted and late is None else (Status.FAILED if error else Status.OK),
        error=error,
        child=child,
        wall_s=watch.wall_s,
        gpu_unavailable=watch.gpu_unavailable,
        problems=problems,
        placement=placement,
        own_server=watch.server_found,
        server_confirmed=watch.server_confirmed,
        other_servers=[(o.pid, o.workload) for o in watch.other_servers],
        server_gpu=watch.server_gpu,
    )
    summary = failed_if_none_finished(summarize_directory(outcome, workdir, measure, record), workdir)
    atomic_write_json(workdir / SUMMARY_JSON, summary.model_dump(mode="json"))
    return summary


def failed_if_none_finished(summary: WorkloadSummary, workdir: Path) -> WorkloadSummary:
    """A load run whose child ended well but in which no measured request that was sent finished
    (characterize/serving.py: none_finished) is failed, not ok: its error.json and summary say why (phase `load`), and
    every record stays."""
    reason = none_finished(summary.serving) if summary.status == Status.OK and summary.serving is not None else None
    if reason is None:
        return summary
    error = ChildError(phase="load", reason=reason, type="NoRequestFinished")
    atomic_write_json(workdir / ERROR_JSON, error.model_dump(mode="json"))
    return summary.model_copy(update={"status": Status.FAILED, "error": error.info()})


def workload_outcome(w: ResolvedWorkload, device: str, seed: int, **fields: Any) -> WorkloadOutcome:
    """The outcome of workload `w` (its name, type, plugin, params, declaration and sweep point) with `fields`: status,
    error, child, wall_s, gpu_unavailable, problems (characterize/summary.py: WorkloadOutcome)."""
    return WorkloadOutcome(
        name=w.entry.name,
        type=w.entry.type,
        plugin=w.plugin.source,
        params=w.params.model_dump(mode="json"),
        declaration=w.declaration,
        device=device,
        seed=seed,
        sweep=SweepPoint(group=w.sweep_group, point=w.sweep_point or {}) if w.sweep_group else None,
        load=w.entry.load,
        objective=(w.entry.objective or Objective.model_validate({})) if w.entry.load else None,
        **fields,
    )


def summarize_directory(outcome: WorkloadOutcome, workdir: Path, measure: MeasureConfig, record: RunRecord) -> WorkloadSummary:
    """The summary of the spans, samples and untimed passes in `workdir` (not written). Problems reading them are added
    to outcome.problems."""
    # only the columns the summary reads, and only measured spans: one table in memory, not two
    spans, _, span_count = read_measured(workdir / f"{SPANS}.parquet", outcome.problems)
    node = read_json(workdir / NODE_JSON)  # a cluster node's own ceilings and idle power, where one ran it
    passes = Passes(
        count_work=measure.count_work,
        trace_ops=measure.trace_ops,
        work=read_frame_or_empty(workdir / f"{WORK}.parquet") if measure.count_work else None,
        opmix=read_json(workdir / OPMIX_JSON) if measure.trace_ops else None,
        calibration=node["calibration"] if node else record.calibration,
        idle_power_w=(node["idle_power"] or {}).get("idle_power_w") if node else record.info.gpu_idle_power.idle_power_w,
    )
    serving = {}
    if outcome.load is not None:
        serving = {name: read_frame_or_empty(workdir / f"{name}.parquet") for name in (REQUESTS, ENGINE)}
    return build_summary(outcome, spans, read_frame_or_empty(workdir / f"{SAMPLES}.parquet"), span_count, passes, serving.get(REQUESTS), serving.get(ENGINE))


NODE_JSON = "node.json"
"""On a cluster: the ceilings (calibration) and GPU idle power of the node that ran the point (executor.NodeMeasures)."""
INTERRUPTIONS = ("Terminated", "KeyboardInterrupt")
"""The exceptions the child records when the parent stops it (SIGTERM) or the terminal's Ctrl-C reaches it (SIGINT)."""


@dataclass
class LateInterruption:
    """A Ctrl-C after the measured loop completed: what it cost."""

    problems: list[str]
    pass_errors: dict[str, str]
    """child.json's `work_error` / `opmix_error` for the untimed passes it stopped: the reason each is unavailable."""


def child_record(raw: dict[str, Any], problems: list[str]) -> ChildRecord:
    """child.json (or the same info through the queue) validated once, here; what does not validate is named and
    the record keeps its device alone (a profiler bug: the child writes it itself)."""
    try:
        return ChildRecord.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        problems.append(f"{CHILD_JSON}: {where}: {first['msg']} (a profiler bug); the child's facts, loop and stages are not read")
        device = raw.get("device")
        return ChildRecord(device=device if isinstance(device, str) else None)


def late_interruption(workdir: Path, watch: ChildWatch, child: ChildRecord, count_work: bool, trace_ops: bool) -> LateInterruption | None:
    """None unless the user interrupted this workload after its measured loop completed (watch.measured, or a `loop`
    in child.json) and the child recorded no error but the interruption itself; else which untimed passes it stopped."""
    error = child_error(workdir, watch, [])
    if not watch.interrupted or not (watch.measured or child.loop) or (error and error.type not in INTERRUPTIONS):
        return None
    stage = error.phase if error else watch.stage
    why = f"interrupted by the user during '{stage}', after the measured loop completed"
    lost = {}
    if count_work and not (workdir / f"{WORK}.parquet").exists():
        lost["work_error"] = f"{why}: the counting pass did not finish"
    if trace_ops and not (workdir / OPMIX_JSON).exists():
        lost["opmix_error"] = f"{why}: the traced pass did not finish"
    missing = " and ".join(name for key, name in (("work_error", "work (FLOPs, bytes, MFU, MBU)"), ("opmix_error", "the operator mix")) if key in lost)
    problems = [f"{why}: the timed results are complete; {missing} {'is' if len(lost) == 1 else 'are'} missing"] if lost else []
    return LateInterruption(problems, lost)


def child_error(workdir: Path, watch: ChildWatch, problems: list[str]) -> ChildError | None:
    """The child's error.json, validated once (runmodel.ChildError), else the error that came through the queue (the
    child could not write the file: a full disk); None when it recorded none. An error.json that does not validate
    (a profiler bug) is named in `problems` and read as its reason alone."""
    raw = read_json(workdir / ERROR_JSON)
    if raw is None:
        return watch.done.error if watch.done is not None else None
    try:
        return ChildError.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        problems.append(f"{ERROR_JSON}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']} (a profiler bug); read as its reason alone")
        reason = raw.get("reason") if isinstance(raw, dict) else None
        return ChildError(phase=watch.stage, reason=reason if isinstance(reason, str) else f"{ERROR_JSON} unreadable")


def settle_error(workdir: Path, watch: ChildWatch, problems: list[str]) -> ChildError | None:
    """error.json as it should stand: the child's own, else the one that came through the queue,
    else the parent's reason (killed, hung, a signal); the parent's reason is prefixed when both exist.
    Written back whenever it is not the child's file as it stands."""
    error = child_error(workdir, watch, problems)
    reason = watch.exit_reason()
    if error is None and reason:
        error = ChildError(phase=watch.stage, reason=reason, type="ChildFailure")
    elif error is not None and watch.killed_reason:
        error = error.model_copy(update={"reason": f"{watch.killed_reason}; {error.reason}"})
    if error is not None and read_json(workdir / ERROR_JSON) != (written := error.model_dump(mode="json")):
        atomic_write_json(workdir / ERROR_JSON, written)
    return error


def recovered_requests(workdir: Path) -> list[str]:
    """The requests of a load whose child died, read back from its journal (run/serve.py: recover_requests)."""
    from .serve import recover_requests

    try:
        n = recover_requests(workdir)
    except Exception as exc:
        return [f"{REQUESTS}.journal: unreadable ({type(exc).__name__}: {exc}); the requests it held are lost"]
    if not n:
        return []
    return [
        f"the child ended during its load: {n} ended request(s) read back from its journal (written about once a second); "
        "requests still in flight or not yet sent then are not recorded"
    ]


def process_problems(watch: ChildWatch) -> list[str]:
    """What the workload's processes left: its own processes stopped after it ended, output cut at its cap."""
    problems = []
    if watch.left_behind:
        problems.append(
            f"{len(watch.left_behind)} process(es) the workload started were still running after it ended and were stopped "
            f"(nothing else is measured beside them): {'; '.join(watch.left_behind[:5])}" + (" ..." if len(watch.left_behind) > 5 else "")
        )
    problems.extend(p for p in (record.problem() for record in watch.output) if p)
    if watch.output_error:
        problems.append(watch.output_error)
    if watch.wire_problem:
        problems.append(watch.wire_problem)
    return problems


def read_frame_or_empty(path: Path) -> pd.DataFrame:
    """A parquet file as a frame; empty when missing or unreadable (the summary then says what is unavailable)."""
    try:
        return read_frame(path)
    except Exception:
        return pd.DataFrame()
