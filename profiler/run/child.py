"""The child process: one workload, from setup to teardown, in isolation.

The runner spawns one child per workload (a fresh interpreter: no CUDA state, peak memory or
crash leaks between workloads). The child resolves its plugin again from the type string,
seeds, runs setup (untimed), warmup and measured iterations, the untimed counting and traced
passes, and always teardown. It streams spans to disk and reports progress to the parent
through a queue; on any error it writes error.json with the stage, the reason and the
traceback, keeping every span already taken. Which stage it is in, and when each began and
ended, is kept in one place (ChildState) and stored in child.json: the report shades them on
the sampler timeline.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..loadconfig import LoadConfig
from ..measure.spans import CudaSpanRecorder, SpanRecorder, format_exception
from ..measure.store import SPANS, PartWriter, atomic_write_json
from ..plugin import StateLayer, is_engine
from ..runmodel import ChildError, ChildRecord, DevicePeak, Loop, ServerDeclaration, Stage, SuiteServer
from ..suite.config import MeasureConfig
from ..suite.registry import add_plugin_paths, resolve_workload
from .wire import ChildDone, GpuChosen, IterationDone, Message, ServerDeclared, SpansEnded, StageEntered

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
    measure: MeasureConfig
    workdir: str
    load: LoadConfig | None = None
    """The workload's `load:` block; None: the measured loop."""
    cores: list[int] | None = None
    """CPU cores the supervisor pins the child to as it starts (a cluster executor's exclusive grant); None: the
    affinity mask it inherits."""
    threads: int | None = None
    """torch's intra-op threads when the cores a cluster executor granted could not be pinned; None: one per core of
    the process's CPU affinity mask."""
    local_server: SuiteServer | None = None
    """Its own local server, found by the parent before the run (plugin.server_of): sampled as the workload from the
    sampler's first row; the child's declaration at setup confirms it or names another. None: none found."""
    other_servers: list[SuiteServer] = field(default_factory=list)
    """The local servers of the suite's other workloads (one per pid, none of them its own): sampled beside it as
    another workload's servers, their CPU counted as other processes'."""


@dataclass
class SetupContextImpl:
    """The `ctx` a workload's setup receives (see profiler.plugin.SetupContext)."""

    device: str
    seed: int
    workdir: str
    facts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    state_layers: list[StateLayer] | None = None
    report: Callable[[Message], None] | None = None
    server: ServerDeclaration | None = None

    def declare(self, **facts: Any) -> None:
        self.facts.update(facts)

    def declare_server(self, pid: int, found_by: str) -> None:
        """See plugin.SetupContext.declare_server: recorded (child.json `local_server`) and sent to the parent's sampler.
        Raises ValueError when process `pid` cannot be read."""
        import psutil

        from ..measure.sampler import tree_cores

        try:
            cores = tree_cores(int(pid))
        except psutil.Error as exc:
            raise ValueError(f"the local server's process {pid} cannot be read: {type(exc).__name__}") from None
        self.server = ServerDeclaration(pid=int(pid), found_by=str(found_by), cores=cores)
        if self.report is not None:
            self.report(ServerDeclared(int(pid), str(found_by)))

    def declare_state(self, layers: list[Any]) -> None:
        """Raises pydantic.ValidationError for a layer that is not a StateLayer (or its fields as a dict)."""
        self.state_layers = [StateLayer.model_validate(layer if isinstance(layer, dict) else layer.model_dump()) for layer in layers]

    def warn(self, message: str) -> None:
        self.warnings.append(str(message))


class Reporter:
    """Messages to the parent (run/wire.py); a missing queue (in-process use) is fine."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def __call__(self, message: Message) -> None:
        if self.queue is not None:
            self.queue.put(message)


SPAN_WATCH_S = 2.0
"""How often (at most) the child tells the parent that spans have ended since it last did (the parent's hang watch)."""


class SpanWatch(threading.Thread):
    """Every SPAN_WATCH_S: the newest span end (the measured loop's recorder, or the counting and traced passes'), sent
    to the parent as a `spans` message when it moved. A daemon thread asleep between looks: it costs the measured
    process one wake-up every two seconds."""

    def __init__(self, recorder: SpanRecorder, report: Reporter, every_s: float = SPAN_WATCH_S) -> None:
        super().__init__(name="profiler-span-watch", daemon=True)
        self.recorder, self.report, self.every_s = recorder, report, every_s

    def run(self) -> None:
        sent = 0
        while True:
            time.sleep(self.every_s)
            last = self.recorder.last_span_end_ns()
            if last > sent:
                self.report(SpansEnded(last))
                sent = last


STAGE_FILE = ".stage"


class StageFile:
    """The child's current stage, in a file of its directory rewritten at each change (a few per run, never inside a
    timed span). A message through the queue can be lost when the child dies a moment later (the queue's feeder thread
    dies with it): the parent then reads the stage here (run/supervisor.py: ChildSupervisor.run) and removes it."""

    def __init__(self, workdir: Path) -> None:
        try:
            self.fd: int | None = os.open(workdir / STAGE_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError:
            self.fd = None  # the stage then comes from the queue alone

    def write(self, stage: str) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, stage.encode(), 0)
        except OSError:
            pass


def read_stage(workdir: Path) -> str | None:
    """The stage a child last wrote (StageFile), removing the file; None when there is none."""
    path = workdir / STAGE_FILE
    try:
        stage = path.read_bytes()[:64].decode("utf-8", "replace").strip()
        path.unlink()
    except OSError:
        return None
    return stage or None


class ChildState:
    """The child's one record of where it is: the current stage, every stage's start and end
    (time.monotonic_ns, the sampler's clock), the info stored in child.json, and the error."""

    def __init__(self, report: Reporter, spec: ChildSpec) -> None:
        self.report = report
        self.stage = "import"
        self.info = ChildRecord(pid=os.getpid(), seed=spec.seed, device=spec.device, stages=[Stage(name="import", start_ns=time.monotonic_ns())])
        self.error: ChildError | None = None
        self.stage_file = StageFile(Path(spec.workdir))

    def enter(self, stage: str, total: int | None = None) -> None:
        """Close the current stage and start `stage`; tell the parent (with the iteration total, if any)."""
        now = time.monotonic_ns()
        self.info.stages[-1].end_ns = now
        self.info.stages.append(Stage(name=stage, start_ns=now))
        self.stage = stage
        self.report(StageEntered(stage, total))
        self.stage_file.write(stage)

    def close(self) -> None:
        if self.info.stages[-1].end_ns is None:
            self.info.stages[-1].end_ns = time.monotonic_ns()

    def fail(self, exc: BaseException) -> None:
        """Record `exc` as the child's error, in the stage it happened (the first error wins;
        a later teardown error is attached to it)."""
        described = describe_error(self.stage, exc)
        if self.error is None:
            self.error = described
        else:
            self.error = self.error.model_copy(update={"teardown_error": described})


class Terminated(BaseException):
    """SIGTERM from the parent (a hang past its limit, or the user stopping the run)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated("terminated by the parent (SIGTERM)")


def _forked_copy() -> None:
    """In a copy of the child made by the workload's own os.fork: signals back to their defaults, so that stopping the
    copy (run/processes.py: end_group) ends it rather than running the child's cleanup, which would write its record
    over the child's own."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(signum, signal.SIG_DFL)
        except ValueError:  # forked from another thread than the main one: the handlers stay, and so does the risk
            pass


def _restore_spawn_env() -> None:
    """Put back the environment variables the supervisor changed only to start this process (supervisor.py,
    spawn_environment), so the workload's own processes see the user's environment."""
    import json

    saved = json.loads(os.environ.pop("PROFILER_SPAWN_ENV", "{}"))
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def child_entry(spec: ChildSpec, queue: Any, output: dict[str, Any] | None = None) -> None:
    """Spawn target. The child leaves the parent's process group and dies with the parent (run/processes.py); its
    stdout and stderr go to the parent's capped files (`output`, run/output.py). SIGTERM becomes an exception, so a
    workload stopped from outside still flushes its spans and records where it was; only SIGKILL (or a hang inside
    native code that outlasts the parent's grace) loses the last batch."""
    from .output import redirect_into
    from .processes import enter_own_group

    enter_own_group()
    if output is not None:
        redirect_into(output)
    signal.signal(signal.SIGTERM, _raise_terminated)
    os.register_at_fork(after_in_child=_forked_copy)
    _restore_spawn_env()
    # Library warnings (e.g. one per fallback kernel) would flood the progress display; workloads
    # that need them capture them in setup and report them through ctx.warn.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # "Loading weights" bars would draw over the progress display
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from configs or local directories: nothing is downloaded
    # kineto (torch.profiler) prints a line at every trace start and stop; its failures are
    # detected from the trace itself (opmix.no_kernels). KINETO_LOG_LEVEL=2 shows them again.
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    code = child_main(spec, queue)
    _leave(queue, code)


def _leave(queue: Any, code: int) -> None:
    """End the child once its record is sent, without the interpreter's shutdown: that joins every non-daemon thread
    and multiprocessing child the workload left, and would hang until the parent killed it as hung. What it left is
    ended and named by the parent (run/processes.py: end_group)."""
    queue.close()
    queue.join_thread()  # the "done" message is in the pipe
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def child_main(spec: ChildSpec, queue: Any = None) -> int:
    """Run one workload. Returns 0 on success, 1 on a recorded failure."""
    state = ChildState(Reporter(queue), spec)
    workdir = Path(spec.workdir)
    workload = None
    recorder: SpanRecorder | None = None
    try:
        # [] unless the suite names a module:Class plugin: then that module, and what its own code imports, is found
        # there after everything installed (suite/registry.py: SuiteModuleFinder), never anything else
        add_plugin_paths(spec.plugin_paths, [spec.type])
        plugin = resolve_workload(spec.type)
        params = plugin.cls.Params.model_validate(spec.params)
        import torch

        torch.manual_seed(spec.seed)
        # threads from the cores the run was given (taskset's affinity mask, or the cores a cluster executor granted),
        # never from whichever cores look idle: one per core, recorded with the mask
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
        torch.set_num_threads(min(spec.threads, len(cores)) if spec.threads else len(cores))
        policy = os.environ.get("OMP_WAIT_POLICY")
        by = "the profiler's default (run/supervisor.py: OMP_WAIT_POLICY)" if os.environ.pop("PROFILER_OMP_DEFAULT", None) else "the user's environment"
        state.info.cpu_affinity, state.info.torch_threads = cores, torch.get_num_threads()
        state.info.omp_wait_policy = f"{policy} ({by})" if policy else "unset"
        recorder = _recorder(torch, spec.device, PartWriter(workdir, SPANS, journal=True), state)  # each iteration's spans on disk as it ends
        if queue is not None:  # at least four looks within the shortest hang limit
            SpanWatch(recorder, state.report, min(SPAN_WATCH_S, (spec.measure.max_seconds + spec.measure.hang_grace_s) / 4)).start()

        state.enter("setup")
        ctx = SetupContextImpl(spec.device, spec.seed, str(workdir), report=state.report)
        workload = plugin.cls(params)
        t0 = time.monotonic()
        workload.setup(ctx)
        state.info.setup_s = time.monotonic() - t0
        state.info.facts, state.info.warnings, state.info.state_layers = ctx.facts, ctx.warnings, ctx.state_layers
        state.info.local_server = ctx.server

        if spec.load is not None:
            state.info.loop = serve_load(workload, spec.load, spec, state, recorder, plugin, params)
            recorder.flush()
            skip_passes = is_engine(workload)  # an engine generates on its own thread: the passes cannot see it
            if skip_passes:  # the engine's own reason where it gives one (plugin.Engine: work_unavailable)
                state.info.work_error = state.info.opmix_error = str(getattr(workload, "work_unavailable", None) or UNDER_LOAD_NO_WORK)
        else:
            state.info.loop = run_loop(workload, recorder, spec.measure, state)
            recorder.flush()
            skip_passes = False
        if spec.measure.count_work and not skip_passes:
            state.enter("count_work")
            count_work(workload, workdir, state.info)
        if spec.measure.trace_ops and not skip_passes:
            state.enter("trace_ops")
            trace_ops(workload, spec.device, workdir, state.info)
    except BaseException as exc:  # recorded, never lost: KeyboardInterrupt and SystemExit too
        state.fail(exc)
    finally:
        if os.getpid() != state.info.pid:  # a copy made by the workload's own fork: the record is the child's alone
            os._exit(1)
        if recorder is not None:
            _flush_quietly(recorder, state.info)
        if workload is not None:
            state.enter("teardown")
            try:
                workload.teardown()
            except BaseException as exc:
                state.fail(exc)
        state.close()
        if isinstance(recorder, CudaSpanRecorder):
            state.info.phase_memory = {phase: DevicePeak(**peak) for phase, peak in recorder.phase_memory.items()}
        with _stop_held():
            _write_quietly(workdir / CHILD_JSON, state.info.model_dump(mode="json"))
            if state.error is not None:
                _write_quietly(workdir / ERROR_JSON, state.error.model_dump(mode="json"))
            # also through the queue: on a full disk the files above may be missing, the parent still knows
            state.report(ChildDone(ok=state.error is None, error=state.error, info=state.info))
    return 0 if state.error is None else 1


def _recorder(torch: Any, device: str, writer: PartWriter, state: ChildState) -> SpanRecorder:
    """The span recorder for the device; on CUDA, also tell the parent which GPU to sample."""
    if not device.startswith("cuda"):
        return SpanRecorder(writer)
    dev = torch.device(device)
    torch.cuda.set_device(dev.index if dev.index is not None else torch.cuda.current_device())
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    state.info.gpu_uuid, state.info.gpu_name = str(props.uuid), props.name
    state.report(GpuChosen(str(props.uuid)))
    return CudaSpanRecorder(writer, torch)


def run_loop(workload: Any, recorder: SpanRecorder, measure: MeasureConfig, state: ChildState) -> Loop:
    """Warmup, then measured iterations until min_iters and min_seconds, capped by max_seconds."""
    state.enter("warmup", total=measure.warmup_iters)
    for i in range(measure.warmup_iters):
        recorder.run_iteration(workload, i, warmup=True)
        state.report(IterationDone(i + 1, warmup=True))
    state.enter("measure", total=measure.min_iters)
    start = time.monotonic()
    n = 0
    stopped_at_max = False
    while True:
        elapsed = time.monotonic() - start
        if n >= measure.min_iters and elapsed >= measure.min_seconds:
            break
        if elapsed >= measure.max_seconds:
            stopped_at_max = True
            break
        recorder.run_iteration(workload, measure.warmup_iters + n, warmup=False)
        n += 1
        state.report(IterationDone(n, warmup=False))
    return Loop(
        warmup_iters=measure.warmup_iters,
        measured_iters=n,
        measure_s=time.monotonic() - start,
        stopped_at_max_seconds=stopped_at_max and n < measure.min_iters,
        hit_max_seconds=stopped_at_max,
    )


UNDER_LOAD_NO_WORK = (
    "not counted under a load: the engine generates on its own thread, which the FLOP counters and the op tracer do not see; "
    "the architecture's work, bound class and operator mix are the LLM decode baseline's (run llm_decode on the same model)"
)


def serve_load(workload: Any, load: LoadConfig, spec: ChildSpec, state: ChildState, recorder: SpanRecorder, plugin: Any, params: Any) -> Loop:
    """The `load:` run in place of the measured loop (profiler/run/serve.py); returns the loop record. A workload
    without an engine serves the requests in arrival order, in batches of its batch_size (SequentialEngine)."""
    from ..load.traces import read_trace
    from ..plugin import declaration_of
    from .serve import SequentialEngine, serve

    engine = workload
    if not is_engine(workload):
        batch = int(getattr(params, "batch_size", 1) or 1)
        engine = SequentialEngine(workload, recorder, declaration_of(plugin.cls, params).deliveries, batch)
        state.info.serve_engine = f"none: served in arrival order, batches of {batch} (the workload's batch_size), padded when fewer wait"
    trace = read_trace(load.trace) if load.trace else None
    state.enter("measure", total=None)

    def progress(done: int, total: int) -> None:
        state.report(IterationDone(done, warmup=False, total=total))

    try:
        facts = serve(engine, load, trace, spec.measure, Path(spec.workdir), progress, request_spans=engine is workload)
    finally:
        served_facts(engine, state)
    state.info.serve = facts
    timed_out = facts.status_counts.get("timed_out", 0)
    return Loop(
        warmup_iters=load.warmup_requests,
        measured_iters=facts.measured_finished,
        measure_s=facts.wall_s or 0.0,
        stopped_at_max_seconds=False,  # min_iters does not apply under a load: its requests end the run
        hit_max_seconds=timed_out > 0,
        timed_out_requests=timed_out,
    )


def served_facts(engine: Any, state: ChildState) -> None:
    """An engine's facts known only after its load (plugin.Engine `served_facts`, optional) merged into the workload's;
    one that fails to give them is a warning, the load's records stand."""
    hook = getattr(engine, "served_facts", None)
    if not callable(hook):
        return
    try:
        facts = hook()
        if not isinstance(facts, dict):
            raise TypeError(f"served_facts() returned a {type(facts).__name__}, not a dict")
        state.info.facts.update({str(k): v for k, v in facts.items()})
    except Exception as exc:
        state.info.warnings.append(f"the engine's facts after the load could not be read: {type(exc).__name__}: {str(exc)[:200]}")


def count_work(workload: Any, workdir: Path, info: ChildRecord) -> None:
    """One untimed iteration under the FLOP and byte counters -> work.parquet (see work.py).

    A failure here is recorded as the reason the work metrics are unavailable; the timed
    measurements already on disk stand.
    """
    from ..measure.store import atomic_write_table, rows_to_table
    from ..measure.work import WorkRecorder

    try:
        recorder = WorkRecorder()
        rows = recorder.count(workload)
        atomic_write_table(workdir / f"{WORK}.parquet", rows_to_table(rows))
        if recorder.uncounted_phases:
            info.work_uncounted_phases = recorder.uncounted_phases
        partial = sorted({r["phase"] for r in rows if r["misses_other_threads"]})
        if partial:
            info.work_partial_phases = partial
    except Exception as exc:
        info.work_error = f"the counting pass failed: {type(exc).__name__}: {str(exc)[:200]}"


def trace_ops(workload: Any, device: str, workdir: Path, info: ChildRecord) -> None:
    """One traced iteration -> opmix.json and trace.json (see opmix.py); failures are recorded."""
    from ..measure.opmix import trace_iteration

    try:
        atomic_write_json(workdir / OPMIX_JSON, trace_iteration(workload, device, workdir))
    except Exception as exc:
        info.opmix_error = f"the traced pass failed: {type(exc).__name__}: {str(exc)[:200]}"


def describe_error(stage: str, exc: BaseException) -> ChildError:
    """`exc`, raised in `stage`, as error.json records it: one line of reason (at most 500 characters; an out-of-memory
    error says so first), its class name and its traceback."""
    reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    if type(exc).__name__ == "OutOfMemoryError" or isinstance(exc, MemoryError):
        reason = f"out of memory: {reason}"
    return ChildError(phase=stage, reason=reason.splitlines()[0][:500], type=type(exc).__name__, traceback=format_exception(exc))


@contextmanager
def _stop_held() -> Iterator[None]:
    """SIGTERM held while the child writes its record: a stop that arrives then (the parent stopping a child that is
    already ending) is dropped, so child.json is never cut short. SIGKILL, 5 s after SIGTERM, still ends it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        handler = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # discards one that arrived meanwhile
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        signal.signal(signal.SIGTERM, handler)


def _write_quietly(path: Path, obj: dict[str, Any]) -> None:
    """A full disk must not turn a recorded failure into a traceback; the parent reports it."""
    try:
        atomic_write_json(path, obj)
    except OSError as exc:
        print(f"profiler child: could not write {path.name}: {exc.strerror or exc}", file=sys.stderr)


def _flush_quietly(recorder: SpanRecorder, info: ChildRecord) -> None:
    try:
        if recorder.closed:
            recorder.end_iteration()
        recorder.flush()
        recorder.writer.close()
    except BaseException as exc:  # the error is what matters (a MemoryError too): the journal keeps the rows for the parent
        info.flush_error = f"{type(exc).__name__}: {exc}"
