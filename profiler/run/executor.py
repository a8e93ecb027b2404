"""Executors: where each workload's or sweep point's child runs (`executor:` in the suite, `run --executor`).

A Point is one unit of a run: one workload or sweep point, one repeat, with its ChildSpec and the directory its
files settle in. An executor runs points and yields each one's PointResult as it ends; the runner settles the
files and writes the summary (finish.py), the same way whichever executor ran it.

- LocalExecutor: here, one point at a time, in order, in a spawned child sampled by this process (the default).
- RayExecutor (ray_executor.py): each point as a Ray task holding the resources its workload declares; the
  same child and sampler run on the worker (ray_worker.py) and its files come back to this run directory.

A result carries where the point ran (runmodel.Placement) and, on a cluster, the ceilings and idle power of the
node that ran it (a cluster's nodes need not match the machine the run started on).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import psutil

from ..runmodel import Placement, RunEntry, SuiteServer
from ..suite.resolve import ResolvedWorkload
from .child import ChildSpec
from .supervisor import ChildSupervisor, ChildWatch, Listener

LOCAL_POLICY = "local: one point at a time on this machine, each with every core of the profiler's CPU affinity mask and the whole device"


@dataclass
class Point:
    """One workload or sweep point, one repeat: what to run and where its files settle."""

    workload: ResolvedWorkload
    entry: RunEntry
    workdir: Path
    spec: ChildSpec
    repeat: int | None = None
    """1.. with measure.repeats > 1; None for a single run."""

    @property
    def label(self) -> str:
        """Its name on the progress display and in its supervisor's watch (spec.name): on a cluster the repeats of a
        workload run at the same time, so they are named apart."""
        return self.spec.name


@dataclass
class NodeMeasures:
    """The ceilings and idle power of the node that ran a point, measured there (cluster executors only)."""

    host: str | None = None

    calibration: dict[str, Any] | None = None
    """profiler.measure.calibrate's result on that node, or None with `calibration_unavailable` saying why."""
    calibration_unavailable: str | None = None
    idle_power: dict[str, Any] = field(default_factory=dict)
    """profiler.measure.nvml.idle_power on that node's GPU."""


@dataclass
class PointResult:
    watch: ChildWatch
    placement: Placement
    node: NodeMeasures | None = None
    """None: the point ran on the machine the run started on (its run-level calibration and idle power apply)."""


Started = Callable[[Point], None]
"""Called when a point starts running (the runner marks it running and tells the progress display)."""


class Executor(Protocol):
    def run(self, points: list[Point], started: Started) -> Iterator[tuple[Point, PointResult]]:
        """Run `points`; yield each with its result as it ends. After a Ctrl-C, yield the points it stopped (their
        watch says interrupted) and stop: the runner settles them and re-raises."""
        ...

    def close(self) -> None: ...


def with_declared(spec: ChildSpec, declared: dict[int, SuiteServer]) -> ChildSpec:
    """`spec` with the local servers earlier workloads' children declared at setup and the parent had not found before
    the run (the fallback: a server that started late, or a lookup that failed in the parent) among its other
    servers, while they are alive; its own and those it has already are left as they are."""
    known = {s.pid for s in (spec.local_server, *spec.other_servers) if s is not None}
    extra = [s for pid, s in declared.items() if pid not in known and psutil.pid_exists(pid)]
    return replace(spec, other_servers=[*spec.other_servers, *extra]) if extra else spec


class LocalExecutor:
    """Points one after another in children of this process (the runner's behaviour before executors)."""

    def __init__(self, nvml: Any, device: str, measure: Any, listener: Listener) -> None:
        self.nvml, self.device, self.measure, self.listener = nvml, device, measure, listener

    def run(self, points: list[Point], started: Started) -> Iterator[tuple[Point, PointResult]]:
        placement = Placement(executor="local", host=socket.gethostname(), worker_pid=os.getpid(), policy=LOCAL_POLICY)
        declared: dict[int, SuiteServer] = {}  # servers children declared that the parent had not found: beside the later ones
        for point in points:
            started(point)
            watch = ChildSupervisor(self.nvml, self.device, self.measure, self.listener).run(with_declared(point.spec, declared))
            if watch.server_declared is not None:
                declared[watch.server_declared.pid] = watch.server_declared
            yield point, PointResult(watch, placement)
            if watch.interrupted:
                return

    def close(self) -> None:
        pass
