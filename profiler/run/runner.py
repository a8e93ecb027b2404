"""The parent: runs a suite, one spawned child per workload or sweep point, results kept on disk.

For each workload the runner asks the supervisor (supervisor.py) to spawn and watch its child,
then settles its files and summary (finish.py), and keeps run.json current (record.py). A
workload that raises, runs out of memory, is killed, or hangs is recorded as failed with its
phase and reason; the suite goes on. After the last one, fits across sweep points go to
sweeps.json (with a suite's `crossover:` block, where one sweep's step latency drops below the
other's). A bug in the profiler itself marks the run failed with its traceback in run.json,
and the caller still writes the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..characterize.crossover import LatencyPoint, find_crossover, latency_point
from ..characterize.scaling import batch_fits
from ..measure.store import SPANS, atomic_write_json
from ..rundir import MISSING_WHY, SUMMARY_JSON, SWEEPS_JSON, read_measured, repeat_dir
from ..runmodel import RunStatus, Status, WorkloadSummary
from ..suite.resolve import ResolvedSuite, ResolvedWorkload
from .child import ChildSpec
from .device import resolve_device
from .finish import finish_workload
from .record import RunRecord
from .repeats import pool_repeats
from .supervisor import ChildSupervisor, Listener, SilentListener


class SuiteRunner:
    """`prepare()` creates the run directory; `run()` runs every workload in order."""

    def __init__(self, resolved: ResolvedSuite, out_root: str | Path, device: str, argv: list[str], listener: Listener | None = None) -> None:
        self.resolved = resolved
        self.suite = resolved.suite
        self.out_root = Path(out_root)
        self.device = device
        self.argv = argv
        self.listener = listener or SilentListener()
        self.record: RunRecord | None = None
        self.last_summary: WorkloadSummary | None = None
        """The summary of the workload that ran last (kept when a Ctrl-C stops it)."""

    @property
    def run_dir(self) -> Path | None:
        return self.record.path if self.record else None

    def prepare(self) -> Path:
        """Create the run directory and write the config and environment. Errors are UserErrors."""
        self.record = RunRecord.create(self.resolved, self.out_root, self.device, self.argv)
        return self.record.path

    def run(self) -> Path:
        record = self.record
        assert record is not None, "call prepare() first"
        status, error = RunStatus.COMPLETE, None
        try:
            if self.suite.measure.repeats == 1:
                self._run_once(record)
            else:
                self._run_repeats(record, self.suite.measure.repeats)
        except KeyboardInterrupt:
            status = RunStatus.INTERRUPTED
            raise
        except Exception as exc:  # a profiler bug: the run is marked failed, with why, and the caller still reports
            status, error = RunStatus.FAILED, exc
            raise
        finally:
            self._write_sweeps()
            record.close(status, error)
        return record.path

    def _run_once(self, record: RunRecord) -> None:
        for w, entry in zip(self.resolved.workloads, record.entries, strict=True):
            record.set_status(entry, Status.RUNNING)
            try:
                summary = self.run_workload(w, record.path / entry.dir)
            except KeyboardInterrupt:
                entry.status = Status.INTERRUPTED
                raise
            record.set_status(entry, summary.status)

    def _run_repeats(self, record: RunRecord, repeats: int) -> None:
        """Repeat k of every workload, then repeat k + 1 (profiler/run/repeats.py); each workload's repeats are pooled
        after its last one, or when a Ctrl-C or a profiler failure stops the run (what was measured is kept)."""
        pairs = list(zip(self.resolved.workloads, record.entries, strict=True))
        done: dict[str, list[WorkloadSummary | None]] = {entry.name: [] for _, entry in pairs}
        pooled: set[str] = set()
        try:
            for k in range(1, repeats + 1):
                for w, entry in pairs:
                    record.set_status(entry, Status.RUNNING)
                    try:
                        done[entry.name].append(self.run_workload(w, repeat_dir(record.path / entry.dir, k)))
                    except KeyboardInterrupt:
                        done[entry.name].append(self.last_summary)
                        raise
                    if k == repeats:
                        record.set_status(entry, pool_repeats(w, record.path / entry.dir, done[entry.name], self.suite, record, planned=repeats).status)
                        pooled.add(entry.name)
                    else:
                        record.set_status(entry, Status.PENDING)
        finally:
            for w, entry in pairs:
                finished = [s for s in done[entry.name] if s is not None]  # a Ctrl-C before any summary leaves None
                if entry.name not in pooled and finished:
                    record.set_status(entry, pool_repeats(w, record.path / entry.dir, finished, self.suite, record, planned=repeats).status)
                elif entry.name not in pooled and entry.status == Status.RUNNING:
                    entry.status = Status.INTERRUPTED

    def run_workload(self, w: ResolvedWorkload, workdir: Path) -> WorkloadSummary:
        """One workload (or sweep point) in its own child; its summary. Re-raises a Ctrl-C after saving."""
        assert self.record is not None
        self.last_summary = None
        workdir.mkdir(parents=True, exist_ok=True)  # parents: sweep points live under their group
        measure = self.suite.measure
        spec = ChildSpec(
            name=w.entry.name,
            type=w.entry.type,
            params=w.params.model_dump(mode="json"),
            plugin_paths=self.resolved.plugin_paths,
            device=self.device,
            seed=self.suite.seed,
            measure=measure.model_dump(),
            workdir=str(workdir),
            load=w.entry.load.model_dump(mode="json") if w.entry.load else None,
        )
        self.listener.workload_started(w.entry.name)
        watch = ChildSupervisor(self.record.nvml, self.device, measure, self.listener).run(spec)
        summary = finish_workload(w, workdir, watch, self.suite, self.record)
        self.listener.workload_finished(w.entry.name, summary)
        self.last_summary = summary
        if watch.interrupted:
            raise KeyboardInterrupt
        return summary

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


__all__ = ["SuiteRunner", "resolve_device"]
