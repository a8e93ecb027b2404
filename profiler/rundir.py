"""Read a run directory back: `profiler.load_run(path)`, the public API for notebooks and reports.

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
import yaml

from .store import SAMPLES, SPANS, read_frame

RUN_JSON = "run.json"
ENV_JSON = "env.json"
CONFIG_YAML = "config.resolved.yaml"
SUMMARY_JSON = "summary.json"
CALIBRATION_JSON = "calibration.json"
SWEEPS_JSON = "sweeps.json"
ERROR_JSON = "error.json"


@dataclass
class WorkloadRun:
    name: str
    path: Path
    summary: dict[str, Any]
    error: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)

    @cached_property
    def spans(self) -> pd.DataFrame:
        return _read_table(self.path / f"{SPANS}.parquet", self.problems, parts_of=SPANS)

    @cached_property
    def samples(self) -> pd.DataFrame:
        return _read_table(self.path / f"{SAMPLES}.parquet", self.problems, parts_of=SAMPLES)

    @property
    def status(self) -> str:
        return self.summary.get("status", "failed" if self.error else "unknown")


@dataclass
class Run:
    path: Path
    info: dict[str, Any]
    env: dict[str, Any]
    config: dict[str, Any]
    workloads: dict[str, WorkloadRun]
    problems: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> str | None:
        return self.info.get("baseline")

    @cached_property
    def spans(self) -> pd.DataFrame:
        """Every workload's spans in one frame, with a `workload` column."""
        return _stack({n: w.spans for n, w in self.workloads.items()})

    @cached_property
    def samples(self) -> pd.DataFrame:
        return _stack({n: w.samples for n, w in self.workloads.items()})

    def all_problems(self) -> list[str]:
        return self.problems + [p for w in self.workloads.values() for p in w.problems]


def load_run(path: str | Path) -> Run:
    """Load a run directory written by `python -m profiler run`."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a run directory")
    problems: list[str] = []
    info = _read_json(root / RUN_JSON, problems) or {}
    env = _read_json(root / ENV_JSON, problems) or {}
    config = _read_yaml(root / CONFIG_YAML, problems) or {}
    entries = info.get("workloads") or [
        {"name": p.name, "dir": p.name} for p in sorted(root.iterdir()) if p.is_dir() and (p / SUMMARY_JSON).exists()
    ]
    workloads: dict[str, WorkloadRun] = {}
    for entry in entries:
        wdir = root / entry["dir"]
        wproblems: list[str] = []
        summary = _read_json(wdir / SUMMARY_JSON, wproblems) or {"name": entry["name"], "status": entry.get("status", "unknown")}
        error = _read_json(wdir / ERROR_JSON, wproblems, missing_ok=True)
        workloads[entry["name"]] = WorkloadRun(entry["name"], wdir, summary, error, wproblems)
    return Run(root, info, env, config, workloads, problems)


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


def _read_table(path: Path, problems: list[str], parts_of: str) -> pd.DataFrame:
    """Read a merged table, or the part files a crashed run left behind."""
    files = [path] if path.exists() else sorted(path.parent.glob(f"{parts_of}.part-*.parquet"))
    frames = []
    for f in files:
        try:
            frames.append(read_frame(f))
        except Exception as exc:  # corrupt or truncated: name it, keep the rest
            problems.append(f"{f}: unreadable ({type(exc).__name__}: {str(exc)[:120]})")
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _stack(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    parts = [df.assign(workload=name) for name, df in frames.items() if not df.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
