"""Read a run directory back: `profiler.load_run(path)`, the public API for notebooks and reports.

Summaries and run.json come back as the typed objects of profiler/runmodel.py, from any schema
version this profiler reads (older ones migrated by profiler/migrate.py).

Only pandas, pyarrow and json: no torch, no NVML, so a run copied off a GPU box can be analysed
anywhere. A file that cannot be read does not stop the rest: it is listed in `Run.problems`
with its path and the reason, and its data comes back empty.

A run directory may come from anywhere, so it is read defensively, in one place:
- its entries never lead reads outside it: a workload's `dir` (run.json) and a repeat's `dir`
  (summary.json) are relative paths going down (runmodel.inside_dir), and a file or directory
  that is a symlink resolving outside the run directory is not followed (the workload, or the
  file, is reported unreadable);
- every JSON, YAML and parquet file is read with a size and a nesting bound (measure/store.py:
  read_bounded, load_json, read_arrow): a FIFO, /dev/zero, a 2 GB file or JSON nested 100,000
  deep is one problem line;
- JSON of the wrong shape (a list where an object is expected, NaN) is a problem; a summary or
  run.json field of the wrong type is left out with a problem when it has a default;
- every table (spans, samples, requests, engine) is checked once, here, against the columns
  and types its writer gives it (TABLES): a file without the columns that make it that table
  (a foreign file) is left out, a column of the wrong type is converted where its values allow
  (otherwise read as missing), rows missing a required value and duplicated rows are left out,
  each with a problem line. Readers downstream (characterize/, reports/) may rely on the types.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import ValidationError

from .characterize.analysis import MEASURED_COLUMNS, MEASURED_RULE_COLUMNS, measured_columns, measured_mask, measured_spans
from .errors import one_line, shown
from .files import UnreadableFile, os_problem, read_bounded
from .measure.journal import journal_path, unwritten_rows
from .measure.store import ENGINE, REQUESTS, SAMPLES, SPANS, concat_tables, escape_surrogates, load_json, read_arrow, rows_to_table, to_frame
from .migrate import run_info_v1, schema_version, summary_v1
from .plugin import ITERATION, Declaration
from .runmodel import SCHEMA_VERSION, Calibration, ChildError, ErrorInfo, ResolvedSuite, RunEntry, RunInfo, Status, SweepGroup, WorkloadSummary
from .tables import TABLES

RUN_JSON = "run.json"
ENV_JSON = "env.json"
CONFIG_YAML = "config.resolved.yaml"
SUMMARY_JSON = "summary.json"
CALIBRATION_JSON = "calibration.json"
SWEEPS_JSON = "sweeps.json"
ERROR_JSON = "error.json"
REPEAT_DIR = "repeat-{k}"
MAX_CONFIG_BYTES = 4 * 2**20
"""The largest config.resolved.yaml read: the suite (at most 1 MB, suite/yaml_source.py MAX_SUITE_BYTES) with its
defaults filled in and its sweeps written out, a few hundred bytes per point."""
MISSING_WHY = {
    Status.PENDING: "the run stopped before this workload started",
    Status.RUNNING: "the workload was running when its profiler stopped",
    Status.NOT_FINISHED: "the profiler failed or was cut off while this workload ran",
    Status.INTERRUPTED: "the run was stopped at once (a second Ctrl-C or SIGTERM) before its summary was written",
}


@dataclass
class WorkloadRun:
    """One workload (or sweep point) of a run: its typed summary, its error, and its tables read on demand.

    Its files must lie inside `root`, the run directory (None: inside its own directory, `path`). A workload whose
    directory cannot be read at all (its `dir` leads outside the run) has `readable` False: its tables are empty."""

    name: str
    path: Path
    summary: WorkloadSummary
    error: ChildError | None
    """error.json (None: the workload recorded no error, or the file is unreadable: then a problem says so)."""
    problems: list[str] = field(default_factory=list)
    root: Path | None = None
    readable: bool = True
    _measured: pd.DataFrame | None = field(default=None, init=False, repr=False)
    _iterations: pd.DataFrame | None = field(default=None, init=False, repr=False)

    @property
    def boundary(self) -> Path:
        """The directory every file of this workload must resolve into."""
        return self.root if self.root is not None else self.path

    def _table(self, name: str) -> pd.DataFrame:
        if not self.readable:
            return pd.DataFrame()
        return _read_table(self.path / f"{name}.parquet", self.problems, parts_of=name, boundary=self.boundary)

    @cached_property
    def spans(self) -> pd.DataFrame:
        """Every span with every column, warmup included (for notebooks)."""
        return self._table(SPANS)

    @property
    def measured(self) -> pd.DataFrame:
        """Measured spans only (no warmup, no iteration that raised), in the columns the analysis
        reads: what reports use. Read on its own, so that a million spans are held once."""
        if self._measured is None:
            self._read_measured()
        return cast(pd.DataFrame, self._measured)  # set by _read_measured

    @property
    def iterations(self) -> pd.DataFrame:
        """The `iteration` spans, warmup included: where each iteration began and ended."""
        if self._iterations is None:
            self._read_measured()
        return cast(pd.DataFrame, self._iterations)  # set by _read_measured

    def _read_measured(self) -> None:
        if not self.readable:
            self._measured, self._iterations = pd.DataFrame(), pd.DataFrame()
            return
        if "spans" in self.__dict__:  # already read in full: filter that rather than read again
            spans = cast(pd.DataFrame, self.spans[measured_columns(self.spans.columns)])
            self._iterations = cast(pd.DataFrame, spans.loc[spans["phase"] == ITERATION]) if not spans.empty else spans
            self._measured, total = measured_spans(spans), len(spans)
        else:
            self._measured, self._iterations, total = read_measured(self.path / f"{SPANS}.parquet", self.problems, self.boundary)
        if not total and self.summary.span_count:
            self._say_empty(SPANS, f"{self.summary.span_count:,} spans were recorded")

    @cached_property
    def samples(self) -> pd.DataFrame:
        """The sampler's rows (t_ns, the process's and the machine's CPU, memory, GPU readings), warmup included."""
        table = self._table(SAMPLES)
        if table.empty and self.summary.sample_count and self.readable:
            self._say_empty(SAMPLES, f"{self.summary.sample_count:,} samples were recorded")
        return table

    @cached_property
    def requests(self) -> pd.DataFrame:
        """Under a `load:` block, one row per request: arrival, sent, scheduled by the engine, every token's
        time (`token_ns`), finished, status (finished, failed, timed_out, lost, not_sent), `measured`;
        warmup and cooldown requests included (measured False). Empty for a workload without a load."""
        table = self._table(REQUESTS)
        serving = self.summary.serving
        if table.empty and serving is not None and serving.requests and self.readable:
            self._say_empty(REQUESTS, f"{serving.requests:,} requests were recorded")
        return table

    def _say_empty(self, name: str, recorded: str) -> None:
        """A problem for a table that gave no rows where the summary counted some, unless its files were named already."""
        path = self.path / f"{name}.parquet"
        if not _has_table(self.path, name):
            self.problems.append(f"{path}: missing ({recorded})")
        elif not any(p.startswith((f"{path}: ", f"{self.path / name}.part-")) for p in self.problems):
            self.problems.append(f"{path}: no rows ({recorded})")

    @cached_property
    def engine(self) -> pd.DataFrame:
        """Under a `load:` block, the engine's scheduler samples: t_ns, running, waiting, kv_bytes_used,
        kv_bytes_total, kv_usage (a fraction, from an engine that gives no bytes), preempted. Empty for a workload without
        a load (or an engine that reports none)."""
        return self._table(ENGINE)

    @cached_property
    def repeats(self) -> list[WorkloadRun]:
        """With measure.repeats > 1, each repeat as a workload of its own (`repeat-<k>/`, profiler/run/repeats.py), in
        order; [] for a run without repeats. This workload's own tables and summary pool the completed repeats.
        A repeat whose directory resolves outside the run (a symlink) is not read: its problem is this workload's."""
        out = []
        for k, info in enumerate(self.summary.repeats or []):
            path = self.path / info.dir
            where = f"{self.path / SUMMARY_JSON}: repeats[{k}].dir {shown(info.dir)!r}"
            readable = self.readable and _inside(path, self.boundary, self.problems, where)
            summary = _read_summary(path / SUMMARY_JSON, SCHEMA_VERSION, self.problems, info.status, self.boundary) if readable else None
            if summary is None:
                s = self.summary
                summary = WorkloadSummary(
                    name=s.name, type=s.type, plugin=s.plugin, status=info.status, device=s.device, seed=s.seed, declaration=s.declaration
                )
            error = _read_error(path / ERROR_JSON, self.problems, self.boundary) if readable else None
            out.append(WorkloadRun(f"{self.name} (repeat {info.repeat})", path, summary, error, self.problems, self.boundary, readable))
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
    config: ResolvedSuite
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
        data = _read_json(self.path / CALIBRATION_JSON, self.problems, missing_ok=True, root=self.path)
        calibration = _validate(Calibration, data, self.path / CALIBRATION_JSON, self.problems) if data is not None else None
        return calibration or Calibration(unavailable=f"{CALIBRATION_JSON} is missing" if data is None else f"{CALIBRATION_JSON} is unreadable")

    @cached_property
    def sweeps(self) -> dict[str, SweepGroup]:
        data = _read_json(self.path / SWEEPS_JSON, self.problems, missing_ok=True, root=self.path) or {}
        out = {}
        for group, v in data.items():
            sweep = _validate(SweepGroup, v, f"{self.path / SWEEPS_JSON}: {shown(group)}", self.problems)
            if sweep is not None:
                out[group] = sweep
        return out

    @cached_property
    def spans(self) -> pd.DataFrame:
        """Every workload's spans in one frame, with a `workload` column."""
        return _stack({n: w.spans for n, w in self.workloads.items()})

    @cached_property
    def samples(self) -> pd.DataFrame:
        return _stack({n: w.samples for n, w in self.workloads.items()})

    def all_problems(self) -> list[str]:
        """Every problem met reading the run so far, each once, in the order met, control characters escaped (a
        problem quotes names and paths from the run directory, and is printed to a terminal)."""
        return list(dict.fromkeys(one_line(p) for p in self.problems + [p for w in self.workloads.values() for p in w.problems]))


def repeat_dir(workdir: Path, k: int) -> Path:
    """Where repeat `k` (1-based) of a workload lives when measure.repeats > 1."""
    return workdir / REPEAT_DIR.format(k=k)


def load_run(path: str | Path) -> Run:
    """Load a run directory written by `python -m profiler run` (any readable schema version).

    Raises FileNotFoundError when `path` is not a directory, and UserError (one line) when its
    schema version is one this profiler cannot read. Unreadable files, and damaged entries, are
    listed in `problems` (see the module docstring); what can be read is returned.
    """
    root = Path(path)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: not a run directory")
    problems: list[str] = []
    raw_info = _read_json(root / RUN_JSON, problems, root=root) or {}
    version = schema_version(raw_info, str(root / RUN_JSON))
    if version == 1:
        raw_info = run_info_v1(raw_info)
    env = _checked_env(_read_json(root / ENV_JSON, problems, root=root) or {}, root / ENV_JSON, problems)
    raw_config = _read_yaml(root / CONFIG_YAML, problems, root)
    config = (_validate(ResolvedSuite, raw_config, root / CONFIG_YAML, problems) if raw_config is not None else None) or ResolvedSuite()
    raw_entries = raw_info.pop("workloads", None)
    if raw_entries is not None and not isinstance(raw_entries, list):
        problems.append(f"{root / RUN_JSON}: workloads is a JSON {_json_type(raw_entries)}, expected a list; read the directories that hold a summary")
        raw_entries = None
    if not raw_entries:  # no run.json: the directories that hold a summary
        raw_entries = _discovered(root, problems)
    if raw_info:  # a run.json that lacks what every profiler writes is damaged: said, and read with the defaults
        for key, default in (("suite", root.name), ("device", "unknown"), ("status", "running")):
            if key not in raw_info:
                problems.append(f"{root / RUN_JSON}: no {key!r} (every run.json has one); read as {default!r}")
    raw_info.setdefault("suite", root.name)
    raw_info.setdefault("device", "unknown")
    info = _validate(RunInfo, raw_info, root / RUN_JSON, problems, defaults={"suite": root.name, "device": "unknown"})
    info = info or RunInfo(suite=root.name, device="unknown", schema_version=version)
    workloads: dict[str, WorkloadRun] = {}
    for k, raw in enumerate(raw_entries):
        w = _workload(root, k, raw, version, info, problems)
        if w is None:
            continue
        if w.name in workloads:
            problems.append(f"{root / RUN_JSON}: workloads[{k}] repeats the name {shown(w.name)!r} of an earlier entry; left out")
            continue
        workloads[w.name] = w
    entries = {e.name: e for e in reversed([_entry_of(raw) for raw in raw_entries]) if e is not None and e.name in workloads and workloads[e.name].readable}
    info.workloads = [entries[name] for name in workloads if name in entries]
    return Run(root, info, env, config, workloads, problems)


def _discovered(root: Path, problems: list[str]) -> list[dict[str, Any]]:
    """Entries for the directories of `root` that hold a summary.json (a run without a readable run.json); a symlink
    leading outside the run directory is named and not followed. A directory name that is not UTF-8 is the workload's
    name with its bytes escaped (escape_surrogates), so that it can be shown and written."""
    try:
        children = sorted(root.iterdir())
    except OSError as exc:
        problems.append(f"{root}: cannot be listed ({os_problem(exc)}); no workload is read")
        return []
    out = []
    for p in children:
        if os.path.islink(p) and not _inside(p, root, problems):
            continue
        if os.path.isdir(p) and os.path.lexists(p / SUMMARY_JSON):
            name, escaped = escape_surrogates(p.name)
            if escaped:
                problems.append(f"{root / name}: a directory name that is not UTF-8, shown with its bytes escaped")
            out.append({"name": name, "dir": p.name, "type": "unknown"})
    return out


def _entry_of(raw: Any) -> RunEntry | None:
    try:
        return RunEntry.model_validate(raw)
    except Exception:  # named by _workload
        return None


def _workload(root: Path, k: int, raw: Any, version: int, info: RunInfo, problems: list[str]) -> WorkloadRun | None:
    """Entry `k` of run.json's workloads, read: its summary, error and (lazily) tables. A damaged entry with a name is
    an unreadable workload (a placeholder with the problem); one without a name is left out with the problem."""
    where = f"{root / RUN_JSON}: workloads[{k}]"
    if not isinstance(raw, dict):
        problems.append(f"{where} is a JSON {_json_type(raw)}, expected an object; left out")
        return None
    try:
        entry = RunEntry.model_validate(raw)
    except Exception as exc:  # a ValidationError, or a TypeError from a validator of its resources
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}: unreadable ({_first_error(exc)}); left out")
            return None
        problem = f"{where} ({shown(name)}): {_first_error(exc)}; the workload is not read"
        status = Status(raw["status"]) if isinstance(raw.get("status"), str) and raw["status"] in {s.value for s in Status} else Status.NOT_FINISHED
        kind = raw["type"] if isinstance(raw.get("type"), str) else "unknown"
        summary = WorkloadSummary(name=name, type=kind, plugin="unknown", status=status, device=info.device, seed=0)
        return WorkloadRun(name, root, summary, None, [problem], root, readable=False)
    wdir = root / entry.dir
    wproblems: list[str] = []
    if not _inside(wdir, root, wproblems, f"{where}.dir {shown(entry.dir)!r}", unread="the workload is not read"):
        return WorkloadRun(entry.name, wdir, _placeholder(entry, info), None, wproblems, root, readable=False)
    status = Status.NOT_FINISHED if entry.status == Status.RUNNING and profiler_process(info) == "gone" else entry.status
    summary = _read_summary(wdir / SUMMARY_JSON, version, wproblems, status, root) or _placeholder(entry, info)
    error = _read_error(wdir / ERROR_JSON, wproblems, root)
    return WorkloadRun(entry.name, wdir, summary, error, wproblems, root)


def _read_error(path: Path, problems: list[str], root: Path) -> ChildError | None:
    """A workload's error.json as runmodel.ChildError; None when it is absent or cannot be read (a problem says why)."""
    raw = _read_json(path, problems, missing_ok=True, root=root)
    return None if raw is None else _validate(ChildError, raw, path, problems)


def _has_table(directory: Path, name: str) -> bool:
    return os.path.lexists(directory / f"{name}.parquet") or bool(_parts(directory, name, []))


def _parts(directory: Path, name: str, problems: list[str]) -> list[Path]:
    """The part files of table `name` in `directory`, in order; [] with a problem when the directory cannot be listed
    (a path the OS refuses: every call on a path built from the run's entries is kept from raising out of here)."""
    try:
        return sorted(directory.glob(f"{name}.part-*.parquet"))
    except (OSError, ValueError) as exc:
        problems.append(f"{directory}: cannot be listed ({os_problem(exc) if isinstance(exc, OSError) else shown(str(exc), 120)}); its {name} are not read")
        return []


def _read_summary(path: Path, version: int, problems: list[str], status: Status, root: Path | None = None) -> WorkloadSummary | None:
    data = _read_json(path, problems, missing_ok=True, root=root)
    if data is None:
        if not os.path.lexists(path):
            problems.append(f"{path}: missing ({MISSING_WHY.get(status, 'the workload did not finish')})")
        return None
    if version == 1:
        try:
            data = summary_v1(data)
        except Exception as exc:  # a damaged schema-1 summary can fail its migration anywhere: name it, read the rest
            problems.append(f"{path}: unreadable as a schema-1 summary ({type(exc).__name__}: {shown(str(exc), 120)})")
            return None
    return _validate(WorkloadSummary, data, path, problems, keep=("declaration",))


def _placeholder(entry: RunEntry, info: RunInfo) -> WorkloadSummary:
    """A workload without a readable summary: its entry's status, nothing measured. One left `running` by a profiler
    that is gone was cut off: not finished, with that reason."""
    if entry.status == Status.RUNNING and profiler_process(info) == "gone":
        error = ErrorInfo(phase="unknown", reason=CUT_OFF.format(pid=info.profiler_pid))
        return WorkloadSummary(name=entry.name, type=entry.type, plugin="unknown", status=Status.NOT_FINISHED, device=info.device, seed=0, error=error)
    return WorkloadSummary(name=entry.name, type=entry.type, plugin="unknown", status=entry.status, device=info.device, seed=0)


CUT_OFF = (
    "cut off: its profiler (pid {pid}) stopped while it ran without closing the run (killed, e.g. by SIGKILL or the "
    "out-of-memory killer, or the machine stopped); what it wrote before is kept"
)


def profiler_process(info: RunInfo) -> str:
    """Whether the profiler that wrote a run is still running: "alive", "gone", or "unknown" (another host, or no pid
    recorded). A pid now running something else (reused) is gone."""
    pid, host = info.profiler_pid, info.host
    if pid is None or host != socket.gethostname():
        return "unknown"
    try:
        alive = "profiler" in " ".join(psutil.Process(int(pid)).cmdline())
    except (psutil.Error, ValueError, OverflowError):
        alive = False
    return "alive" if alive else "gone"


def _validate(model: Any, data: Any, where: Any, problems: list[str], keep: tuple[str, ...] = (), defaults: dict[str, Any] | None = None) -> Any:
    """`data` as `model`; None with a problem when it cannot be. A top-level field of the wrong type (or unknown) is left
    out, with a problem naming it, when the model has a default for it and it is not in `keep`, or replaced by its
    value in `defaults`: one damaged figure does not cost the whole file."""
    if not isinstance(data, dict):
        problems.append(f"{where}: unreadable (a JSON {_json_type(data)} where an object is expected)")
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first, whole = _first_errors(exc), _first_error(exc)
    except Exception as exc:  # a model's validator that raises other than ValueError (a TypeError on a list): no field to blame
        problems.append(f"{where}: unreadable ({_first_error(exc)})")
        return None
    defaults = defaults or {}
    fields = model.model_fields
    fixable = all(key in defaults or (key not in keep and not (key in fields and fields[key].is_required())) for key in first)
    if not first or not fixable:
        problems.append(f"{where}: unreadable ({next((first[k] for k in first if k in keep or k in fields and fields[k].is_required()), whole)})")
        return None
    for key, text in first.items():
        problems.append(f"{where}: {text}; " + (f"read as {defaults[key]!r}" if key in defaults else f"read without {shown(key)!r}"))
    repaired = {k: v for k, v in data.items() if k not in first} | {k: defaults[k] for k in first if k in defaults}
    try:
        return model.model_validate(repaired)
    except Exception as exc:
        problems.append(f"{where}: unreadable ({_first_error(exc)})")
        return None


def _first_errors(exc: ValidationError) -> dict[str, str]:
    """The first error of each top-level field; {} when an error is the whole object's (no field to leave out)."""
    out: dict[str, str] = {}
    for e in exc.errors():
        key = str(e["loc"][0]) if e["loc"] else ""
        if not key:
            return {}
        out.setdefault(key, _error_text(e))
    return out


def _error_text(e: Any) -> str:
    loc = ".".join(shown(str(part), 40) for part in e["loc"])
    msg = str(e["msg"]).removeprefix("Value error, ")
    return f"{loc}: {shown(msg, 200)}" if loc else shown(msg, 200)


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return _error_text(exc.errors()[0])
    return f"{type(exc).__name__}: {shown(str(exc), 120)}"


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _inside(path: Path, root: Path | None, problems: list[str], where: Any = None, unread: str = "not followed") -> bool:
    """True when `path` resolves (symlinks followed) inside `root` (or `root` is None); else a problem, False."""
    if root is None:
        return True
    try:
        real_root = os.path.realpath(root)
        real = os.path.realpath(path)
    except (OSError, ValueError) as exc:
        why = os_problem(exc) if isinstance(exc, OSError) else "the path cannot be resolved"
        problems.append(f"{where if where is not None else path}: cannot be resolved ({why}); {unread}")
        return False
    if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
        return True
    problems.append(f"{where if where is not None else path}: leads outside the run directory (a symlink); {unread}")
    return False


def _read_json(path: Path, problems: list[str], missing_ok: bool = False, root: Path | None = None) -> dict[str, Any] | None:
    """A JSON object of the run (bounded: store.load_json), or None with a problem: missing (unless `missing_ok`), leading
    outside `root`, refused by a bound, not JSON, or not an object. Non-finite numbers are read as None, with a problem."""
    if not _inside(path, root, problems):
        return None
    try:
        data, repairs = load_json(path)
    except FileNotFoundError:
        if not missing_ok:
            problems.append(f"{path}: missing")
        return None
    except UnreadableFile as exc:
        problems.append(f"{path}: unreadable ({exc})")
        return None
    except OSError as exc:
        problems.append(f"{path}: unreadable ({os_problem(exc)})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}: unreadable (a JSON {_json_type(data)} where an object is expected)")
        return None
    if repairs.nonfinite:
        problems.append(f"{path}: {repairs.nonfinite} value(s) that are not finite numbers (NaN, Infinity) read as missing")
    if repairs.surrogates:
        problems.append(f"{path}: {repairs.surrogates} lone surrogate(s) (a \\ud800-\\udfff escape that is no character) read as their escape text")
    return data


def _read_yaml(path: Path, problems: list[str], root: Path | None = None) -> dict[str, Any] | None:
    """config.resolved.yaml as a mapping, read with the suite reader's bounded loader (no alias bombs, no deep nesting),
    at most MAX_CONFIG_BYTES; None with a problem otherwise."""
    from .suite.yaml_source import YamlBoundError, parse

    if not _inside(path, root, problems):
        return None
    try:
        text = read_bounded(path, MAX_CONFIG_BYTES).decode("utf-8")
        data, _ = parse(text)
    except FileNotFoundError:
        problems.append(f"{path}: missing")
        return None
    except UnicodeDecodeError as exc:
        problems.append(f"{path}: unreadable (not UTF-8 text, byte {exc.start})")
        return None
    except UnreadableFile as exc:
        problems.append(f"{path}: unreadable ({exc})")
        return None
    except YamlBoundError as exc:
        problems.append(f"{path}:{exc.line}: unreadable ({shown(exc.problem, 200)})")
        return None
    except (OSError, ValueError, yaml.YAMLError) as exc:
        problems.append(f"{path}: unreadable ({type(exc).__name__})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}: unreadable (a YAML {_json_type(data)} where a mapping is expected)")
        return None
    data, escaped = escape_surrogates(data)
    if escaped:
        problems.append(f"{path}: {escaped} lone surrogate(s) (a \\ud800-\\udfff escape that is no character) read as their escape text")
    return data


ENV_TYPES: dict[str, type | tuple[type, ...]] = {
    "command_line": list,
    "cwd": str,
    "python": str,
    "platform": str,
    "hostname": str,
    "cpu_model": str,
    "cpu_cores_logical": int,
    "cpu_cores_physical": int,
    "cpu_affinity": int,
    "memory_total_bytes": int,
    "packages": dict,
    "git": dict,
    "nvidia_driver": str,
    "gpus": list,
    "gpus_unavailable": str,
}
"""env.json's fields as profiler/measure/env.py writes them (None: unknown); the report and `compare` read these."""
ENV_WORDS = {list: "a list", str: "a string", int: "an integer", dict: "an object"}


def _checked_env(env: dict[str, Any], path: Path, problems: list[str]) -> dict[str, Any]:
    """env.json with every field of the wrong type left out (a problem each), and `gpus` holding objects only."""
    out = {}
    for key, value in env.items():
        want = ENV_TYPES.get(key)
        if value is not None and want is not None and (not isinstance(value, want) or (want is int and isinstance(value, bool))):
            problems.append(f"{path}: {shown(key)} is a JSON {_json_type(value)}, expected {ENV_WORDS[want]}; read without it")
            continue
        out[key] = value
    gpus = out.get("gpus")
    if gpus and not all(isinstance(g, dict) for g in gpus):
        problems.append(f"{path}: gpus holds entries that are not objects; read without them")
        out["gpus"] = [g for g in gpus if isinstance(g, dict)]
    return out


def read_measured(path: str | Path, problems: list[str] | None = None, boundary: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(measured spans in MEASURED_COLUMNS, the `iteration` spans with warmup, the total span count)
    from a workload's spans.parquet, or from the part files a crashed run left behind; every file
    inside `boundary` (default: the workload's directory) and checked against TABLES[SPANS].

    The measured rule (analysis.measured_mask) is applied to the arrow table before conversion,
    so only the kept rows ever become pandas: a million spans are held once, not twice."""
    path = Path(path)
    table = _read_arrow(path, [] if problems is None else problems, SPANS, MEASURED_COLUMNS, boundary)
    if table is None:
        return pd.DataFrame(), pd.DataFrame(), 0
    total = table.num_rows
    iterations = to_frame(table.filter(pc.equal(table["phase"], ITERATION)))  # pyright: ignore[reportAttributeAccessIssue] (generated at import)
    keep = measured_mask(table.select([c for c in MEASURED_RULE_COLUMNS if c in table.column_names]).to_pandas())
    table = table.filter(pa.array(keep.to_numpy(dtype=bool)))
    return to_frame(table), iterations, total


def _read_table(path: Path, problems: list[str], parts_of: str, columns: Any = None, boundary: Path | None = None) -> pd.DataFrame:
    table = _read_arrow(path, problems, parts_of, columns, boundary)
    return pd.DataFrame() if table is None else to_frame(table)


def _read_arrow(path: Path, problems: list[str], parts_of: str, columns: Any = None, boundary: Path | None = None) -> pa.Table | None:
    """A merged table, or the part files a crashed run left behind, each file read bounded (store.read_arrow), inside
    `boundary` (default: its directory) and checked against TABLES[parts_of]; None when no rows. Every problem is
    named once, however often the table is read."""
    spec = TABLES.get(parts_of)
    boundary = path.parent if boundary is None else boundary
    found: list[str] = []
    files = [path] if os.path.lexists(path) else _parts(path.parent, parts_of, found)
    wanted = None if columns is None else list(columns) + [c for c in (spec.keys if spec else ()) if c not in columns]
    tables = []
    for f in files:
        if not _inside(f, boundary, found):
            continue
        try:
            table = read_arrow(f, wanted)
        except UnreadableFile as exc:
            found.append(f"{f}: unreadable ({exc})")
            continue
        except Exception as exc:  # corrupt, truncated or not parquet: name it, keep the rest
            found.append(f"{f}: unreadable ({type(exc).__name__}: {shown(str(exc), 120)})")
            continue
        table = spec.check(table, f, found) if spec is not None else table
        if table is not None and table.num_rows:
            tables.append(table)
    if not os.path.lexists(path):  # a run cut off before its rows were merged: its journal holds the newest ones
        journal = _journal_table(path.parent, parts_of, files, found, boundary)
        journal = spec.check(journal, journal_path(path.parent, parts_of), found) if spec is not None and journal is not None else journal
        if journal is not None and journal.num_rows:
            tables.append(journal.select([c for c in journal.column_names if wanted is None or c in wanted]))
    table = None
    if tables:
        table = tables[0] if len(tables) == 1 else concat_tables(tables)
        if spec is not None:
            table = spec.drop_duplicates(table, path if len(files) == 1 else path.parent / f"{parts_of}.part-*.parquet", found)
            table = table.select([c for c in table.column_names if columns is None or c not in spec.keys or c in columns])
    problems.extend(p for p in found if p not in problems)
    return table if table is not None and table.num_rows else None


MAX_JOURNAL_BYTES = 256 * 2**20
"""The largest journal read: a child empties it at every part (about once a second), so a real one is far smaller."""


def _journal_table(directory: Path, name: str, parts: list[Path], found: list[str], boundary: Path) -> pa.Table | None:
    """The rows of table `name`'s journal (measure/journal.py) that no part holds, as a table; None when there is no
    journal or it holds nothing new. Read bounded, with the restricted unpickler; a problem says how many rows came
    from it."""
    path = journal_path(directory, name)
    if not os.path.lexists(path) or not _inside(path, boundary, found):
        return None
    try:
        data = read_bounded(path, MAX_JOURNAL_BYTES)
    except (UnreadableFile, OSError) as exc:
        found.append(f"{path}: unreadable ({exc if isinstance(exc, UnreadableFile) else os_problem(exc)})")
        return None
    rows = unwritten_rows(data, parts, found, str(path))
    if not rows:
        return None
    try:
        table = rows_to_table(rows)
    except Exception as exc:
        found.append(f"{path}: unreadable ({type(exc).__name__}: {shown(str(exc), 120)})")
        return None
    found.append(f"{path}: {len(rows):,} row(s) read from the journal of a run cut off before writing them as a part")
    return table


def _stack(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    parts = [df.assign(workload=name) for name, df in frames.items() if not df.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
