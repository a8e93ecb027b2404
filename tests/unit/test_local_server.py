"""A local server is the workload, never contention (issue 27): the endpoint workload names the server it talks to
(by `server_pid`, or by the process listening on a loopback base_url's port), the parent's sampler reads that process
tree as the workload's (samples' server_* columns, summary.local_server) and leaves its CPU out of the other processes'.

The server is tests/openai_server.py run as a SEPARATE process (a real other process) with one thread busy on a core
the whole time, so its CPU is plainly visible: a workload that does not declare it reads that core as contention
(the check cannot pass trivially), one that declares it does not, and the parent finds it before the run starts, so
the workload that runs BEFORE the one that names it records it alive beside it (other_servers) from its first row."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pandas as pd
import pytest
import torch
from markupsafe import escape

from profiler.measure.sampler import TreeReader, server_row
from profiler.measure.store import read_frame
from profiler.run.supervisor import server_gpu
from profiler.runmodel import WorkloadSummary as Summary
from tests.conftest import cli_in_process
from tests.openai_server import FakeServer
from workloads.openai_endpoint import OpenAIEndpoint, listening_pid

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
  - name: undeclared
    type: openai_endpoint
    params: {{base_url: "{url}", model: tiny, timeout_s: 5, find_local_server: false}}
    load: &load {{pattern: poisson, rate: 25, requests: 16, seed: 1, sizes: {{input: {{fixed: 4}}, output: {{fixed: 5}}}}}}
  - name: by_port
    type: openai_endpoint
    params: {{base_url: "{url}", model: tiny, timeout_s: 5}}
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
        assert ls.confirmed is True and "found before the run and confirmed at setup" in ls.summary, ls.summary
        assert s[name].other_servers is None  # the other workload that names a server names this same one: its own
        first = samples[name].sort_values("t_ns").iloc[0]
        assert first["server_rss_bytes"] > 0, name  # read from the first row, before the child's setup declared it
        assert ls.cpu_percent_median is not None and ls.cpu_percent_median >= 30, ls.summary  # a busy thread: a core when quiet, half of one on 2 busy cores
        assert ls.peak_rss_bytes and ls.peak_rss_bytes > 10 * 2**20 and ls.processes_max == 1
        assert bool(samples[name]["server_cpu_percent"].notna().any())
        assert c is not None and c.other_cpu_cores_median is not None and f"pid {pid}" in c.summary
        assert s[name].facts["local_server"].startswith(f"pid {pid} ({how})")

    # the same server, not declared: its busy core is other processes' CPU, and the verdict is contended
    u = s["undeclared"]
    assert u.facts["local_server"] == "none declared (no server_pid; find_local_server: false)"
    assert u.contention is not None and u.contention.contended and u.contention.other_cpu_cores_median is not None
    assert u.contention.other_cpu_cores_median >= 0.3
    # undeclared, the server's CPU is inside other processes' (per sample: others >= the server's tree, up to jitter);
    # declared, it is not counted twice: others + the server + the workload's process fit in the cores read (per sample,
    # median; counted twice, a busy server would make them exceed it). Both hold on a busy machine.
    und = samples["undeclared"].dropna(subset=["other_cpu_cores", "other_server_cpu_percent"])
    assert (und["other_cpu_cores"] - und["other_server_cpu_percent"] / 100).median() >= -0.2
    for name in ("by_port", "by_pid"):
        c = s[name].contention
        assert c is not None and c.other_cpu_cores_median is not None
        rows = samples[name].dropna(subset=["other_cpu_cores", "server_cpu_percent", "proc_cpu_percent"])
        parts = rows["other_cpu_cores"] + rows["server_cpu_percent"] / 100 + rows["proc_cpu_percent"] / 100
        assert parts.median() <= len(c.cores) + 0.1, (name, c.summary, parts.describe())

    # the workload BEFORE the one that names the server records it alive beside it, from its first row, as another
    # workload's server (found by the parent before the run; its busy core is still contention: it competes)
    assert u.local_server is None
    other = u.other_servers
    assert other is not None and not other.own and other.pids == [pid] and other.workloads == ["by_port"]
    assert other.cpu_percent_median is not None and other.cpu_percent_median >= 30 and other.peak_rss_bytes
    assert f"a local server (pid {pid}, of workload 'by_port') was alive" in other.summary and "counts as other processes'" in other.summary
    assert samples["undeclared"].sort_values("t_ns").iloc[0]["other_server_rss_bytes"] > 0

    # the report's conditions name each workload's local server
    page = (run / "report.html").read_text()
    shown = [(name, x) for name in s for x in (s[name].local_server, s[name].other_servers) if x is not None]
    assert "Local servers" in page and len(shown) == 3 and all(f"<b>{name}</b>: " + str(escape(x.summary)) in page for name, x in shown)


def test_server_columns_on_a_hand_computed_case():
    # 1.5 CPU seconds of the tree over 0.5 s: 300% (three cores busy); the first reading has no interval: 0%
    assert server_row(None, None, None, 0.5) == {"server_cpu_percent": None, "server_rss_bytes": None, "server_processes": None}
    tree = object.__new__(TreeReader)
    last, now = {"cpu_s": 2.0, "rss": 1.0, "processes": 1.0}, {"cpu_s": 3.5, "rss": 5e6, "processes": 3.0}
    assert server_row(tree, last, now, 0.5) == {"server_cpu_percent": 300.0, "server_rss_bytes": 5e6, "server_processes": 3.0}
    assert server_row(tree, None, now, 0.0)["server_cpu_percent"] == 0.0


class FakeNvmlNoGpu:
    """NVML's process lists (a boundary this machine may lack: no GPU): GPU 0 runs pid 1, GPU 1 runs this process."""

    def __init__(self, pids: list[list[int]]) -> None:
        self.pids = pids
        self.nv = self

    def nvmlDeviceGetCount(self) -> int:
        return len(self.pids)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list:
        return [SimpleNamespace(pid=p) for p in self.pids[h]]

    def nvmlDeviceGetGraphicsRunningProcesses(self, h: int) -> list:
        return []

    def nvmlDeviceGetUUID(self, h: int) -> bytes:
        return f"GPU-{h}".encode()


def test_the_servers_gpu_is_the_one_whose_process_list_holds_its_tree_without_a_gpu():
    me = os.getpid()
    assert server_gpu(cast(Any, FakeNvmlNoGpu([[1], [me]])), me) == "GPU-1"
    assert server_gpu(cast(Any, FakeNvmlNoGpu([[1], [2]])), me) is None


GPU_SERVER = """\
import sys, threading, torch
from tests.openai_server import FakeServer
x = torch.randn(2048, 2048, device="cuda")
def work():
    while True:
        x @ x
threading.Thread(target=work, daemon=True).start()
with FakeServer(["ok"]) as server:
    print(server.httpd.server_address[1], flush=True)
    sys.stdin.read()
"""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_a_local_server_on_a_gpu_is_sampled_there_with_its_energy(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", GPU_SERVER], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        suite = SUITE.format(url=f"http://127.0.0.1:{port}/v1", pid=proc.pid).split("  - name: undeclared")[0]
        (tmp_path / "suite.yaml").write_text(suite.replace("requests: 30", "requests: 60"))
        code, _, err = cli_in_process("run", tmp_path / "suite.yaml", "-o", tmp_path / "runs")
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=20)
    assert code == 0, err
    (run,) = (tmp_path / "runs").iterdir()
    s = Summary.model_validate_json((run / "by_port" / "summary.json").read_text())
    assert s.local_server is not None and s.local_server.gpu_uuid, (s.local_server, s.unavailable)
    assert s.contention is not None and s.contention.gpu_other_processes_max == 0
    assert s.energy is not None, s.unavailable.get("energy")


def test_a_port_whose_listener_cannot_be_seen_says_why_as_another_user(monkeypatch):
    # as root every socket's pid is readable: another user's hidden pid and a refused listing are the boundary mocked here
    import psutil

    hidden = [SimpleNamespace(status=psutil.CONN_LISTEN, laddr=SimpleNamespace(port=8000), pid=None)]
    monkeypatch.setattr(psutil, "net_connections", lambda kind: hidden)
    assert listening_pid(8000) == (None, "the process listening on port 8000 belongs to another user (its pid is hidden): give server_pid")

    def refused(kind: str) -> list:
        raise psutil.AccessDenied()

    monkeypatch.setattr(psutil, "net_connections", refused)
    found, why = listening_pid(8000)
    assert found is None and why.startswith("listing this machine's sockets was refused")


class Ctx:
    device, seed = "cpu", 0

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.facts, self.servers = str(workdir), {}, []

    def declare(self, **facts: Any) -> None:
        self.facts.update(facts)

    def declare_server(self, pid: int, found_by: str) -> None:
        self.servers.append((pid, found_by))


def test_a_server_inside_the_profilers_own_process_is_not_declared(tmp_path):
    with FakeServer(["ok"]) as server:  # in this process: its CPU is the profiler's already
        engine = OpenAIEndpoint(OpenAIEndpoint.Params.model_validate({"base_url": server.base_url, "model": "tiny"}))
        ctx = Ctx(tmp_path)
        try:
            engine.setup(cast(Any, ctx))
        finally:
            engine.teardown()
    assert ctx.servers == []
    assert ctx.facts["local_server"].startswith(f"none: process {os.getpid()} (the process listening on port ")


def test_a_load_runs_server_figures_are_read_over_its_measured_requests_window():
    """server_rows: a load run's server figures come from the rows between the first measured arrival and the last
    measured request's end (the server idles before and after them), not the whole measure stage."""
    from profiler.characterize.summary import server_rows
    from profiler.runmodel import Serving, Stage

    samples = pd.DataFrame({"t_ns": [0, 10, 20, 30, 40, 50], "server_cpu_percent": [0.0, 0.0, 90.0, 80.0, 0.0, 0.0]})
    stages = [Stage(name="measure", start_ns=0, end_ns=50)]
    window = Serving.model_construct(window_start_ns=15, window_end_ns=35)
    assert server_rows(samples, stages, window)["server_cpu_percent"].median() == 85.0  # rows at 20 and 30
    assert server_rows(samples, stages, None)["server_cpu_percent"].median() == 0.0  # the whole stage: idle half of it
