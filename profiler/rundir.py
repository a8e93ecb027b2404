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
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import ValidationError

from .characterize.analysis import MEASURED_COLUMNS, MEASURED_RULE_COLUMNS, measured_columns, measured_mask, measured_spans
from .measure.store import ENGINE, REQUESTS, SAMPLES, SPANS, UnreadableFile, concat_tables, load_json, read_arrow, read_bounded, to_frame
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
MAX_CONFIG_BYTES = 4 * 2**20
"""The largest config.resolved.yaml read: the suite (at most 1 MB, suite/yaml_source.py MAX_SUITE_BYTES) with its
defaults filled in and its sweeps written out, a few hundred bytes per point."""
MISSING_WHY = {
    Status.PENDING: "the run stopped before this workload started",
    Status.RUNNING: "the workload was running when its profiler stopped",
    Status.NOT_FINISHED: "the profiler failed while this workload ran",
}


@dataclass
class WorkloadRun:
    """One workload (or sweep point) of a run: its typed summary, its error, and its tables read on demand.

    Its files must lie inside `root`, the run directory (None: inside its own directory, `path`). A workload whose
    directory cannot be read at all (its `dir` leads outside the run) has `readable` False: its tables are empty."""

    name: str
    path: Path
    summary: WorkloadSummary
    error: dict[str, Any] | None
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
        return self._measured

    @property
    def iterations(self) -> pd.DataFrame:
        """The `iteration` spans, warmup included: where each iteration began and ended."""
        if self._iterations is None:
            self._read_measured()
        return self._iterations

    def _read_measured(self) -> None:
        if not self.readable:
            self._measured, self._iterations = pd.DataFrame(), pd.DataFrame()
            return
        if "spans" in self.__dict__:  # already read in full: filter that rather than read again
            spans = self.spans[measured_columns(self.spans.columns)]
            self._iterations = spans.loc[spans["phase"] == ITERATION] if not spans.empty else spans
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
        kv_bytes_total, preempted. Empty for a workload without a load (or an engine that reports none)."""
        return self._table(ENGINE)

    @cached_property
    def repeats(self) -> list[WorkloadRun]:
        """With measure.repeats > 1, each repeat as a workload of its own (`repeat-<k>/`, profiler/run/repeats.py), in
        order; [] for a run without repeats. This workload's own tables and summary pool the completed repeats.
        A repeat whose directory resolves outside the run (a symlink) is not read: its problem is this workload's."""
        out = []
        for k, info in enumerate(self.summary.repeats or []):
            path = self.path / info.dir
            where = f"{self.path / SUMMARY_JSON}: repeats[{k}].dir {_shown(info.dir)!r}"
            readable = self.readable and _inside(path, self.boundary, self.problems, where)
            summary = _read_summary(path / SUMMARY_JSON, SCHEMA_VERSION, self.problems, info.status, self.boundary) if readable else None
            if summary is None:
                s = self.summary
                summary = WorkloadSummary(
                    name=s.name, type=s.type, plugin=s.plugin, status=info.status, device=s.device, seed=s.seed, declaration=s.declaration
                )
            error = _read_json(path / ERROR_JSON, self.problems, missing_ok=True, root=self.boundary) if readable else None
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
        data = _read_json(self.path / CALIBRATION_JSON, self.problems, missing_ok=True, root=self.path)
        calibration = _validate(Calibration, data, self.path / CALIBRATION_JSON, self.problems) if data is not None else None
        return calibration or Calibration(unavailable=f"{CALIBRATION_JSON} is missing" if data is None else f"{CALIBRATION_JSON} is unreadable")

    @cached_property
    def sweeps(self) -> dict[str, SweepGroup]:
        data = _read_json(self.path / SWEEPS_JSON, self.problems, missing_ok=True, root=self.path) or {}
        out = {}
        for group, v in data.items():
            sweep = _validate(SweepGroup, v, f"{self.path / SWEEPS_JSON}: {_shown(group)}", self.problems)
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
        return list(dict.fromkeys(_escaped(p) for p in self.problems + [p for w in self.workloads.values() for p in w.problems]))


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
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a run directory")
    problems: list[str] = []
    raw_info = _read_json(root / RUN_JSON, problems, root=root) or {}
    version = schema_version(raw_info, str(root / RUN_JSON))
    if version == 1:
        raw_info = run_info_v1(raw_info)
    env = _checked_env(_read_json(root / ENV_JSON, problems, root=root) or {}, root / ENV_JSON, problems)
    config = _read_yaml(root / CONFIG_YAML, problems, root) or {}
    raw_entries = raw_info.pop("workloads", None)
    if raw_entries is not None and not isinstance(raw_entries, list):
        problems.append(f"{root / RUN_JSON}: workloads is a JSON {_json_type(raw_entries)}, expected a list; read the directories that hold a summary")
        raw_entries = None
    if not raw_entries:  # no run.json: the directories that hold a summary
        raw_entries = _discovered(root, problems)
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
            problems.append(f"{root / RUN_JSON}: workloads[{k}] repeats the name {_shown(w.name)!r} of an earlier entry; left out")
            continue
        workloads[w.name] = w
    entries = {e.name: e for e in reversed([_entry_of(raw) for raw in raw_entries]) if e is not None and e.name in workloads and workloads[e.name].readable}
    info.workloads = [entries[name] for name in workloads if name in entries]
    return Run(root, info, env, config, workloads, problems)


def _discovered(root: Path, problems: list[str]) -> list[dict[str, Any]]:
    """Entries for the directories of `root` that hold a summary.json (a run without a readable run.json); a symlink
    leading outside the run directory is named and not followed."""
    out = []
    for p in sorted(root.iterdir()):
        if p.is_symlink() and not _inside(p, root, problems):
            continue
        if p.is_dir() and os.path.lexists(p / SUMMARY_JSON):
            out.append({"name": p.name, "dir": p.name, "type": "unknown"})
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
        problem = f"{where} ({_shown(name)}): {_first_error(exc)}; the workload is not read"
        status = raw.get("status") if isinstance(raw.get("status"), str) and raw["status"] in {s.value for s in Status} else Status.NOT_FINISHED
        kind = raw.get("type") if isinstance(raw.get("type"), str) else "unknown"
        summary = WorkloadSummary(name=name, type=kind, plugin="unknown", status=status, device=info.device, seed=0)
        return WorkloadRun(name, root, summary, None, [problem], root, readable=False)
    wdir = root / entry.dir
    wproblems: list[str] = []
    if not _inside(wdir, root, wproblems, f"{where}.dir {_shown(entry.dir)!r}", unread="the workload is not read"):
        return WorkloadRun(entry.name, wdir, _placeholder(entry, info), None, wproblems, root, readable=False)
    summary = _read_summary(wdir / SUMMARY_JSON, version, wproblems, entry.status, root) or _placeholder(entry, info)
    error = _read_json(wdir / ERROR_JSON, wproblems, missing_ok=True, root=root)
    return WorkloadRun(entry.name, wdir, summary, error, wproblems, root)


def _has_table(directory: Path, name: str) -> bool:
    return os.path.lexists(directory / f"{name}.parquet") or any(directory.glob(f"{name}.part-*.parquet"))


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
            problems.append(f"{path}: unreadable as a schema-1 summary ({type(exc).__name__}: {_shown(str(exc), 120)})")
            return None
    return _validate(WorkloadSummary, data, path, problems, keep=("declaration",))


def _placeholder(entry: RunEntry, info: RunInfo) -> WorkloadSummary:
    """A workload without a readable summary: its entry's status, nothing measured."""
    return WorkloadSummary(name=entry.name, type=entry.type, plugin="unknown", status=entry.status, device=info.device, seed=0)


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
        problems.append(f"{where}: {text}; " + (f"read as {defaults[key]!r}" if key in defaults else f"read without {_shown(key)!r}"))
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
    loc = ".".join(_shown(str(part), 40) for part in e["loc"])
    msg = str(e["msg"]).removeprefix("Value error, ")
    return f"{loc}: {_shown(msg, 200)}" if loc else _shown(msg, 200)


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return _error_text(exc.errors()[0])
    return f"{type(exc).__name__}: {_shown(str(exc), 120)}"


def _shown(text: str, limit: int = 80) -> str:
    """User text inside a problem line: control characters escaped, cut to `limit` characters."""
    text = _escaped(str(text))
    return text if len(text) <= limit else text[:limit] + "..."


def _escaped(text: str) -> str:
    return text if text.isprintable() else "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _inside(path: Path, root: Path | None, problems: list[str], where: Any = None, unread: str = "not followed") -> bool:
    """True when `path` resolves (symlinks followed) inside `root` (or `root` is None); else a problem, False."""
    if root is None:
        return True
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
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
        data, nonfinite = load_json(path)
    except FileNotFoundError:
        if not missing_ok:
            problems.append(f"{path}: missing")
        return None
    except UnreadableFile as exc:
        problems.append(f"{path}: unreadable ({exc})")
        return None
    except OSError as exc:
        problems.append(f"{path}: unreadable ({exc.strerror or type(exc).__name__})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}: unreadable (a JSON {_json_type(data)} where an object is expected)")
        return None
    if nonfinite:
        problems.append(f"{path}: {nonfinite} value(s) that are not finite numbers (NaN, Infinity) read as missing")
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
        problems.append(f"{path}:{exc.line}: unreadable ({_shown(exc.problem, 200)})")
        return None
    except (OSError, ValueError, yaml.YAMLError) as exc:
        problems.append(f"{path}: unreadable ({type(exc).__name__})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}: unreadable (a YAML {_json_type(data)} where a mapping is expected)")
        return None
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
            problems.append(f"{path}: {_shown(key)} is a JSON {_json_type(value)}, expected {ENV_WORDS[want]}; read without it")
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
    iterations = to_frame(table.filter(pc.equal(table["phase"], ITERATION)))
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
    files = [path] if os.path.lexists(path) else sorted(path.parent.glob(f"{parts_of}.part-*.parquet"))
    wanted = None if columns is None else list(columns) + [c for c in (spec.keys if spec else ()) if c not in columns]
    tables = []
    found: list[str] = []
    for f in files:
        if not _inside(f, boundary, found):
            continue
        try:
            table = read_arrow(f, wanted)
        except UnreadableFile as exc:
            found.append(f"{f}: unreadable ({exc})")
            continue
        except Exception as exc:  # corrupt, truncated or not parquet: name it, keep the rest
            found.append(f"{f}: unreadable ({type(exc).__name__}: {_shown(str(exc), 120)})")
            continue
        table = spec.check(table, f, found) if spec is not None else table
        if table is not None and table.num_rows:
            tables.append(table)
    table = None
    if tables:
        table = tables[0] if len(tables) == 1 else concat_tables(tables)
        if spec is not None:
            table = spec.drop_duplicates(table, path if len(files) == 1 else path.parent / f"{parts_of}.part-*.parquet", found)
            table = table.select([c for c in table.column_names if columns is None or c not in spec.keys or c in columns])
    problems.extend(p for p in found if p not in problems)
    return table if table is not None and table.num_rows else None


# ---------------------------------------------------------------- the tables' columns


@dataclass(frozen=True)
class TableSpec:
    """The columns a table of the run directory has as its writer gives them.

    `required`: columns without which the file is not this table (a foreign file: left out whole); `not_null`: of
    those, the ones every row has a value in (a row without one is left out); `types`: the kind of every known column
    (int, number, bool, text, ints: a list of integers, value: any single value), which readers rely on; `keys`: what identifies a row (rows
    repeating a key are duplicates, left out). Any other column (a plugin's own span attribute) is kept as it is."""

    name: str
    required: tuple[str, ...]
    not_null: tuple[str, ...]
    types: dict[str, str]
    keys: tuple[str, ...]
    patterns: tuple[tuple[Any, str], ...] = ()
    fill: tuple[tuple[str, str | None], ...] = ()
    """Columns a file may lack that readers index, added empty: (name, what that means; None: nothing, the writer may
    leave it out)."""
    primary: str = ""
    """A not-null key column whose values are nearly unique in a real table (drop_duplicates)."""

    def kind_of(self, column: str) -> str | None:
        kind = self.types.get(column)
        if kind is None:
            kind = next((k for pattern, k in self.patterns if pattern.match(column)), None)
        return kind

    def check(self, table: pa.Table, path: Path, problems: list[str]) -> pa.Table | None:
        """`table` with its columns of the expected kinds and its incomplete rows left out (a problem line each);
        None when it lacks a required column."""
        table = table.replace_schema_metadata(None)  # pandas metadata (an index column, dtypes) is not the writer's
        table = table.drop_columns([c for c in table.column_names if c.startswith("__index_level_")])
        missing = [c for c in self.required if c not in table.column_names]
        if missing:
            article = "an" if self.name[0] in "aeiou" else "a"
            problems.append(f"{path}: not {article} {self.name} table (no column {', '.join(map(repr, missing))}); left out")
            return None
        for name in list(table.column_names):
            column = table[name]
            kind = self.kind_of(name)
            if kind is None:
                continue
            converted, done = _convert(column, kind)
            if converted is not column:
                table = table.set_column(table.column_names.index(name), name, converted)
            if done is not None:
                kind_ok = converted.type == column.type
                problems.append(f"{path}: column {_shown(name)!r}" + ("" if kind_ok else f" is {column.type}, expected {KIND_WORDS[kind]}") + f": {done}")
        for name, why in self.fill:
            if name not in table.column_names:
                if why is not None:
                    problems.append(f"{path}: no column {name!r}; {why}")
                table = table.append_column(name, pa.nulls(table.num_rows, KIND_TYPES[self.types[name]]))
        return self._complete_rows(table, path, problems)

    def _complete_rows(self, table: pa.Table, path: Path, problems: list[str]) -> pa.Table:
        """`table` without the rows missing a value (null, or a float NaN) in a `not_null` column."""
        if not table.num_rows:
            return table
        valid = None
        for c in self.not_null:
            ok = pc.is_valid(table[c])
            if pa.types.is_floating(table[c].type):
                ok = pc.and_(ok, pc.invert(pc.is_nan(table[c])))
            valid = ok if valid is None else pc.and_(valid, ok)
        dropped = table.num_rows - (pc.sum(valid).as_py() or 0) if valid is not None else 0
        if dropped:
            problems.append(f"{path}: {dropped:,} row(s) without a value in {', '.join(self.not_null)} left out")
            table = table.filter(pc.fill_null(valid, False))
        return table

    def drop_duplicates(self, table: pa.Table, where: Path, problems: list[str]) -> pa.Table:
        """`table` without the rows that repeat an earlier row's key (a problem line when there are any).

        Only rows sharing a value of `primary` (a timestamp or index, nearly unique in a real table) can be duplicates,
        so the full comparison runs on those alone: a million spans cost one sort."""
        keys = [c for c in self.keys if c in table.column_names]
        if self.primary not in table.column_names or table.num_rows < 2:
            return table
        primary = table[self.primary].to_numpy()
        ordered = np.sort(primary)
        repeated = ordered[1:][ordered[1:] == ordered[:-1]]
        if not len(repeated):
            return table
        rows = np.flatnonzero(np.isin(primary, repeated))
        sub = table.take(pa.array(rows)).select(keys)
        duplicated = pd.DataFrame({c: sub[c].to_numpy(zero_copy_only=False) for c in keys}).duplicated().to_numpy()
        if not duplicated.any():
            return table
        keep = np.ones(table.num_rows, dtype=bool)
        keep[rows[duplicated]] = False
        problems.append(f"{where}: {int(duplicated.sum()):,} duplicated row(s) (the same {', '.join(keys)} as an earlier row) left out")
        return table.filter(pa.array(keep))


KIND_WORDS = {"int": "integers", "number": "numbers", "bool": "true/false", "text": "text", "ints": "lists of integers", "value": "single values"}
_MEMORY_BYTES = re.compile(r"^memory_\w+_bytes$")

TABLES = {
    SPANS: TableSpec(
        "spans",
        required=("iteration", "warmup", "phase", "start_ns", "end_ns", "units"),
        not_null=("iteration", "warmup", "phase", "start_ns", "end_ns", "units"),
        types={
            "iteration": "int",
            "warmup": "bool",
            "phase": "text",
            "index": "int",
            "start_ns": "int",
            "end_ns": "int",
            "units": "number",
            "device_s": "number",
            "error": "text",
            "repeat": "int",
            "sequences": "number",
            "position": "number",
            "state_bytes": "number",
            "deadline_ns": "int",
            "scheduled_ns": "int",
            "staleness_s": "number",
            "obs_ns": "int",
            "finished": "number",
            "tokens": "number",
            "dropped": "number",
            "request_id": "value",
            "condition": "text",
        },
        keys=("repeat", "iteration", "index", "phase", "start_ns", "end_ns"),
        patterns=((_MEMORY_BYTES, "number"),),
        fill=(("error", "read as no span raised"),),
        primary="start_ns",
    ),
    SAMPLES: TableSpec(
        "samples",
        required=("t_ns",),
        not_null=("t_ns",),
        types={"t_ns": "int", "repeat": "int"},
        keys=("repeat", "t_ns"),
        patterns=((re.compile(r"^(?!t_ns$).*"), "number"),),
        primary="t_ns",
    ),
    REQUESTS: TableSpec(
        "requests",
        required=("index", "measured", "status", "arrival_ns", "sent_ns", "scheduled_ns", "token_ns", "finished_ns"),
        not_null=("index", "measured", "status"),
        types={
            "index": "int",
            "measured": "bool",
            "status": "text",
            "arrival_ns": "int",
            "sent_ns": "int",
            "scheduled_ns": "int",
            "finished_ns": "int",
            "token_ns": "ints",
            "input_tokens": "int",
            "output_tokens_requested": "int",
            "scheduled_send_s": "number",
            "error": "text",
            "slot_wait_s": "number",
            "repeat": "int",
        },
        keys=("repeat", "index"),
        primary="index",
    ),
    ENGINE: TableSpec(
        "engine",
        required=("t_ns",),
        not_null=("t_ns",),
        types={
            "t_ns": "int",
            "running": "number",
            "waiting": "number",
            "kv_bytes_used": "number",
            "kv_bytes_total": "number",
            "preempted": "number",
            "repeat": "int",
        },
        keys=("repeat", "t_ns"),
        primary="t_ns",
        fill=tuple((c, None) for c in ("running", "waiting", "kv_bytes_used", "kv_bytes_total", "preempted")),  # None where not exposed
    ),
}
"""The tables of a workload's directory, as their writers give them: spans (measure/spans.py, run/serve.py), samples
(measure/sampler.py SAMPLE_SCHEMA: every column but t_ns a number), requests and engine (run/serve.py; an engine's
stats are None, or absent, where it exposes none: plugin.py Engine.engine_stats)."""


def _convert(column: pa.ChunkedArray, kind: str) -> tuple[pa.ChunkedArray, str | None]:
    """(`column` as `kind`, what was done to it in words, None when nothing was: it already is that kind). A float
    column's NaN stays (pandas reads it as missing, like null); an infinity, which no writer gives, is read as missing."""
    t = column.type
    if kind == "value":
        if not pa.types.is_nested(t):
            return column, None
        return pa.chunked_array([pa.nulls(len(column), pa.int64())]), f"{len(column) - column.null_count:,} value(s) that are not single values read as missing"
    if kind == "ints":
        if (pa.types.is_list(t) or pa.types.is_large_list(t)) and (pa.types.is_integer(t.value_type) or pa.types.is_null(t.value_type)):
            return column, None
        return _retyped(column, pa.list_(pa.int64()), kind)
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(column), KIND_TYPES[kind])]), None
    if kind == "text" and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return column, None
    if kind == "bool" and pa.types.is_boolean(t):
        return column, None
    if (kind == "int" and pa.types.is_integer(t)) or (kind == "number" and (pa.types.is_integer(t) or pa.types.is_boolean(t))):
        return column, None
    if pa.types.is_floating(t) and kind in ("int", "number"):
        infinite = pc.sum(pc.is_inf(column)).as_py() or 0
        finite = pc.if_else(pc.is_inf(column), pa.scalar(None, t), column) if infinite else column
        done = f"{infinite:,} infinite value(s) read as missing" if infinite else None
        if kind == "number":
            return finite, done
        nan = pc.sum(pc.is_nan(finite)).as_py() or 0
        whole = pc.if_else(pc.is_nan(finite), pa.scalar(None, t), finite) if nan else finite
        cast = pc.cast(whole, pa.int64(), safe=False)
        return cast, f"read as integers{f' ({infinite + nan:,} not finite: missing)' if infinite + nan else ''}"
    return _retyped(column, KIND_TYPES[kind], kind)


def _retyped(column: pa.ChunkedArray, target: pa.DataType, kind: str) -> tuple[pa.ChunkedArray, str]:
    converted, lost = _try_cast(column, target)
    return converted, f"{lost:,} value(s) that are not {KIND_WORDS[kind]} read as missing" if lost else f"read as {KIND_WORDS[kind]}"


KIND_TYPES = {"int": pa.int64(), "number": pa.float64(), "bool": pa.bool_(), "text": pa.string(), "ints": pa.list_(pa.int64())}


def _try_cast(column: pa.ChunkedArray, target: pa.DataType) -> tuple[pa.ChunkedArray, int]:
    """`column` cast to `target`; where that fails as a whole, value by value (a value that cannot be is null)."""
    try:
        return pc.cast(column, target), 0
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    values = []
    lost = 0
    for v in column.to_pylist():
        converted = _cast_value(v, target)
        lost += v is not None and converted is None
        values.append(converted)
    return pa.chunked_array([pa.array(values, type=target)]), lost


def _cast_value(v: Any, target: pa.DataType) -> Any:
    try:
        if pa.types.is_list(target):
            return [int(x) for x in v] if isinstance(v, (list, tuple)) and all(isinstance(x, int) and not isinstance(x, bool) for x in v) else None
        if pa.types.is_string(target):
            return v if isinstance(v, str) else None if isinstance(v, (list, dict, bytes)) else str(v)
        if pa.types.is_boolean(target):
            return v if isinstance(v, bool) else {"true": True, "false": False, "1": True, "0": False}.get(str(v).strip().lower())
        number = float(v) if not isinstance(v, (list, dict, bytes, bool)) else None
        if number is None or not np.isfinite(number):
            return None
        return int(number) if pa.types.is_integer(target) else number
    except (TypeError, ValueError, OverflowError):
        return None


def _stack(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    parts = [df.assign(workload=name) for name, df in frames.items() if not df.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
