"""Contention is measured, not guessed: a busy loop on the workload's core shows up as other
processes' CPU on its cores, the run says it ran contended, and the sampler's process CPU% never
exceeds 100 x the cores the process may use. Linux only (per-core /proc/stat, CPU affinity)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from profiler.measure.sampler import ProcStatReader

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or not os.path.exists("/proc/stat"), reason="needs Linux procfs and CPU affinity")

CORE = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
SPIN = (
    "import os, threading\nos.sched_setaffinity(0, {%d})\n"
    "def spin():\n    while True: pass\n"
    "for _ in range(%d): threading.Thread(target=spin, daemon=True).start()\n"
    "spin()\n"
)


def spinner(threads: int = 1) -> subprocess.Popen:
    """A process that keeps `threads` + 1 threads busy on CORE until killed."""
    return subprocess.Popen([sys.executable, "-c", SPIN % (CORE, threads)])


def pinned(core: int):
    return lambda: os.sched_setaffinity(0, {core})


@pytest.fixture
def busy_loop():
    proc = spinner()
    time.sleep(0.2)
    yield proc
    proc.kill()
    proc.wait()


def test_process_cpu_percent_is_bounded_by_its_cores_at_a_fast_rate():
    """A child with 3 busy threads pinned to one core, read every 5 ms (tick edges at 100 Hz make raw intervals
    jump): never above 100%, and busy on average."""
    child = spinner(threads=2)
    try:
        time.sleep(0.2)
        reader = ProcStatReader(child.pid)
        assert reader.cores == [CORE]
        readings = []
        for _ in range(200):
            time.sleep(0.005)
            r = reader.read()
            assert r is not None
            readings.append(r["proc_cpu_percent"])
        reader.close()
    finally:
        child.kill()
        child.wait()
    assert max(readings) <= 100.0
    assert np.mean(readings) > 20.0  # it ran (shares its core with whatever else runs there)


def test_a_busy_loop_on_the_same_core_is_other_processes_cpu(busy_loop):
    child = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.01)"], preexec_fn=pinned(CORE))
    try:
        time.sleep(0.2)
        reader = ProcStatReader(child.pid)
        others = []
        for _ in range(20):
            time.sleep(0.05)
            others.append(reader.read()["other_cpu_cores"])
        reader.close()
    finally:
        child.kill()
        child.wait()
    assert np.median(others) >= 0.5  # the busy loop holds most of the core; the idle child is not counted


SUITE = """\
name: contended
device: cpu
measure: {warmup_iters: 1, min_iters: 10, min_seconds: 1.0, max_seconds: 30, sample_hz: 50, count_work: false, trace_ops: false}
workloads:
  - name: toy
    type: toy
    params: {first_s: 0.01, step_s: 0.002, steps: 4}
"""


def test_a_run_beside_a_busy_loop_says_it_ran_contended(tmp_path, busy_loop):
    """The run, pinned to the busy loop's core, records contention over its measured window, and the report's first
    lines say so."""
    from profiler.rundir import load_run

    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    env = {"PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-m", "profiler", "run", str(suite), "-o", str(tmp_path / "runs")],
        preexec_fn=pinned(CORE),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    run = load_run(next((tmp_path / "runs").iterdir()))
    contention = run.workloads["toy"].summary.contention
    assert contention.cores == [CORE] and contention.torch_threads == 1
    assert contention.contended is True and contention.other_cpu_cores_median >= 0.2, contention
    page = (run.path / "report.html").read_text()
    assert "<b>Contended</b>" in page and "toy" in page
