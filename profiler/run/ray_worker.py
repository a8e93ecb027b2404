"""What a Ray task runs on a worker for one point: the same supervisor, child and sampler as a local run.

The point's files are written to a private temporary directory on the worker (no shared filesystem is assumed)
and travel to the driver: completed part files (spans, samples) while the point runs, through the run's relay
queue, so a worker or node lost mid-point still leaves what was measured; everything else when the task
returns. Progress (stage, iterations) goes through the same queue, so the driver's display and its record of
a lost point's last stage stay current. The node's ceilings (calibration, cached per machine) and GPU idle
power are measured here: a cluster's nodes need not match the driver's machine.

Imported only on Ray workers and by ray_executor.py; Ray itself is imported inside the functions.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..measure.calibrate import calibrate_in_subprocess
from ..measure.env import collect_env
from ..measure.nvml import Nvml, idle_power
from ..runmodel import Placement
from ..suite.config import MeasureConfig
from .child import ChildSpec
from .executor import NodeMeasures
from .supervisor import ChildSupervisor, ChildWatch

SHIP_EVERY_S = 1.0
"""How often the worker sends newly completed part files to the driver."""
PART_GLOB = "*.part-*.parquet"
_IDLE_POWER: dict[tuple[str, str], dict[str, Any]] = {}
"""GPU idle power, measured once per worker process and GPU (a 2 s window)."""


@dataclass
class WorkerResult:
    """What the task returns: the supervisor's watch, where it ran, the node's ceilings, and the files not yet shipped."""

    watch: ChildWatch
    placement: Placement
    node: NodeMeasures
    files: dict[str, bytes] = field(default_factory=dict)
    """Path relative to the point's directory -> contents."""


class RelayListener:
    """The supervisor's Listener on a worker: progress goes to the driver through the relay queue's actor
    (fire and forget; one caller's calls to an actor arrive in order)."""

    def __init__(self, relay: Any, index: int) -> None:
        self.relay, self.index = relay, index

    def send(self, *event: Any) -> Any:
        """Queue one event; returns the call's ObjectRef (ray.get on it: the event is in the queue)."""
        return self.relay.actor.put_nowait.remote((self.index, *event))

    def workload_started(self, name: str) -> None: ...
    def workload_finished(self, name: str, summary: Any) -> None: ...

    def phase(self, name: str, phase: str, total: int | None) -> None:
        self.send("phase", phase, total)

    def iteration(self, name: str, done: int, warmup: bool) -> None:
        self.send("iter", done, warmup)


class CoreLease:
    """Exclusive use of some of this node's CPU cores among the profiler's points: one advisory lock file per core.

    Ray grants CPUs as a count and does not pin them; a point pins its child to cores it holds the locks of, so two
    points on one node never share a core. The kernel drops a lock when its holder exits, so a dead worker frees its
    cores. `acquire` returns None when not enough cores are free (processes other than the profiler's hold Ray's
    CPUs): the point then runs unpinned, as many threads as it was granted, and its placement says so.
    """

    DIR = Path(tempfile.gettempdir()) / "ml-workload-profiler-cores"

    def __init__(self) -> None:
        self.held: list[tuple[int, Any]] = []

    def acquire(self, count: int) -> list[int] | None:
        import fcntl

        self.DIR.mkdir(exist_ok=True)
        for core in sorted(os.sched_getaffinity(0)):
            handle = open(self.DIR / f"core-{core}.lock", "a")  # noqa: SIM115 (held open: the lock lives as long as the file)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self.held.append((core, handle))
            if len(self.held) == count:
                return [c for c, _ in self.held]
        self.release()
        return None

    def release(self) -> None:
        for _, handle in self.held:
            handle.close()
        self.held = []


class PartShipper(threading.Thread):
    """Sends each completed part file (atomically written, never changed after) to the driver once."""

    def __init__(self, workdir: Path, listener: RelayListener) -> None:
        super().__init__(name="profiler-part-shipper", daemon=True)
        self.workdir, self.listener = workdir, listener
        self.shipped: set[str] = set()
        self.sent: list[Any] = []
        """The relay calls that carried files: the task waits for them before it returns, so the driver has every
        shipped part before it settles the point."""
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(SHIP_EVERY_S):
            self.ship()

    def ship(self) -> None:
        for path in sorted(self.workdir.glob(PART_GLOB)):
            if path.name not in self.shipped:
                try:
                    data = path.read_bytes()
                except OSError:  # merged or removed meanwhile: it comes back with the task's result
                    continue
                self.sent.append(self.listener.send("file", path.name, data))
                self.shipped.add(path.name)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


def run_point(spec: ChildSpec, measure: dict[str, Any], index: int, relay: Any, policy: str, pin: bool) -> WorkerResult:
    """Run one point on this worker: `spec` as the driver built it (its workdir is replaced by a temporary one here,
    its `threads` are the cores Ray granted), `measure` (MeasureConfig as a dict), `index` (the point's number in the
    run, which tags its relay events), `policy` (how points are placed, in words), `pin` (hold and pin the granted
    cores: points do not share cores). The node's ceilings are measured apart, before the points (calibrate_node)."""
    import ray
    import ray.exceptions

    workdir = Path(tempfile.mkdtemp(prefix="profiler-point-"))
    listener = RelayListener(relay, index)
    listener.send("start")
    lease = CoreLease()
    try:
        cores = lease.acquire(spec.threads or 1) if pin else None
        if cores:
            spec = replace(spec, cores=cores, threads=None)
        elif pin:
            policy += f"; this point ran unpinned: fewer than {spec.threads} of this node's cores were free of the profiler's locks"
        nvml = Nvml()
        context = ray.get_runtime_context()
        assigned = context.get_assigned_resources()
        placement = Placement(
            executor="ray",
            host=socket.gethostname(),
            node_id=context.get_node_id(),
            node_ip=ray.util.get_node_ip_address(),
            worker_pid=os.getpid(),
            cpus=assigned.get("CPU"),
            gpus=assigned.get("GPU"),
            gpu_ids=[str(g) for g in context.get_accelerator_ids().get("GPU", [])],
            cores=cores or [],
            policy=policy,
            env=collect_env(nvml, []),
        )
        node = _node_measures(nvml, spec.device)
        shipper = PartShipper(workdir, listener)
        shipper.start()
        try:
            supervisor = ChildSupervisor(nvml, spec.device, MeasureConfig(**measure), listener, sample_flush_s=SHIP_EVERY_S)
            watch = supervisor.run(replace(spec, workdir=str(workdir)))
        finally:
            shipper.stop()
            nvml.shutdown()
        try:
            ray.get(shipper.sent)
        except ray.exceptions.RayError:  # the relay is gone (the driver's node lost): the files below still return
            shipper.shipped.clear()
        files = {str(p.relative_to(workdir)): p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file() and p.name not in shipper.shipped}
        return WorkerResult(watch, placement, node, files)
    finally:
        lease.release()
        shutil.rmtree(workdir, ignore_errors=True)


def calibrate_node(device: str) -> tuple[str, dict[str, Any] | None, str | None]:
    """This node's ceilings (profiler.measure.calibrate, cached per machine), measured while the task holds every CPU and
    GPU of the node, so nothing else of the run competes: (host, calibration or None, why not)."""
    calibration, why = calibrate_in_subprocess(device)
    return socket.gethostname(), calibration, why


def _node_measures(nvml: Nvml, device: str) -> NodeMeasures:
    node = NodeMeasures(host=socket.gethostname())
    key = (device, os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    if key not in _IDLE_POWER:
        _IDLE_POWER[key] = idle_power(nvml, device)
    node.idle_power = _IDLE_POWER[key]
    return node
