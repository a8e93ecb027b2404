"""The run directory's setup and its run.json: created before the first workload, kept current
after each one, closed with the run's status.

Setup writes config.resolved.yaml, env.json, calibration.json (the machine's ceilings, measured
in a subprocess) and the GPU's idle power; run.json (profiler/runmodel.py: RunInfo) lists every
workload and sweep point with its directory, status and the resources it declared, and says how
the run ended. Every write is atomic: a reader never sees half a file.
"""

from __future__ import annotations

import os
import socket
import traceback
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..measure.calibrate import calibrate_in_subprocess
from ..measure.env import collect_env
from ..measure.nvml import Nvml, idle_power
from ..measure.store import atomic_write_json, atomic_write_text, new_run_dir
from ..rundir import CALIBRATION_JSON, CONFIG_YAML, ENV_JSON, RUN_JSON
from ..runmodel import SCHEMA_VERSION, SUMMARY_SCHEMA_JSON, IdlePower, RunEntry, RunError, RunInfo, RunStatus, Status, summary_json_schema
from ..suite.resolve import ResolvedSuite
from ..suite.yaml_source import dump

ON_EACH_NODE = "measured on each cluster node that runs a point (node.json in the point's directory)"


def profiler_version() -> str:
    try:
        return metadata.version("ml-workload-profiler")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


class RunRecord:
    """One run directory: created by `create`, updated with `set_status`, closed by `close`."""

    def __init__(self, path: Path, info: RunInfo, nvml: Nvml, calibration: dict[str, Any] | None) -> None:
        self.path = path
        self.info = info
        self.nvml = nvml
        self.calibration = calibration

    @classmethod
    def create(cls, resolved: ResolvedSuite, out_root: Path, device: str, argv: list[str], cluster: dict[str, Any] | None = None) -> RunRecord:
        """Make the directory and write what is known before anything runs. UserError when the
        output directory cannot be written. `cluster`: the Ray cluster the points run on (ray_executor.RayExecutor.cluster);
        its nodes measure their own ceilings and idle power (the runner keeps the first node's calibration here)."""
        suite = resolved.suite
        try:
            path = new_run_dir(out_root, suite.name)
            probe = path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"-o {out_root}: cannot create the run directory ({exc.strerror or exc}); choose a writable directory with -o") from None
        nvml = Nvml()
        config = resolved.resolved_dict()
        config["device_resolved"] = device
        atomic_write_text(path / CONFIG_YAML, f"# resolved from {resolved.source.path}\n" + dump(config))
        atomic_write_json(path / ENV_JSON, collect_env(nvml, argv))
        atomic_write_json(path / SUMMARY_SCHEMA_JSON, summary_json_schema())
        calibration = None
        if suite.measure.count_work and cluster is None:
            calibration, why = calibrate_in_subprocess(device)
            atomic_write_json(path / CALIBRATION_JSON, calibration or {"unavailable": why})
        info = RunInfo(
            schema_version=SCHEMA_VERSION,
            profiler_version=profiler_version(),
            suite=suite.name,
            baseline=suite.baseline_name,
            serving_baseline=suite.serving_baseline_name,
            device=device,
            started_utc=_now(),
            gpu_idle_power=IdlePower(**idle_power(nvml, device)) if cluster is None else IdlePower(unavailable=ON_EACH_NODE),
            profiler_pid=os.getpid(),  # a report of a run left `running` can tell whether this process still exists
            host=socket.gethostname(),
            executor=suite.executor.describe(),
            cluster=cluster,
            workloads=_entries(resolved),
        )
        record = cls(path, info, nvml, calibration)
        record.write()
        return record

    @property
    def entries(self) -> list[RunEntry]:
        return self.info.workloads

    def set_status(self, entry: RunEntry, status: Status) -> None:
        entry.status = status
        self.write()

    def close(self, status: RunStatus, error: BaseException | None = None) -> None:
        """The run's end: its status, and for a profiler bug the reason and traceback."""
        if error is not None:
            self.info.error = RunError(
                reason=f"the profiler itself failed: {type(error).__name__}: {str(error)[:300]}",
                traceback="".join(traceback.format_exception(type(error), error, error.__traceback__)),
            )
            for entry in self.entries:
                if entry.status == Status.RUNNING:
                    entry.status = Status.NOT_FINISHED
        self.info.status = status
        self.info.finished_utc = _now()
        self.write()
        self.nvml.shutdown()

    def stopped_at_once(self) -> None:
        """A second Ctrl-C or SIGTERM: the profiler leaves without settling its workloads. run.json says so (the run
        and what was running are interrupted), so that `report` does not take it for a profiler that was killed."""
        for entry in self.entries:
            if entry.status == Status.RUNNING:
                entry.status = Status.INTERRUPTED
        self.info.status = RunStatus.INTERRUPTED
        self.info.finished_utc = _now()
        self.write()

    def write(self) -> None:
        atomic_write_json(self.path / RUN_JSON, self.info.model_dump(mode="json", exclude_none=True))


def _entries(resolved: ResolvedSuite) -> list[RunEntry]:
    """One entry per workload or sweep point; directories made unique."""
    used: set[str] = set()
    entries = []
    for w in resolved.workloads:
        directory, n = w.directory, 1
        while directory in used:
            n += 1
            directory = f"{w.directory}-{n}"
        used.add(directory)
        entries.append(
            RunEntry(
                name=w.entry.name,
                dir=directory,
                type=w.entry.type,
                sweep_group=w.sweep_group,
                sweep_point=w.sweep_point,
                resources=w.declaration.resources,
            )
        )
    return entries


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
