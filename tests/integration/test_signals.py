"""Ctrl-C and SIGTERM to the parent: children stopped, everything flushed, run marked interrupted,
a report still written, exit 130 / 143; a second signal (a second later) exits at once without corrupt files; a
Ctrl-C after a workload finished measuring keeps its complete results."""

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
from pydantic import Field

from tests.conftest import ROOT
from workloads.toy import ToyWorkload

SUITE = """\
name: long
device: cpu
measure: {warmup_iters: 0, min_iters: 1000, min_seconds: 60, max_seconds: 120, count_work: false, trace_ops: false}
workloads:
  - {name: first, type: toy, params: {steps: 20, step_s: 0.005}}
  - {name: second, type: toy, params: {steps: 20}}
"""


def start(tmp_path: Path, suite: str = SUITE, ready: str = "first/spans.part-*.parquet") -> tuple[subprocess.Popen, Path]:
    """Start `suite` and return once a file matching `ready` (under the run directory) exists."""
    (tmp_path / "suite.yaml").write_text(suite)
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
    while time.monotonic() < deadline:  # by default: until spans of the first workload are on disk
        found = list((tmp_path / "runs").glob(f"*/{ready}"))
        if found:
            time.sleep(0.5)
            return proc, next(p for p in found[0].parents if p.parent == tmp_path / "runs")
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


def test_one_signal_delivered_twice_is_one_interruption(tmp_path):
    """`timeout -s INT` and a terminal's Ctrl-C signal the process and its group: the parent can get the same signal
    twice within milliseconds. That is one interruption: the run is still marked, kept and reported."""
    proc, run_dir = start(tmp_path)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert (run_dir / "report.html").is_file() and (run_dir / "first" / "spans.parquet").is_file()


def test_second_signal_exits_at_once(tmp_path):
    proc, run_dir = start(tmp_path)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.4)  # later than SAME_INTERRUPTION_S (the user pressed Ctrl-C again), while the first is being handled
    t = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t < 10
    assert proc.returncode in (130, 143)
    readable(run_dir)  # nothing half-written: every file there parses
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"  # never taken for a profiler killed
    assert "interrupted again: stopped at once" in err or "interrupted: the run directory is marked interrupted" in err


class SlowPasses(ToyWorkload):
    """The toy, whose calls after its measured loop (the untimed counting and traced passes) first leave a marker file
    in its directory, then sleep: a window in which to press Ctrl-C after the measurement completed."""

    class Params(ToyWorkload.Params):
        measured_calls: int = Field(4, description="warmup_iters + min_iters of the suite (min_seconds 0)")

    def setup(self, ctx) -> None:
        super().setup(ctx)
        self.workdir, self.calls = Path(ctx.workdir), 0

    def run_once(self, mark) -> None:
        self.calls += 1
        if self.calls > self.p.measured_calls:
            (self.workdir / "untimed-pass-started").touch()
            time.sleep(120)
        super().run_once(mark)


LATE = """\
name: late
device: cpu
measure: {warmup_iters: 1, min_iters: 3, min_seconds: 0, max_seconds: 30, count_work: true, trace_ops: true}
workloads:
  - {name: first, type: toy, params: {steps: 5}}
  - {name: second, type: "tests.integration.test_signals:SlowPasses", params: {steps: 5, step_s: 0.002}}
  - {name: third, type: toy}
"""


def test_ctrl_c_after_measuring_keeps_the_workload_ok_and_compared(tmp_path):
    """Issue 12: a Ctrl-C during a workload's untimed passes no longer marks it "interrupted during phase 'done'" and
    drops it: its measured loop completed, so it stays ok and in the differences; what it lost is stated; the run is
    still interrupted (130)."""
    proc, run_dir = start(tmp_path, LATE, ready="second/untimed-pass-started")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "failed: second" not in err
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted" and info["workloads"][2]["status"] == "pending"
    summary = json.loads((run_dir / "second" / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["error"] is None and not (run_dir / "second" / "error.json").exists()
    assert summary["loop"]["measured_iters"] == 3 and summary["metrics"]["e2e_s"]["count"] == 3
    why = "interrupted by the user during 'count_work', after the measured loop completed"
    assert summary["unavailable"]["work"] == f"{why}: the counting pass did not finish"
    assert summary["unavailable"]["operator_mix"] == f"{why}: the traced pass did not finish"
    assert f"{why}: the timed results are complete; work (FLOPs, bytes, MFU, MBU) and the operator mix are missing" in summary["problems"]
    diffs = [d for d in json.loads((run_dir / "differences.json").read_text()) if d["workload"] == "second"]
    e2e = next(d for d in diffs if d["characteristic"] == "latency_e2e")
    assert e2e["ratio"] is not None and e2e["verdict"] not in ("unavailable", "not comparable"), e2e
    assert (run_dir / "report.html").is_file()
    readable(run_dir)


SERVING = """\
name: serving
device: cpu
measure: {max_seconds: 120, min_seconds: 0, sample_hz: 20}
workloads:
  - name: toy
    type: toy_serve
    params: {token_s: 0.05}
    load: {pattern: constant, rate: 10, requests: 400, sizes: {input: {fixed: 4}, output: {fixed: 5}}}
"""


def test_ctrl_c_during_a_load_keeps_every_request_recorded(tmp_path):
    proc, run_dir = start(tmp_path, SERVING, ready="toy")
    time.sleep(8)  # the child imports torch and starts sending: some requests finished
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    requests = pd.read_parquet(run_dir / "toy" / "requests.parquet")
    counts = requests["status"].value_counts().to_dict()
    assert counts.get("finished", 0) >= 5 and counts["not_sent"] > 300
    assert set(counts) <= {"finished", "interrupted", "not_sent"}
    summary = json.loads((run_dir / "toy" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["serving"]["status_counts"] == counts
