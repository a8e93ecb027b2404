"""Faults of a workload's process and of the profiler itself: a child that exits without reporting its end is a failure;
a workload's own processes end with it and are named; its output goes to capped files, never the terminal; the
profiler killed with SIGKILL takes its children with it, its sampler rows on disk to the last second, and `report`
says the run was cut off; a terminal's Ctrl-C to the whole group stops the child in order; Ctrl-C while the report is
written says what is kept."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from profiler.run.output import OUTPUT_CAP_BYTES, TAIL_BYTES
from tests.conftest import ROOT, cli_in_process, run_cli, run_suite_text

FAULTY = "tests.plugins.faulty:Faulty"
MEASURE = "measure: {warmup_iters: 1, min_iters: 6, min_seconds: 0, max_seconds: 1, hang_grace_s: 1, sample_hz: 20, count_work: false, trace_ops: false}"
SUITE = f"""\
name: child-faults
device: cpu
{MEASURE}
workloads:
  - {{name: exit0, type: "{FAULTY}", params: {{mode: exit, exit_status: 0, ok_iters: 2}}}}
  - {{name: exit3, type: "{FAULTY}", params: {{mode: exit, exit_status: 3, ok_iters: 2}}}}
  - {{name: orphan, type: "{FAULTY}", params: {{mode: orphan, ok_iters: 1}}}}
  - {{name: flood, type: "{FAULTY}", params: {{mode: flood, ok_iters: 1}}}}
  - {{name: memory, type: "{FAULTY}", params: {{mode: memory, ok_iters: 3}}}}
  - {{name: slow, type: "{FAULTY}", params: {{fail_in: nowhere, steps: 30, step_s: 0.1}}}}
  - {{name: linger, type: "{FAULTY}", params: {{mode: linger, ok_iters: 1}}}}
  - {{name: exit-in-teardown, type: "{FAULTY}", params: {{mode: exit, fail_in: teardown}}}}
"""


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory):
    return run_suite_text(tmp_path_factory.mktemp("child-faults"), SUITE, timeout=240, expect_ok=False)


@pytest.mark.parametrize("name, status", [("exit0", 0), ("exit3", 3)])
def test_a_child_that_exits_without_reporting_its_end_is_a_failure(fault_run, name, status):
    result, run = fault_run
    assert result.returncode == 1, result.stderr
    w = run.workloads[name]
    assert w.status == "failed"
    assert f"exited with status {status} in phase 'measure' without reporting its end" in w.summary.error.reason
    assert any(line.startswith(f"failed: {name}: failed in measure") for line in result.stderr.splitlines())
    assert not (w.path / "child.json").exists()
    # the warmup and the measured iteration before the one it died in (from its parts or, written since, its journal)
    assert set(w.spans.loc[w.spans["phase"] == "step", "iteration"]) == {0, 1}


def test_a_child_that_dies_in_teardown_is_failed_in_teardown(fault_run):
    """Its last stage change may die in the queue's feeder thread with it: the stage file says where it was."""
    _, run = fault_run
    w = run.workloads["exit-in-teardown"]
    assert w.status == "failed" and w.summary.error.phase == "teardown"
    assert "in phase 'teardown' without reporting its end" in w.summary.error.reason
    assert not (w.path / ".stage").exists()


def test_threads_and_processes_left_running_do_not_hold_the_child(fault_run):
    """A non-daemon thread and a multiprocessing child would make the interpreter wait at exit: the child leaves without
    waiting (no "hung"), and the process is stopped and named."""
    _, run = fault_run
    w = run.workloads["linger"]
    assert w.status == "ok", w.summary.error
    assert any("were still running after it ended and were stopped" in p for p in w.summary.problems)


def test_a_memory_error_keeps_every_completed_iteration(fault_run):
    _, run = fault_run
    w = run.workloads["memory"]
    assert w.status == "failed" and w.summary.error.reason.startswith("out of memory: MemoryError")
    steps = w.spans[w.spans["phase"] == "step"]
    assert set(steps["iteration"]) >= {0, 1, 2, 3}  # the warmup and the 3 measured iterations before the fault


def test_a_workload_that_keeps_marking_spans_is_never_killed_as_hung(fault_run):
    """Iterations of 3 s (spans every 0.1 s) under a hang limit of 2 s (max_seconds + hang_grace_s): each runs to its end
    (test_failures.py: one that stops marking spans is killed, and the verdict says when its last span ended)."""
    _, run = fault_run
    slow = run.workloads["slow"]
    assert slow.status == "ok", slow.summary.error
    assert (slow.measured.groupby("iteration")["phase"].count() == 31).all()  # 30 steps and the iteration span


def test_the_workloads_own_processes_end_with_it_and_are_named(fault_run):
    _, run = fault_run
    w = run.workloads["orphan"]
    assert w.status == "ok"
    (problem,) = [p for p in w.summary.problems if "were still running after it ended" in p]
    assert "2 process(es)" in problem and "sleep 600" in problem
    pids = [int(pid) for pid in re.findall(r"pid (\d+): ", problem)]
    assert len(pids) == 2
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_output_goes_to_capped_files_not_the_terminal(fault_run):
    result, run = fault_run
    w = run.workloads["flood"]
    assert w.status == "ok"
    log = (w.path / "stdout.log").read_bytes()
    assert OUTPUT_CAP_BYTES < len(log) < OUTPUT_CAP_BYTES + TAIL_BYTES + 200
    assert log.startswith(b"x" * 999 + b"\n")
    assert log.rstrip().endswith(b"the last line of the flood")
    assert b"bytes left out here" in log
    assert any("bytes to stdout" in p and "left out" in p for p in w.summary.problems)
    assert "xxxxxxxxxx" not in result.stdout + result.stderr
    assert len(result.stdout) < 50_000


def start(tmp: Path, suite: str, ready: str) -> tuple[subprocess.Popen, Path]:
    """Start `suite` in a session of its own (as a terminal starts a job) and return once `ready` exists under the run
    directory."""
    (tmp / "suite.yaml").write_text(suite)
    proc = subprocess.Popen(
        [sys.executable, "-m", "profiler", "run", str(tmp / "suite.yaml"), "-o", str(tmp / "runs")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = list((tmp / "runs").glob(f"*/{ready}"))
        if found:
            time.sleep(1.5)
            return proc, next(p for p in found[0].parents if p.parent == tmp / "runs")
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("the run never started measuring")


def session_members(sid: int) -> list[int]:
    out = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (OSError, psutil.Error):
            pass
    return out


LONG = f"""\
name: long-faults
device: cpu
measure: {{warmup_iters: 0, min_iters: 1000, min_seconds: 60, max_seconds: 120, sample_hz: 50, count_work: false, trace_ops: false}}
workloads:
  - {{name: first, type: "{FAULTY}", params: {{mode: orphan, fail_in: run_once, ok_iters: 1, step_s: 0.02}}}}
"""


def test_the_profiler_killed_takes_its_children_and_report_says_cut_off(tmp_path):
    proc, run_dir = start(tmp_path, LONG, "first/spans.part-*.parquet")
    assert len(session_members(proc.pid)) >= 4  # the profiler, its child, the child's sleep and its forked copy
    killed_ns = time.monotonic_ns()
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while session_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = session_members(proc.pid)
    for pid in left:  # never leave them behind, whatever the verdict
        os.kill(pid, signal.SIGKILL)
    assert not left, "processes outlived the profiler"
    samples = pd.concat([pd.read_parquet(p) for p in sorted((run_dir / "first").glob("samples.part-*.parquet"))])
    assert killed_ns - samples["t_ns"].max() < 2.5e9  # written at least every second (allowing a busy machine a second more)
    code, out, err = cli_in_process("report", run_dir, "-o", tmp_path / "report.html")
    assert code == 0, err
    assert "cut off" in err
    page = (tmp_path / "report.html").read_text()
    assert "The run was cut off" in page and "was running when its profiler stopped" not in page


SHORT = SUITE.split("workloads:")[0].replace("child-faults", "short") + "workloads:\n  - {name: toy, type: toy, params: {steps: 3}}\n"


def test_ctrl_c_to_the_whole_group_loses_no_child_record(tmp_path):
    proc, run_dir = start(tmp_path, LONG.replace("mode: orphan, fail_in: run_once", "fail_in: nowhere"), "first/spans.part-*.parquet")
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends it: to every process of the foreground group
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Traceback" not in out
    child = json.loads((run_dir / "first" / "child.json").read_text())
    assert [stage["name"] for stage in child["stages"]][-1] == "teardown"
    error = json.loads((run_dir / "first" / "error.json").read_text())
    assert "interrupted by the user" in error["reason"]
    assert (run_dir / "report.html").is_file()


def test_ctrl_c_while_the_report_is_written_says_what_is_kept(tmp_path, monkeypatch):
    import reports.html_report as html_report

    def interrupted_report(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the profiler's own handler turns it into its interruption
        time.sleep(5)
        raise AssertionError("the signal did not interrupt the report")

    monkeypatch.setattr(html_report, "write_report", interrupted_report)
    (tmp_path / "suite.yaml").write_text(SHORT)
    code, out, err = cli_in_process("run", tmp_path / "suite.yaml", "-o", tmp_path / "runs")
    assert code == 130, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert "interrupted while the report was written: the run itself is kept in" in err
    assert f"python -m profiler report {run_dir}" in err
    assert "nothing was measured" not in err
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    assert run_cli("report", run_dir).returncode == 0


SERVING = """\
name: serving-death
device: cpu
measure: {warmup_iters: 0, min_iters: 1, min_seconds: 0, max_seconds: 120, count_work: false, trace_ops: false}
workloads:
  - name: toy
    type: toy_serve
    params: {token_s: 0.05}
    load: {pattern: constant, rate: 10, requests: 400, sizes: {input: {fixed: 4}, output: {fixed: 5}}}
"""


def test_a_child_killed_during_a_load_keeps_the_requests_that_ended(tmp_path):
    proc, run_dir = start(tmp_path, SERVING, "toy")
    deadline = time.monotonic() + 60
    child = None
    while child is None and time.monotonic() < deadline:
        time.sleep(0.5)
        child = next((p for p in psutil.Process(proc.pid).children() if "spawn_main" in " ".join(p.cmdline())), None)
    time.sleep(8)  # it imports torch and serves: some requests end, and reach the journal within a second
    child.kill()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    requests = pd.read_parquet(run_dir / "toy" / "requests.parquet")
    assert (requests["status"] == "finished").sum() >= 5
    summary = json.loads((run_dir / "toy" / "summary.json").read_text())
    assert summary["status"] == "failed" and "killed by SIGKILL" in summary["error"]["reason"]
    assert any("read back from its journal" in p for p in summary["problems"])
    assert not (run_dir / "toy" / "requests.journal").exists()
