"""Ctrl-C and SIGTERM to the parent: children stopped, everything flushed, run marked interrupted,
a report still written, exit 130 / 143; a second signal exits at once without corrupt files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT

SUITE = """\
name: long
device: cpu
measure: {warmup_iters: 0, min_iters: 1000, min_seconds: 60, max_seconds: 120, count_work: false, trace_ops: false}
workloads:
  - {name: first, type: toy, params: {steps: 20, step_s: 0.005}}
  - {name: second, type: toy, params: {steps: 20}}
"""


def start(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    (tmp_path / "suite.yaml").write_text(SUITE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "profiler", "run", str(tmp_path / "suite.yaml"), "-o", str(tmp_path / "runs")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until spans of the first workload are on disk
        parts = list((tmp_path / "runs").glob("*/first/spans.part-*.parquet"))
        if parts:
            time.sleep(0.5)
            return proc, parts[0].parent.parent
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the run never started measuring")


def readable(run_dir: Path) -> None:
    for f in run_dir.rglob("*.json"):
        json.loads(f.read_text())
    for f in run_dir.rglob("*.parquet"):
        pd.read_parquet(f)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_flushes_marks_and_reports(tmp_path, sig, code):
    proc, run_dir = start(tmp_path)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, (out, err)
    assert "Traceback" not in err
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted"
    assert [w["status"] for w in info["workloads"]] == ["interrupted", "pending"]
    assert (run_dir / "report.html").is_file()
    spans = pd.read_parquet(run_dir / "first" / "spans.parquet")
    assert (spans["phase"] == "step").sum() >= 20
    error = json.loads((run_dir / "first" / "error.json").read_text())
    assert "interrupted" in error["reason"]
    readable(run_dir)


def test_second_signal_exits_at_once(tmp_path):
    proc, run_dir = start(tmp_path)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    t = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert time.monotonic() - t < 10
    assert proc.returncode in (130, 143)
    readable(run_dir)  # nothing half-written: every file there parses
