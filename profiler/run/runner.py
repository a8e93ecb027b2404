"""The parent: runs a suite, one spawned child per workload or sweep point, results kept on disk.

The runner hands every workload or sweep point (each repeat apart) to the executor (executor.py: here, one at a
time; ray_executor.py: Ray tasks on a cluster), settles each one's files and summary as it ends (finish.py), and
keeps run.json current (record.py). A
workload that raises, runs out of memory, is killed, or hangs is recorded as failed with its
phase and reason; the suite goes on. After the last one, fits across sweep points go to
sweeps.json (with a suite's `crossover:` block, where one sweep's step latency drops below the
other's). A bug in the profiler itself marks the run failed with its traceback in run.json,
and the caller still writes the report.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import psutil

from ..characterize.crossover import LatencyPoint, find_crossover, latency_point
from ..characterize.scaling import batch_fits
from ..measure.sampler import tree_cores
from ..measure.store import SPANS, atomic_write_json, read_json
from ..plugin import server_of
from ..rundir import CALIBRATION_JSON, MISSING_WHY, SUMMARY_JSON, SWEEPS_JSON, read_measured, repeat_dir
from ..runmodel import RunStatus, Status, SuiteServer, WorkloadSummary
from ..suite.resolve import ResolvedSuite
from .child import ChildSpec
from .device import resolve_device
from .executor import Executor, LocalExecutor, Point
from .finish import NODE_JSON, finish_workload
from .record import RunRecord
from .repeats import pool_repeats
from .supervisor import Listener, SilentListener


class SuiteRunner:
    """`prepare()` creates the run directory; `run()` runs every workload and sweep point through the executor."""

    def __init__(
        self, resolved: ResolvedSuite, out_root: str | Path, device: str, argv: list[str], listener: Listener | None = None, executor: Any = None
    ) -> None:
        self.resolved = resolved
        self.suite = resolved.suite
        self.out_root = Path(out_root)
        self.device = device
        self.argv = argv
        self.listener = listener or SilentListener()
        self.executor = executor
        """A cluster executor (ray_executor.RayExecutor), connected; None: the local one (executor.LocalExecutor)."""
        self.record: RunRecord | None = None
        self._in_flight: dict[str, int] = {}

    @property
    def run_dir(self) -> Path | None:
        return self.record.path if self.record else None

    def prepare(self) -> Path:
        """Create the run directory and write the config and environment. Errors are UserErrors."""
        cluster = self.executor.cluster() if self.executor is not None else None
        self.record = RunRecord.create(self.resolved, self.out_root, self.device, self.argv, cluster=cluster)
        return self.record.path

    def run(self) -> Path:
        record = self.record
        assert record is not None, "call prepare() first"
        executor = self.executor or LocalExecutor(record.nvml, self.device, self.suite.measure, self.listener)
        executor.listener = self.listener
        status, error = RunStatus.COMPLETE, None
        try:
            self._run_points(record, executor)
        except KeyboardInterrupt:
            status = RunStatus.INTERRUPTED
            raise
        except Exception as exc:  # a profiler bug: the run is marked failed, with why, and the caller still reports
            status, error = RunStatus.FAILED, exc
            raise
        finally:
            executor.close()
            self._write_sweeps()
            record.close(status, error)
        return record.path

    def points(self, record: RunRecord) -> list[Point]:
        """Every workload or sweep point, once per repeat: repeat k of every workload, then repeat k + 1
        (profiler/run/repeats.py), each with its child's spec and its directory (created when it starts)."""
        repeats = self.suite.measure.repeats
        servers = suite_servers(self.resolved)
        out = []
        for k in range(1, repeats + 1):
            for i, (w, entry) in enumerate(zip(self.resolved.workloads, record.entries, strict=True)):
                workdir = record.path / entry.dir if repeats == 1 else repeat_dir(record.path / entry.dir, k)
                named_apart = repeats > 1 and self.executor is not None  # on a cluster the repeats run at the same time
                spec = ChildSpec(
                    name=f"{entry.name} (repeat {k})" if named_apart else entry.name,
                    type=w.entry.type,
                    params=w.params.model_dump(mode="json"),
                    plugin_paths=self.resolved.plugin_paths,
                    device=self.device,
                    seed=self.suite.seed,
                    measure=self.suite.measure,
                    workdir=str(workdir),
                    load=w.entry.load,
                    local_server=servers[i],
                    other_servers=others_of(servers, i),
                )
                out.append(Point(w, entry, workdir, spec, k if repeats > 1 else None))
        return out

    def _run_points(self, record: RunRecord, executor: Executor) -> None:
        """Run the points and settle each as it ends. With repeats, a workload's repeats are pooled after its last one
        ends, or when a Ctrl-C or a profiler failure stops the run (what was measured is kept). A Ctrl-C is re-raised
        once the points it stopped are settled."""
        repeats = self.suite.measure.repeats
        done: dict[str, dict[int, WorkloadSummary]] = {entry.name: {} for entry in record.entries}
        pooled: set[str] = set()
        interrupted = False
        self._in_flight = dict.fromkeys(done, 0)
        try:
            for point, result in executor.run(self.points(record), self._started):
                name = point.entry.name
                self._in_flight[name] -= 1
                summary = finish_workload(point.workload, point.workdir, result.watch, self.suite, record, result.placement, result.node)
                self._keep_first_calibration(record, point)
                self.listener.workload_finished(point.label, summary)
                interrupted = interrupted or result.watch.interrupted
                if repeats == 1:
                    record.set_status(point.entry, Status.INTERRUPTED if result.watch.interrupted else summary.status)
                    continue
                done[name][point.repeat or 1] = summary
                if len(done[name]) == repeats:
                    record.set_status(point.entry, pool_repeats(point.workload, point.workdir.parent, done[name], self.suite, record, planned=repeats).status)
                    pooled.add(name)
                else:
                    record.set_status(point.entry, Status.RUNNING if self._in_flight[name] else Status.PENDING)
            if interrupted:
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            for entry in record.entries:
                if entry.status == Status.RUNNING and not done[entry.name]:
                    entry.status = Status.INTERRUPTED  # stopped before anything of it came back
            raise
        finally:
            if repeats > 1:
                for w, entry in zip(self.resolved.workloads, record.entries, strict=True):
                    if entry.name not in pooled and done[entry.name]:
                        record.set_status(entry, pool_repeats(w, record.path / entry.dir, done[entry.name], self.suite, record, planned=repeats).status)

    def _started(self, point: Point) -> None:
        assert self.record is not None
        point.workdir.mkdir(parents=True, exist_ok=True)  # parents: sweep points live under their group
        self._in_flight[point.entry.name] += 1
        self.record.set_status(point.entry, Status.RUNNING)
        self.listener.workload_started(point.label)

    def _keep_first_calibration(self, record: RunRecord, point: Point) -> None:
        """On a cluster each node measures its own ceilings (node.json); the run's calibration.json holds the first
        node's that came back, for the report's Work section."""
        if record.calibration is not None or self.executor is None or not self.suite.measure.count_work:
            return
        node = read_json(point.workdir / NODE_JSON)
        if node and node.get("calibration"):
            record.calibration = node["calibration"]
            atomic_write_json(record.path / CALIBRATION_JSON, {**node["calibration"], "node": (node.get("host") or "a cluster node")})

    def _write_sweeps(self) -> None:
        """Fits across the points of each sweep (batching gain, latency growth) -> sweeps.json."""
        assert self.record is not None
        groups: dict[str, list[dict[str, Any]]] = {}
        for w, entry in zip(self.resolved.workloads, self.record.entries, strict=True):
            if w.sweep_group and entry.status == Status.OK:
                spans, _, _ = read_measured(self.record.path / entry.dir / f"{SPANS}.parquet")
                groups.setdefault(w.sweep_group, []).append(
                    {"name": w.entry.name, "params": w.params.model_dump(mode="json"), "point": w.sweep_point, "spans": spans}
                )
        sweeps = {g: {"batch": batch_fits(points, self.suite.seed), "points": [p["name"] for p in points]} for g, points in groups.items()}
        crossover = self._crossover()
        if crossover is not None:
            sweeps.setdefault(crossover["a"], {"batch": [], "points": []})["crossover"] = crossover
        if sweeps:
            atomic_write_json(self.record.path / SWEEPS_JSON, sweeps)

    def _crossover(self) -> dict[str, Any] | None:
        """The suite's `crossover:` block: every point of a's and b's sweeps, failed ones included (unreachable, with why)."""
        c = self.suite.crossover
        if c is None:
            return None
        assert self.record is not None
        sides: dict[str, list[LatencyPoint]] = {c.a: [], c.b: []}
        for w, entry in zip(self.resolved.workloads, self.record.entries, strict=True):
            if w.sweep_group not in sides or not w.sweep_point:
                continue
            summary, missing = None, MISSING_WHY.get(entry.status, f"its status is {entry.status.value}")
            try:
                summary = WorkloadSummary.model_validate_json((self.record.path / entry.dir / SUMMARY_JSON).read_text())
            except FileNotFoundError:
                pass
            except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
                missing = f"its summary.json is unreadable ({type(exc).__name__})"
            sides[w.sweep_group].append(latency_point(w.entry.name, float(w.sweep_point[c.over]), summary, missing))
        return {"a": c.a, "b": c.b, "over": c.over, **find_crossover(sides[c.a], sides[c.b], (c.a, c.b))}


def suite_servers(resolved: ResolvedSuite) -> list[SuiteServer | None]:
    """Each workload's local server, found before the run starts (plugin.server_of: its class's `local_server(params)`;
    openai_endpoint: `server_pid`, or the process listening on a loopback base_url's port), in the suite's order; None
    where it names none (a remote host, no such method) or the process cannot be read (gone, another user's)."""
    host = socket.gethostname()
    out: list[SuiteServer | None] = []
    for w in resolved.workloads:
        pid, how = server_of(w.plugin.cls, w.params)
        try:
            cores = tree_cores(pid) if pid is not None else None
        except psutil.Error:  # gone since it was found, or another user's: the child's own lookup says why in its facts
            cores = None
        out.append(SuiteServer(pid=pid, found_by=how, cores=cores, workload=w.entry.name, host=host) if pid is not None and cores is not None else None)
    return out


def others_of(servers: list[SuiteServer | None], i: int) -> list[SuiteServer]:
    """The local servers of the workloads other than the i-th, one per pid (the first workload that found it names it),
    leaving out the i-th's own pid: what workload i samples beside it as other workloads' servers."""
    mine = servers[i]
    own = mine.pid if mine is not None else None
    seen: dict[int, SuiteServer] = {}
    for j, server in enumerate(servers):
        if server is not None and j != i and server.pid != own:
            seen.setdefault(server.pid, server)
    return list(seen.values())


__all__ = ["SuiteRunner", "resolve_device"]
