"""Child supervision: spawn one workload's child, sample it from outside, watch its progress,
and stop it when it hangs or the user interrupts.

Everything the parent learns while a child runs lives in one object (ChildWatch): the stage the
child last reported, whether its measured loop completed, when it last made progress, why it was
stopped, which GPU readings are unavailable, and the child's final message (its error and info,
which reach the parent through the queue even when a full disk kept the child from writing them).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..measure.nvml import GPU_COLUMNS, Nvml
from ..measure.sampler import SAMPLE_SCHEMA, ProcessSampler
from ..measure.store import SAMPLES, PartWriter
from ..runmodel import SuiteServer
from ..suite.config import MeasureConfig
from .child import ChildSpec, child_entry, read_stage
from .output import OutputCapture, StreamRecord
from .processes import end_group, signals_blocked
from .wire import ChildDone, GpuChosen, IterationDone, ServerDeclared, SpansEnded, StageEntered

GPU_READINGS = (*GPU_COLUMNS, "gpu_other_processes")
"""The sampler's GPU columns and the count of other processes on the GPU (contention): each has a reason when unavailable."""
SETUP_STAGES = ("import", "setup")
AFTER_MEASURE_STAGES = ("count_work", "trace_ops")
"""Stages the child enters only once its measured loop has returned (run/child.py: child_main)."""


class Listener(Protocol):
    """What the runner tells the terminal UI (the CLI's rich progress implements it)."""

    def workload_started(self, name: str) -> None: ...
    def phase(self, name: str, phase: str, total: int | None) -> None: ...
    def iteration(self, name: str, done: int, warmup: bool) -> None: ...
    def workload_finished(self, name: str, summary: Any) -> None: ...


class SilentListener:
    def workload_started(self, name: str) -> None: ...
    def phase(self, name: str, phase: str, total: int | None) -> None: ...
    def iteration(self, name: str, done: int, warmup: bool) -> None: ...
    def workload_finished(self, name: str, summary: Any) -> None: ...


@dataclass
class ChildWatch:
    """The parent's record of one child, from spawn to exit."""

    name: str
    stage: str = "import"
    measured: bool = False
    """The measured loop completed: the child entered an untimed pass, or its last message carried its `loop`."""
    last_progress: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.monotonic)
    killed_reason: str | None = None
    interrupted: bool = False
    gpu_unavailable: dict[str, str] = field(default_factory=dict)
    done: ChildDone | None = None
    """The child's last message: its error and info (None: it never sent it)."""
    wire_problem: str | None = None
    """A message that was not one of run/wire.py's kinds, named once."""
    last_span_end_ns: int | None = None
    """time.monotonic_ns of the newest span end the child reported (a `spans` message: run/child.py, SpanWatch)."""
    exitcode: int | None = None
    sampler_error: str | None = None
    wall_s: float = 0.0
    left_behind: list[str] = field(default_factory=list)
    """The workload's own processes still running after its child ended, which the supervisor stopped (run/processes.py)."""
    output: list[StreamRecord] = field(default_factory=list)
    """What the workload wrote to stdout and stderr (run/output.py: kept in stdout.log and stderr.log)."""
    output_error: str | None = None
    server_pid: int | None = None
    """The workload's own local server, sampled as the workload's: the one the parent found before the run
    (ChildSpec.local_server), or the one the child declared (run/wire.py: ServerDeclared) when it named another."""
    server_found: SuiteServer | None = None
    """The parent's own server for this workload (ChildSpec.local_server) when it was read here."""
    server_declared: SuiteServer | None = None
    """The child's declaration at setup, as the parent keeps it for the suite's later workloads (run/executor.py)."""
    server_confirmed: bool | None = None
    """True: the child declared the server the parent found; False: it declared another (read from then on); None: one
    of the two named none."""
    server_gpu: str | None = None
    """The NVML UUID of the GPU the workload's local server runs on, sampled as the workload's (None: none found or read)."""
    other_servers: list[SuiteServer] = field(default_factory=list)
    """The suite's other workloads' local servers sampled beside this child (their CPU counted as other processes')."""
    server_notes: list[str] = field(default_factory=list)
    """Local servers of the spec not read here, with why (found on another machine than this worker)."""

    def limit_s(self, measure: MeasureConfig) -> tuple[float, str]:
        """How long the current stage may go without progress, and the setting that says so."""
        if self.stage in SETUP_STAGES:
            return measure.setup_timeout_s, "setup_timeout_s"
        return measure.max_seconds + measure.hang_grace_s, "max_seconds + hang_grace_s"

    def last_span(self) -> str:
        """When the child's last span ended, in words, for a hang verdict."""
        if not self.last_span_end_ns:
            return "no span had ended"
        return f"the last span ended {(time.monotonic_ns() - self.last_span_end_ns) / 1e9:.0f} s before"

    def exit_reason(self) -> str | None:
        """Why the child failed when it recorded no error itself (killed, hung, crashed, or ended without reporting its
        end: its last act is to report it, run/child.py: child_main), else None."""
        if self.killed_reason:
            return self.killed_reason
        if self.exitcode is None:
            return "the child did not exit"
        if self.exitcode < 0:
            sig = signal.Signals(-self.exitcode).name
            return f"killed by {sig} in phase '{self.stage}'" + (" (possibly the kernel's out-of-memory killer)" if sig == "SIGKILL" else "")
        if not self.done:
            return (
                f"the child exited with status {self.exitcode} in phase '{self.stage}' without reporting its end (os._exit, or a "
                "library ending the process); what it wrote before is kept"
            )
        if self.exitcode == 0:
            return None
        return f"the child exited with status {self.exitcode} without recording an error"


SAMPLE_FLUSH_S = 1.0
"""The sampler's rows reach disk at least this often: a profiler killed with SIGKILL loses at most this much of them."""

OMP_WAIT_POLICY = "PASSIVE"
"""The OpenMP wait policy a child gets unless the user's environment sets one. torch's CPU work runs on OpenMP threads
that spin-wait between parallel regions by default; when another process holds one of the child's cores, a region
waits for a thread that is not running. Measured with benchmarks/omp_policy.py (llama-tiny decode, 2 cores, one
core held by a busy loop): 2 threads took 24.6 ms a token unset and 24.7 ACTIVE against 12.6 PASSIVE; quiet, 13.4,
12.6 and 13.1 ms. PASSIVE keeps a contended measurement near the quiet one at a cost within the noise when quiet;
the run records the policy in force (child.json `omp_wait_policy`, env.json `threading_env`)."""

SPAWN_ENV_MARK = "PROFILER_SPAWN_ENV"
"""Set while a child starts: the environment variables the supervisor changed, as JSON {name: value or null}."""


@contextmanager
def spawn_environment() -> Iterator[None]:
    """The environment while children start: without the working directory on their sys.path, and with the OpenMP wait
    policy the profiler chose (OMP_WAIT_POLICY above) unless the user set one; that one the child keeps (it marks where
    it came from with PROFILER_OMP_DEFAULT), the others it puts back. A spawned interpreter
    runs `python -c ...` with the working directory on sys.path (first, and again for each empty PYTHONPATH component)
    until multiprocessing hands it this process's sys.path; in that window it imports multiprocessing, pickle, threading
    and more, so a pickle.py lying there would run. PYTHONSAFEPATH=1 and PYTHONPATH without empty components close it;
    the child puts the user's values back first thing (child.child_entry), so a workload's own processes see them."""
    saved = {name: os.environ.get(name) for name in ("PYTHONSAFEPATH", "PYTHONPATH")}
    os.environ["PYTHONSAFEPATH"] = "1"
    if "OMP_WAIT_POLICY" not in os.environ:  # read once, when the child's OpenMP runtime starts; the child keeps it
        os.environ["OMP_WAIT_POLICY"] = OMP_WAIT_POLICY
        os.environ["PROFILER_OMP_DEFAULT"] = "1"
    if saved["PYTHONPATH"] is not None:
        os.environ["PYTHONPATH"] = os.pathsep.join(part for part in saved["PYTHONPATH"].split(os.pathsep) if part)
    os.environ[SPAWN_ENV_MARK] = json.dumps(saved)
    try:
        yield
    finally:
        os.environ.pop(SPAWN_ENV_MARK, None)
        if os.environ.pop("PROFILER_OMP_DEFAULT", None):
            os.environ.pop("OMP_WAIT_POLICY", None)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class ChildSupervisor:
    """Runs one ChildSpec in a spawned process with the sampler on its pid; returns its ChildWatch."""

    def __init__(
        self,
        nvml: Nvml,
        device: str,
        measure: MeasureConfig,
        listener: Listener,
        sample_flush_s: float = SAMPLE_FLUSH_S,
    ) -> None:
        self.nvml = nvml
        self.device = device
        self.measure = measure
        self.listener = listener
        self.sample_flush_s = sample_flush_s
        """Write the sampler's rows at least every this many seconds (a cluster worker ships parts as they come)."""

    def run(self, spec: ChildSpec) -> ChildWatch:
        """Spawn, watch until the child exits or is stopped, then stop the sampler. A Ctrl-C stops
        the child and is recorded (watch.interrupted, with watch.measured saying whether its
        measured loop had completed); the caller re-raises it after saving."""
        watch = ChildWatch(spec.name, gpu_unavailable=self._gpu_unavailable_default())
        ctx = mp.get_context("spawn")
        output = OutputCapture(Path(spec.workdir))
        proc = sampler = None
        try:
            # SIGINT held while the child starts: until it has its own process group a terminal's Ctrl-C would reach it
            with spawn_environment(), signals_blocked():
                queue = ctx.Queue()  # may start multiprocessing's resource tracker, a `python -c` process too
                proc = ctx.Process(target=child_entry, args=(spec, queue, output.child_ends), name=f"profiler-{Path(spec.workdir).name}")
                proc.start()
            output.started()
            assert proc.pid is not None  # set by start()
            if spec.cores:  # pinned before the sampler reads its cores: contention is measured on the cores it was given
                os.sched_setaffinity(proc.pid, spec.cores)
            writer = PartWriter(Path(spec.workdir), SAMPLES, schema=SAMPLE_SCHEMA)
            sampler = ProcessSampler(proc.pid, self.measure.sample_hz, writer, flush_every_s=self.sample_flush_s)
            self._attach_servers(spec, sampler, watch)
            sampler.start()
            self._watch(proc, queue, sampler, watch)
        except KeyboardInterrupt:
            watch.interrupted = True
            watch.killed_reason = f"interrupted by the user during phase '{watch.stage}'"
            if proc is not None:
                _stop(proc)
        finally:
            if proc is not None and proc.pid is not None:
                proc.join(timeout=10)
                watch.left_behind = end_group(proc.pid)
            stage = read_stage(Path(spec.workdir))
            if stage and not watch.done:  # it died before the queue delivered its last stage
                watch.stage = stage
            if sampler is not None:
                sampler.stop()
            watch.output = output.finish()
            watch.output_error = output.error
        watch.exitcode = proc.exitcode if proc is not None else None
        watch.sampler_error = sampler.error if sampler is not None else None
        if sampler is not None and sampler.server_error:
            watch.sampler_error = "; ".join(e for e in (watch.sampler_error, sampler.server_error) if e)
        watch.wall_s = time.monotonic() - watch.started
        return watch

    def _watch(self, proc: Any, queue: Any, sampler: ProcessSampler, watch: ChildWatch) -> None:
        while True:
            try:
                msg = queue.get(timeout=0.1)
            except (queue_mod.Empty, EOFError, OSError):
                msg = None
            if msg is not None:
                watch.last_progress = time.monotonic()
                self._handle(msg, sampler, watch)
                continue
            if not proc.is_alive():
                return
            limit, setting = watch.limit_s(self.measure)
            if time.monotonic() - watch.last_progress > limit:
                watch.killed_reason = (
                    f"hung: no progress for {limit:.0f} s in phase '{watch.stage}' (limit: {setting}; {watch.last_span()}); the child was killed"
                )
                _stop(proc)
                return

    def _handle(self, msg: object, sampler: ProcessSampler, watch: ChildWatch) -> None:
        """One message of the child (run/wire.py), by its class; anything else is named once in the watch's problems."""
        if isinstance(msg, StageEntered):
            watch.stage = msg.stage
            watch.measured = watch.measured or watch.stage in AFTER_MEASURE_STAGES
            self.listener.phase(watch.name, watch.stage, msg.total)
        elif isinstance(msg, IterationDone):
            self.listener.iteration(watch.name, msg.done, msg.warmup)
        elif isinstance(msg, GpuChosen):
            watch.gpu_unavailable = self._attach_gpu(msg.uuid, sampler)
        elif isinstance(msg, ServerDeclared):
            self._declared(msg, sampler, watch)
        elif isinstance(msg, SpansEnded):
            watch.last_span_end_ns = max(watch.last_span_end_ns or 0, msg.last_end_ns)
        elif isinstance(msg, ChildDone):
            watch.stage = "done"
            watch.done = msg
            watch.measured = watch.measured or msg.info.loop is not None
        elif not watch.wire_problem:
            watch.wire_problem = f"the child sent a message of an unknown kind ({type(msg).__name__}); it was left out"

    def _attach_servers(self, spec: ChildSpec, sampler: ProcessSampler, watch: ChildWatch) -> None:
        """Before the child starts: the local servers the parent found (ChildSpec.local_server, other_servers), each read
        from the sampler's first row when it runs on this machine (else a note says why not)."""
        host = socket.gethostname()
        here = []
        for server in [s for s in (spec.local_server, *spec.other_servers) if s is not None]:
            if server.host == host:
                here.append(server)
            else:
                watch.server_notes.append(
                    f"the local server of workload '{server.workload}' (pid {server.pid}) runs on {server.host}, "
                    f"not on {host} where this workload ran: not read"
                )
        own = next((s for s in here if s is spec.local_server), None)
        watch.other_servers = [s for s in here if s is not spec.local_server]
        if watch.other_servers:
            sampler.attach_server([s.pid for s in watch.other_servers], own=False)
        if own is not None:
            watch.server_found = own
            self._attach_own_server(own.pid, sampler, watch)

    def _attach_own_server(self, pid: int, sampler: ProcessSampler, watch: ChildWatch) -> None:
        watch.server_pid = pid
        sampler.attach_server(pid, own=True)
        if sampler.gpu is None or sampler.gpu_uuid is not None:  # the child chose no GPU (an endpoint): the server's GPU is the workload's
            watch.gpu_unavailable = self._attach_server_gpu(pid, sampler)
            watch.server_gpu = sampler.gpu_uuid

    def _declared(self, msg: ServerDeclared, sampler: ProcessSampler, watch: ChildWatch) -> None:
        """The child's declaration at setup: the server the parent found (confirmed), or another, read as the workload's
        from now on (in place of the parent's)."""
        watch.server_declared = SuiteServer(pid=msg.pid, found_by=msg.found_by, workload=watch.name, host=socket.gethostname())
        if watch.server_found is not None:
            watch.server_confirmed = watch.server_found.pid == msg.pid
        if watch.server_pid != msg.pid:
            self._attach_own_server(msg.pid, sampler, watch)

    def _attach_gpu(self, uuid: str, sampler: ProcessSampler) -> dict[str, str]:
        """Sample the GPU the child chose; the readings this GPU cannot give, with NVML's reasons."""
        if not self.nvml.ok:
            return dict.fromkeys(GPU_READINGS, self.nvml.reason or "NVML is unavailable")
        try:
            reader = self.nvml.open(uuid)
        except Exception as exc:
            return dict.fromkeys(GPU_READINGS, f"NVML could not open GPU {uuid}: {exc}")
        sampler.attach_gpu(reader)
        return dict(reader.unavailable)

    def _attach_server_gpu(self, pid: int, sampler: ProcessSampler) -> dict[str, str]:
        """Sample the GPU a local server's process tree runs on (the first GPU whose NVML process list holds one of its
        pids); the readings unavailable, with the reason (no NVML; none of its processes on a GPU NVML lists, e.g. a
        server on the CPU, or NVML listing pids of another PID namespace inside a container)."""
        if not self.nvml.ok:
            return dict.fromkeys(GPU_READINGS, f"the local server's GPU cannot be read: {self.nvml.reason or 'NVML is unavailable'}")
        uuid = server_gpu(self.nvml, pid)
        if uuid is None:
            return dict.fromkeys(
                GPU_READINGS,
                f"the local server (pid {pid}) runs on no GPU NVML lists: none of its processes is in a GPU's process list "
                "(a server on the CPU, or NVML lists the pids of another PID namespace)",
            )
        unavailable = self._attach_gpu(uuid, sampler)
        sampler.gpu_uuid = uuid if sampler.gpu is not None else None
        return unavailable

    def _gpu_unavailable_default(self) -> dict[str, str]:
        if self.device == "cpu":
            why = "workload ran on the CPU: no GPU to sample" + (f"; {self.nvml.reason}" if not self.nvml.ok else "")
        else:
            why = self.nvml.reason or "the workload never reported its GPU (it failed before choosing one)"
        return dict.fromkeys(GPU_READINGS, why)


def server_gpu(nvml: Nvml, pid: int) -> str | None:
    """The NVML UUID of the first GPU whose compute or graphics processes include process `pid` or a descendant; None:
    none does (or the tree cannot be read)."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = {pid, *(p.pid for p in root.children(recursive=True))}
    except psutil.Error:
        return None
    nv = nvml.nv
    for index in range(nv.nvmlDeviceGetCount()):
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        try:
            pids = {p.pid for call in (nv.nvmlDeviceGetComputeRunningProcesses, nv.nvmlDeviceGetGraphicsRunningProcesses) for p in call(handle)}
        except Exception:  # a GPU whose driver does not list processes: not this one, as far as can be known
            continue
        if pids & tree:
            uuid = nv.nvmlDeviceGetUUID(handle)
            return uuid.decode() if isinstance(uuid, bytes) else str(uuid)
    return None


def _stop(proc: Any) -> None:
    """SIGTERM, then SIGKILL if the child does not go within 5 s."""
    if proc.is_alive():
        proc.terminate()
        proc.join(timeout=5)
    if proc.is_alive():
        proc.kill()
        proc.join(timeout=5)
