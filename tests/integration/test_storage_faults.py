"""Storage faults: a full disk mid-run and corrupt files in a run directory."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys

from tests.conftest import ROOT, run_cli, run_suite_text

SUITE = """\
name: small
device: cpu
measure: {warmup_iters: 0, min_iters: 3, min_seconds: 0, max_seconds: 20, count_work: false, trace_ops: false}
workloads:
  - {name: toy, type: toy, params: {steps: 5}}
"""


def test_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path):
    """RLIMIT_FSIZE makes every write past 1 MiB fail with EFBIG, as a full disk would (ENOSPC):
    the spans and summaries fit, the 5 MB report does not."""
    (tmp_path / "suite.yaml").write_text(SUITE)

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "profiler", "run", str(tmp_path / "suite.yaml"), "-o", str(tmp_path / "runs")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "writing the run failed" in lines[0] and "File too large" in lines[0]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert not (run_dir / "report.html").exists()  # never a truncated report
    assert not list(run_dir.rglob("*.tmp"))
    assert (run_dir / "toy" / "spans.parquet").is_file()  # what was measured is kept


def test_a_full_disk_in_the_child_mid_run_is_recorded_and_the_suite_goes_on(tmp_path):
    """The workload's own writes start failing mid-run (RLIMIT_FSIZE 0, set inside the child by
    the test plugin): its error (naming the write that failed) and info reach the parent through the queue, every
    completed iteration's spans are kept (the journal, read back by the parent), and the next workload runs."""
    suite = SUITE.replace(
        "{name: toy, type: toy, params: {steps: 5}}",
        '{name: full, type: "tests.plugins.faulty:Faulty", params: {mode: disk_full, ok_iters: 40}}\n  - {name: after, type: toy, params: {steps: 3}}',
    ).replace("min_iters: 3", "min_iters: 60")
    _, run = run_suite_text(tmp_path, suite, expect_ok=False)
    full = run.workloads["full"].summary
    assert full.status == "failed" and full.error.phase == "measure"
    assert "File too large" in full.error.reason and "spans.journal" in full.error.reason
    assert any("could not be written as a part" in p and "File too large" in p for p in full.problems)
    assert 40 * 6 <= full.span_count < 60 * 6  # every iteration before the fault (5 steps + the iteration span), not the whole run
    assert run.workloads["after"].summary.status == "ok"
    page = (run.path / "report.html").read_text()
    assert "File too large" in page


def test_report_names_corrupt_files_and_renders_the_rest(tmp_path):
    _, run = run_suite_text(
        tmp_path, SUITE.replace("{name: toy, type: toy, params: {steps: 5}}", "{name: toy, type: toy, params: {steps: 5}}\n  - {name: other, type: toy}")
    )
    spans = run.path / "toy" / "spans.parquet"
    spans.write_bytes(spans.read_bytes()[: len(spans.read_bytes()) // 2])  # truncated
    (run.path / "other" / "summary.json").write_text('{"name": "other", "status":')  # corrupt
    result = run_cli("report", run.path, "-o", tmp_path / "again.html")
    assert result.returncode == 0, result.stderr
    assert "toy/spans.parquet" in result.stderr and "other/summary.json" in result.stderr
    page = (tmp_path / "again.html").read_text()
    assert "could not read" in page and "spans.parquet" in page and "summary.json" in page
    assert "Definitions" in page  # the rest rendered


def test_oversized_suite_is_refused(tmp_path):
    from tests.conftest import assert_one_line_error

    big = tmp_path / "big.yaml"
    big.write_text("name: s\n" + "# padding\n" * 200_000)
    assert_one_line_error(run_cli("validate", big), "over the", "limit")


def test_report_of_a_run_whose_profiler_died_says_so(tmp_path):
    """SIGKILL to the parent leaves run.json `running`; the report tells a dead profiler from a live one."""
    import json
    import socket

    _, run = run_suite_text(tmp_path, SUITE)
    info = json.loads((run.path / "run.json").read_text())
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    info.update(status="running", profiler_pid=int(gone), host=socket.gethostname())
    (run.path / "run.json").write_text(json.dumps(info))
    assert run_cli("report", run.path).returncode == 0
    assert f"profiler process (pid {gone}) is gone" in (run.path / "report.html").read_text()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "profiler", "run"])  # stands in for a live profiler
    try:
        info["profiler_pid"] = live.pid
        (run.path / "run.json").write_text(json.dumps(info))
        assert run_cli("report", run.path).returncode == 0
        assert f"in progress (profiler pid {live.pid})" in (run.path / "report.html").read_text()
    finally:
        live.kill()
        live.wait()
