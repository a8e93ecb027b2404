"""The child process: one workload, from setup to teardown, in isolation.

The runner spawns one child per workload (a fresh interpreter: no CUDA state, peak memory or
crash leaks between workloads). The child resolves its plugin again from the type string,
seeds, runs setup (untimed), warmup and measured iterations, and always teardown. It streams
spans to disk and reports progress to the parent through a queue; on any error it writes
error.json with the phase, the reason and the traceback, keeping every span already taken.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .registry import add_plugin_paths, resolve_workload
from .spans import CudaSpanRecorder, SpanRecorder, format_exception
from .store import SPANS, PartWriter, atomic_write_json

CHILD_JSON = "child.json"
WORK = "work"
OPMIX_JSON = "opmix.json"
ERROR_JSON = "error.json"


@dataclass
class ChildSpec:
    """Everything the child needs; plain data, so it crosses the spawn boundary."""

    name: str
    type: str
    params: dict[str, Any]
    plugin_paths: list[str]
    device: str
    seed: int
    measure: dict[str, Any]
    workdir: str


@dataclass
class SetupContextImpl:
    """The `ctx` a workload's setup receives (see profiler.plugin.SetupContext)."""

    device: str
    seed: int
    workdir: str
    facts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def declare(self, **facts: Any) -> None:
        self.facts.update(facts)

    def warn(self, message: str) -> None:
        self.warnings.append(str(message))


class Reporter:
    """Progress messages to the parent; a missing queue (in-process use) is fine."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def __call__(self, kind: str, **data: Any) -> None:
        if self.queue is not None:
            self.queue.put({"kind": kind, "t": time.monotonic(), **data})


class Terminated(BaseException):
    """SIGTERM from the parent (a hang past its limit, or the user stopping the run)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated("terminated by the parent (SIGTERM)")


def child_entry(spec: ChildSpec, queue: Any) -> None:
    """Spawn target. SIGTERM becomes an exception, so a workload stopped from outside still
    flushes its spans and records where it was; only SIGKILL (or a hang inside native code that
    outlasts the parent's grace) loses the last batch."""
    signal.signal(signal.SIGTERM, _raise_terminated)
    # Library warnings (e.g. one per fallback kernel) would flood the progress display; workloads
    # that need them capture them in setup and report them through ctx.warn.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # kineto (torch.profiler) prints a line at every trace start and stop; its failures are
    # detected from the trace itself (opmix.no_kernels). KINETO_LOG_LEVEL=2 shows them again.
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    raise SystemExit(child_main(spec, queue))


def child_main(spec: ChildSpec, queue: Any = None) -> int:
    """Run one workload. Returns 0 on success, 1 on a recorded failure."""
    report = Reporter(queue)
    workdir = Path(spec.workdir)
    info: dict[str, Any] = {"pid": os.getpid(), "seed": spec.seed, "device": spec.device}
    phase = "import"
    workload = None
    recorder: SpanRecorder | None = None
    error: dict[str, Any] | None = None
    try:
        add_plugin_paths(spec.plugin_paths)
        plugin = resolve_workload(spec.type)
        params = plugin.cls.Params.model_validate(spec.params)
        import torch

        torch.manual_seed(spec.seed)
        writer = PartWriter(workdir, SPANS)
        if spec.device.startswith("cuda"):
            device = torch.device(spec.device)
            torch.cuda.set_device(device.index if device.index is not None else torch.cuda.current_device())
            props = torch.cuda.get_device_properties(torch.cuda.current_device())
            info["gpu_uuid"] = str(props.uuid)
            info["gpu_name"] = props.name
            report("gpu", uuid=str(props.uuid))
            recorder = CudaSpanRecorder(writer, torch)
        else:
            recorder = SpanRecorder(writer)

        phase = "setup"
        report("phase", phase=phase)
        ctx = SetupContextImpl(spec.device, spec.seed, str(workdir))
        workload = plugin.cls(params)
        t0 = time.monotonic()
        workload.setup(ctx)
        info["setup_s"] = time.monotonic() - t0
        info["facts"] = ctx.facts
        info["warnings"] = ctx.warnings

        phase = "warmup"
        info["loop"] = run_loop(workload, recorder, spec.measure, report, lambda p: _set(info, "phase", p))
        phase = info.get("phase", phase)
        recorder.flush()
        if spec.measure.get("count_work", True):
            phase = "count_work"
            _set(info, "phase", phase)
            report("phase", phase=phase)
            count_work(workload, workdir, info)
        if spec.measure.get("trace_ops", True):
            phase = "trace_ops"
            _set(info, "phase", phase)
            report("phase", phase=phase)
            trace_ops(workload, spec.device, workdir, info)
    except BaseException as exc:  # recorded, never lost: KeyboardInterrupt and SystemExit too
        phase = info.get("phase", phase)
        error = describe_error(phase, exc)
    finally:
        if recorder is not None:
            _flush_quietly(recorder, info)
        if workload is not None:
            report("phase", phase="teardown")
            try:
                workload.teardown()
            except BaseException as exc:
                teardown_error = describe_error("teardown", exc)
                if error is None:
                    error = teardown_error
                else:
                    error["teardown_error"] = teardown_error
        if isinstance(recorder, CudaSpanRecorder):
            info["phase_memory"] = recorder.phase_memory
        info.pop("phase", None)
        _write_quietly(workdir / CHILD_JSON, info)
        if error is not None:
            _write_quietly(workdir / ERROR_JSON, error)
        # also through the queue: on a full disk the files above may be missing, the parent still knows
        report("done", ok=error is None, error=error, info=info)
    return 0 if error is None else 1


def run_loop(workload: Any, recorder: SpanRecorder, measure: dict[str, Any], report: Any, set_phase: Any) -> dict[str, Any]:
    """Warmup, then measured iterations until min_iters and min_seconds, capped by max_seconds."""
    set_phase("warmup")
    report("phase", phase="warmup", total=measure["warmup_iters"])
    for i in range(measure["warmup_iters"]):
        recorder.run_iteration(workload, i, warmup=True)
        report("iter", warmup=True, done=i + 1)
    set_phase("measure")
    report("phase", phase="measure", total=measure["min_iters"])
    start = time.monotonic()
    n = 0
    stopped_at_max = False
    while True:
        elapsed = time.monotonic() - start
        if n >= measure["min_iters"] and elapsed >= measure["min_seconds"]:
            break
        if elapsed >= measure["max_seconds"]:
            stopped_at_max = True
            break
        recorder.run_iteration(workload, measure["warmup_iters"] + n, warmup=False)
        n += 1
        report("iter", warmup=False, done=n)
    return {
        "warmup_iters": measure["warmup_iters"],
        "measured_iters": n,
        "measure_s": time.monotonic() - start,
        "stopped_at_max_seconds": stopped_at_max and n < measure["min_iters"],
        "hit_max_seconds": stopped_at_max,
    }


def count_work(workload: Any, workdir: Path, info: dict[str, Any]) -> None:
    """One untimed iteration under the FLOP and byte counters -> work.parquet (see work.py).

    A failure here is recorded as the reason the work metrics are unavailable; the timed
    measurements already on disk stand.
    """
    from .store import atomic_write_table, rows_to_table
    from .work import WorkRecorder

    try:
        recorder = WorkRecorder()
        rows = recorder.count(workload)
        atomic_write_table(workdir / f"{WORK}.parquet", rows_to_table(rows))
        if recorder.uncounted_phases:
            info["work_uncounted_phases"] = recorder.uncounted_phases
        partial = sorted({r["phase"] for r in rows if r["misses_other_threads"]})
        if partial:
            info["work_partial_phases"] = partial
    except Exception as exc:
        info["work_error"] = f"the counting pass failed: {type(exc).__name__}: {str(exc)[:200]}"


def trace_ops(workload: Any, device: str, workdir: Path, info: dict[str, Any]) -> None:
    """One traced iteration -> opmix.json and trace.json (see opmix.py); failures are recorded."""
    from .opmix import trace_iteration

    try:
        atomic_write_json(workdir / OPMIX_JSON, trace_iteration(workload, device, workdir))
    except Exception as exc:
        info["opmix_error"] = f"the traced pass failed: {type(exc).__name__}: {str(exc)[:200]}"


def describe_error(phase: str, exc: BaseException) -> dict[str, Any]:
    reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    if type(exc).__name__ == "OutOfMemoryError" or isinstance(exc, MemoryError):
        reason = f"out of memory: {reason}"
    return {"phase": phase, "reason": reason.splitlines()[0][:500], "type": type(exc).__name__, "traceback": format_exception(exc)}


def _set(d: dict[str, Any], key: str, value: Any) -> None:
    d[key] = value


def _write_quietly(path: Path, obj: dict[str, Any]) -> None:
    """A full disk must not turn a recorded failure into a traceback; the parent reports it."""
    try:
        atomic_write_json(path, obj)
    except OSError as exc:
        print(f"profiler child: could not write {path.name}: {exc.strerror or exc}", file=__import__("sys").stderr)


def _flush_quietly(recorder: SpanRecorder, info: dict[str, Any]) -> None:
    try:
        if recorder.closed:
            recorder.end_iteration()
        recorder.flush()
    except Exception as exc:  # the error is what matters; report that spans were lost
        info["flush_error"] = f"{type(exc).__name__}: {exc}"
