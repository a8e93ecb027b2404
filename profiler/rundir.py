"""Read a run directory back: `profiler.load_run(path)`, the public API for notebooks and reports.

Summaries and run.json come back as the typed objects of profiler/runmodel.py, from any schema
version this profiler reads (older ones migrated by profiler/migrate.py).

Only pandas, pyarrow and json: no torch, no NVML, so a run copied off a GPU box can be analysed
anywhere. A file that cannot be read does not stop the rest: it is listed in `Run.problems`
with its path and the reason, and its data comes back empty.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import ValidationError

from .characterize.analysis import MEASURED_COLUMNS, MEASURED_RULE_COLUMNS, measured_columns, measured_mask, measured_spans
from .measure.store import ENGINE, REQUESTS, SAMPLES, SPANS, concat_tables, read_arrow, to_frame
from .migrate import run_info_v1, schema_version, summary_v1
from .plugin import ITERATION, Declaration
from .runmodel import SCHEMA_VERSION, Calibration, RunEntry, RunInfo, Status, SweepGroup, WorkloadSummary

RUN_JSON = "run.json"
ENV_JSON = "env.json"
CONFIG_YAML = "config.resolved.yaml"
SUMMARY_JSON = "summary.json"
CALIBRATION_JSON = "calibration.json"
SWEEPS_JSON = "sweeps.json"
ERROR_JSON = "error.json"
REPEAT_DIR = "repeat-{k}"
MISSING_WHY = {
    Status.PENDING: "the run stopped before this workload started",
    Status.RUNNING: "the workload was running when its profiler stopped",
    Status.NOT_FINISHED: "the profiler failed while this workload ran",
}


@dataclass
class WorkloadRun:
    """One workload (or sweep point) of a run: its typed summary, its error, and its tables read on demand."""

    name: str
    path: Path
    summary: WorkloadSummary
    error: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)
    _measured: pd.DataFrame | None = field(default=None, init=False, repr=False)
    _iterations: pd.DataFrame | None = field(default=None, init=False, repr=False)

    @cached_property
    def spans(self) -> pd.DataFrame:
        """Every span with every column, warmup included (for notebooks)."""
        return _read_table(self.path / f"{SPANS}.parquet", self.problems, parts_of=SPANS)

    @property
    def measured(self) -> pd.DataFrame:
        """Measured spans only (no warmup, no iteration that raised), in the columns the analysis
        reads: what reports use. Read on its own, so that a million spans are held once."""
        if self._measured is None:
            self._read_measured()
        return self._measured

    @property
    def iterations(self) -> pd.DataFrame:
        """The `iteration` spans, warmup included: where each iteration began and ended."""
        if self._iterations is None:
            self._read_measured()
        return self._iterations

    def _read_measured(self) -> None:
        if "spans" in self.__dict__:  # already read in full: filter that rather than read again
            spans = self.spans[measured_columns(self.spans.columns)]
            self._iterations = spans.loc[spans["phase"] == ITERATION] if not spans.empty else spans
            self._measured = measured_spans(spans)
        else:
            self._measured, self._iterations, _ = read_measured(self.path / f"{SPANS}.parquet", self.problems)
        if self._measured.empty and self.summary.span_count and not _has_table(self.path, SPANS):
            self.problems.append(f"{self.path / f'{SPANS}.parquet'}: missing ({self.summary.span_count:,} spans were recorded)")

    @cached_property
    def samples(self) -> pd.DataFrame:
        return _read_table(self.path / f"{SAMPLES}.parquet", self.problems, parts_of=SAMPLES)

    @cached_property
    def requests(self) -> pd.DataFrame:
        """Under a `load:` block, one row per request: arrival, sent, scheduled by the engine, every token's
        time (`token_ns`), finished, status (finished, failed, timed_out, lost, not_sent), `measured`;
        warmup and cooldown requests included (measured False). Empty for a workload without a load."""
        table = _read_table(self.path / f"{REQUESTS}.parquet", self.problems, parts_of=REQUESTS)
        serving = self.summary.serving
        if table.empty and serving is not None and serving.requests and not _has_table(self.path, REQUESTS):
            self.problems.append(f"{self.path / f'{REQUESTS}.parquet'}: missing ({serving.requests:,} requests were recorded)")
        return table

    @cached_property
    def engine(self) -> pd.DataFrame:
        """Under a `load:` block, the engine's scheduler samples: t_ns, running, waiting, kv_bytes_used,
        kv_bytes_total, preempted. Empty for a workload without a load (or an engine that reports none)."""
        return _read_table(self.path / f"{ENGINE}.parquet", self.problems, parts_of=ENGINE)

    @cached_property
    def repeats(self) -> list[WorkloadRun]:
        """With measure.repeats > 1, each repeat as a workload of its own (`repeat-<k>/`, profiler/run/repeats.py), in
        order; [] for a run without repeats. This workload's own tables and summary pool the completed repeats."""
        out = []
        for info in self.summary.repeats or []:
            path = self.path / info.dir
            problems: list[str] = []
            summary = _read_summary(path / SUMMARY_JSON, SCHEMA_VERSION, problems, info.status)
            if summary is None:
                s = self.summary
                summary = WorkloadSummary(
                    name=s.name, type=s.type, plugin=s.plugin, status=info.status, device=s.device, seed=s.seed, declaration=s.declaration
                )
            error = _read_json(path / ERROR_JSON, problems, missing_ok=True)
            self.problems.extend(problems)
            out.append(WorkloadRun(f"{self.name} (repeat {info.repeat})", path, summary, error, []))
        return out

    @property
    def status(self) -> str:
        """ok, failed, interrupted, or (no summary.json) pending, running, not finished."""
        return self.summary.status.value

    @property
    def declaration(self) -> Declaration:
        return self.summary.declaration


@dataclass
class Run:
    """A run directory, read back: run.json, env.json, the resolved config, and every workload."""

    path: Path
    info: RunInfo
    env: dict[str, Any]
    config: dict[str, Any]
    workloads: dict[str, WorkloadRun]
    problems: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> str | None:
        """The baseline workload's name: the suite's, or the first point of a baseline sweep."""
        name = self.info.baseline
        if name in self.workloads:
            return name
        group = [n for n, w in self.workloads.items() if w.summary.sweep and w.summary.sweep.group == name]
        return group[0] if group else next(iter(self.workloads), None)

    @property
    def schema_version(self) -> int:
        return self.info.schema_version

    @cached_property
    def calibration(self) -> Calibration:
        data = _read_json(self.path / CALIBRATION_JSON, self.problems, missing_ok=True)
        return Calibration.model_validate(data) if isinstance(data, dict) else Calibration(unavailable="calibration.json is missing")

    @cached_property
    def sweeps(self) -> dict[str, SweepGroup]:
        data = _read_json(self.path / SWEEPS_JSON, self.problems, missing_ok=True) or {}
        try:
            return {group: SweepGroup.model_validate(v) for group, v in data.items()}
        except (ValidationError, AttributeError) as exc:
            self.problems.append(f"{self.path / SWEEPS_JSON}: unreadable ({_first_error(exc)})")
            return {}

    @cached_property
    def spans(self) -> pd.DataFrame:
        """Every workload's spans in one frame, with a `workload` column."""
        return _stack({n: w.spans for n, w in self.workloads.items()})

    @cached_property
    def samples(self) -> pd.DataFrame:
        return _stack({n: w.samples for n, w in self.workloads.items()})

    def all_problems(self) -> list[str]:
        return self.problems + [p for w in self.workloads.values() for p in w.problems]


def repeat_dir(workdir: Path, k: int) -> Path:
    """Where repeat `k` (1-based) of a workload lives when measure.repeats > 1."""
    return workdir / REPEAT_DIR.format(k=k)


def load_run(path: str | Path) -> Run:
    """Load a run directory written by `python -m profiler run` (any readable schema version).

    Raises FileNotFoundError when `path` is not a directory, and UserError (one line) when its
    schema version is one this profiler cannot read. Unreadable files are listed in `problems`.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a run directory")
    problems: list[str] = []
    raw_info = _read_json(root / RUN_JSON, problems) or {}
    version = schema_version(raw_info, str(root / RUN_JSON))
    if version == 1:
        raw_info = run_info_v1(raw_info)
    env = _read_json(root / ENV_JSON, problems) or {}
    config = _read_yaml(root / CONFIG_YAML, problems) or {}
    if not raw_info.get("workloads"):  # no run.json: the directories that hold a summary
        raw_info["workloads"] = [
            {"name": p.name, "dir": p.name, "type": "unknown"} for p in sorted(root.iterdir()) if p.is_dir() and (p / SUMMARY_JSON).exists()
        ]
    raw_info.setdefault("suite", root.name)
    raw_info.setdefault("device", "unknown")
    try:
        info = RunInfo.model_validate(raw_info)
    except ValidationError as exc:
        problems.append(f"{root / RUN_JSON}: unreadable ({_first_error(exc)})")
        info = RunInfo(suite=root.name, device="unknown", schema_version=version)
    workloads: dict[str, WorkloadRun] = {}
    for entry in info.workloads:
        wdir = root / entry.dir
        wproblems: list[str] = []
        summary = _read_summary(wdir / SUMMARY_JSON, version, wproblems, entry.status) or _placeholder(entry, info)
        error = _read_json(wdir / ERROR_JSON, wproblems, missing_ok=True)
        workloads[entry.name] = WorkloadRun(entry.name, wdir, summary, error, wproblems)
    return Run(root, info, env, config, workloads, problems)


def _has_table(directory: Path, name: str) -> bool:
    return (directory / f"{name}.parquet").exists() or any(directory.glob(f"{name}.part-*.parquet"))


def _read_summary(path: Path, version: int, problems: list[str], status: Status) -> WorkloadSummary | None:
    data = _read_json(path, problems, missing_ok=True)
    if data is None:
        if not path.exists():
            problems.append(f"{path}: missing ({MISSING_WHY.get(status, 'the workload did not finish')})")
        return None
    try:
        return WorkloadSummary.model_validate(summary_v1(data) if version == 1 else data)
    except (ValidationError, TypeError, KeyError, AttributeError) as exc:
        problems.append(f"{path}: unreadable ({_first_error(exc)})")
        return None


def _placeholder(entry: RunEntry, info: RunInfo) -> WorkloadSummary:
    """A workload without a readable summary: its entry's status, nothing measured."""
    return WorkloadSummary(name=entry.name, type=entry.type, plugin="unknown", status=entry.status, device=info.device, seed=0)


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        e = exc.errors()[0]
        return f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
    return f"{type(exc).__name__}: {str(exc)[:120]}"


def _read_json(path: Path, problems: list[str], missing_ok: bool = False) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if not missing_ok:
            problems.append(f"{path}: missing")
    except (OSError, ValueError) as exc:
        problems.append(f"{path}: unreadable ({type(exc).__name__}: {str(exc)[:120]})")
    return None


def _read_yaml(path: Path, problems: list[str]) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"{path}: missing")
    except (OSError, ValueError, yaml.YAMLError) as exc:
        problems.append(f"{path}: unreadable ({type(exc).__name__})")
    return None


def read_measured(path: str | Path, problems: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(measured spans in MEASURED_COLUMNS, the `iteration` spans with warmup, the total span count)
    from a workload's spans.parquet, or from the part files a crashed run left behind.

    The measured rule (analysis.measured_mask) is applied to the arrow table before conversion,
    so only the kept rows ever become pandas: a million spans are held once, not twice."""
    table = _read_arrow(Path(path), [] if problems is None else problems, SPANS, MEASURED_COLUMNS)
    if table is None:
        return pd.DataFrame(), pd.DataFrame(), 0
    total = table.num_rows
    iterations = table.filter(pc.equal(table["phase"], ITERATION)).to_pandas()
    keep = measured_mask(table.select([c for c in MEASURED_RULE_COLUMNS if c in table.column_names]).to_pandas())
    table = table.filter(pa.array(keep.to_numpy(dtype=bool)))
    return to_frame(table), iterations, total


def _read_table(path: Path, problems: list[str], parts_of: str, columns: Any = None) -> pd.DataFrame:
    table = _read_arrow(path, problems, parts_of, columns)
    return pd.DataFrame() if table is None else to_frame(table)


def _read_arrow(path: Path, problems: list[str], parts_of: str, columns: Any = None) -> pa.Table | None:
    """A merged table, or the part files a crashed run left behind; None when no rows."""
    files = [path] if path.exists() else sorted(path.parent.glob(f"{parts_of}.part-*.parquet"))
    tables = []
    for f in files:
        try:
            tables.append(read_arrow(f, columns))
        except Exception as exc:  # corrupt or truncated: name it (once, however often it is read), keep the rest
            if not any(p.startswith(f"{f}: ") for p in problems):
                problems.append(f"{f}: unreadable ({type(exc).__name__}: {str(exc)[:120]})")
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return None
    return tables[0] if len(tables) == 1 else concat_tables(tables)


def _stack(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    parts = [df.assign(workload=name) for name, df in frames.items() if not df.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
