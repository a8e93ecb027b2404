"""A local server is the workload, never contention (issue 27): the endpoint workload names the server it talks to
(by `server_pid`, or by the process listening on a loopback base_url's port), the parent's sampler reads that process
tree as the workload's (samples' server_* columns, summary.local_server) and leaves its CPU out of the other processes'.

The server is tests/openai_server.py run as a SEPARATE process (a real other process) with one thread busy on a core
the whole time, so its CPU is plainly visible: a workload that does not declare it reads that core as contention
(the check cannot pass trivially), one that declares it does not, and a later workload of the suite records it alive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from profiler.measure.store import read_frame
from profiler.runmodel import WorkloadSummary as Summary
from tests.conftest import cli_in_process
from workloads.openai_endpoint import listening_pid

ROOT = Path(__file__).resolve().parents[2]
SERVER = """\
import sys, threading
from tests.openai_server import FakeServer
def spin():
    while True:
        pass
threading.Thread(target=spin, daemon=True).start()
with FakeServer(["ok"]) as server:
    print(server.httpd.server_address[1], flush=True)
    sys.stdin.read()
"""

SUITE = """\
name: local
device: cpu
measure: {{max_seconds: 20, sample_hz: 50, count_work: false, trace_ops: false}}
workloads:
  - name: by_port
    type: openai_endpoint
    params: {{base_url: "{url}", model: tiny, timeout_s: 5}}
    load: &load {{pattern: poisson, rate: 20, requests: 30, seed: 1, sizes: {{input: {{fixed: 4}}, output: {{fixed: 5}}}}}}
  - name: undeclared
    type: openai_endpoint
    params: {{base_url: "{url}", model: tiny, timeout_s: 5, find_local_server: false}}
    load: *load
  - name: by_pid
    type: openai_endpoint
    params: {{base_url: "{url}", model: tiny, timeout_s: 5, server_pid: {pid}, find_local_server: false}}
    load: *load
"""


@pytest.fixture(scope="module")
def busy_server():
    proc = subprocess.Popen([sys.executable, "-c", SERVER], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield proc.pid, port
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


def test_the_listening_process_is_found_by_its_port_and_a_free_port_says_why(busy_server):
    pid, port = busy_server
    assert listening_pid(port) == (pid, f"the process listening on port {port}")
    found, why = listening_pid(1)  # port 1: nothing listens there
    assert found is None and why == "no process on this machine listens on port 1"


def test_a_declared_local_server_is_the_workload_and_an_undeclared_one_is_contention(busy_server, tmp_path):
    pid, port = busy_server
    (tmp_path / "suite.yaml").write_text(SUITE.format(url=f"http://127.0.0.1:{port}/v1", pid=pid))
    code, _, err = cli_in_process("run", tmp_path / "suite.yaml", "-o", tmp_path / "runs")
    assert code == 0, err
    (run,) = (tmp_path / "runs").iterdir()
    s = {name: Summary.model_validate_json((run / name / "summary.json").read_text()) for name in ("by_port", "undeclared", "by_pid")}
    samples = {name: pd.concat([read_frame(p) for p in (run / name).glob("samples*.parquet")]) for name in s}

    # found by its port and by its pid; its tree's CPU (the busy core, ~100%) is in the workload's server columns
    for name, how in (("by_port", f"the process listening on port {port}"), ("by_pid", "server_pid")):
        ls, c = s[name].local_server, s[name].contention
        assert ls is not None and ls.own and ls.pid == pid and ls.found_by == how, name
        assert ls.cpu_percent_median is not None and ls.cpu_percent_median >= 30, ls.summary  # a busy thread: a core when quiet, half of one on 2 busy cores
        assert ls.peak_rss_bytes and ls.peak_rss_bytes > 10 * 2**20 and ls.processes_max == 1
        assert samples[name]["server_cpu_percent"].notna().any()
        assert c is not None and c.other_cpu_cores_median is not None and f"pid {pid}" in c.summary
        assert s[name].facts["local_server"].startswith(f"pid {pid} ({how})")

    # the same server, not declared: its busy core is other processes' CPU, and the verdict is contended
    u = s["undeclared"]
    assert u.facts["local_server"] == "none declared (no server_pid; find_local_server: false)"
    assert u.contention is not None and u.contention.contended and u.contention.other_cpu_cores_median is not None
    assert u.contention.other_cpu_cores_median >= 0.3
    # declared, that core is no longer another process's (a quarter of a core less, on either way of naming it)
    for name in ("by_port", "by_pid"):
        assert s[name].contention.other_cpu_cores_median <= u.contention.other_cpu_cores_median - 0.25, (name, s[name].contention.summary)

    # the workload after a declaring one records the server alive beside it, as another process
    other = u.local_server
    assert other is not None and not other.own and other.pid == pid and other.declared_by == "by_port"
    assert other.cpu_percent_median is not None and other.peak_rss_bytes
