"""Local servers found by the parent before the run (issue 27): every workload's child spec carries the suite's local
servers, its own and the others' (run/runner.py: suite_servers, others_of), the sampler reads several servers' trees
together (measure/sampler.py: TreeReader over several roots), and a server found on another machine than the one a
point runs on is not read there, with why (run/supervisor.py: a cluster worker).

Real processes (`sleep` children of this test), no mocks."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any, cast

import psutil
import pytest

from profiler.measure.sampler import TreeReader, tree_cores
from profiler.plugin import server_of
from profiler.run.child import ChildSpec
from profiler.run.runner import others_of
from profiler.run.supervisor import ChildSupervisor, ChildWatch
from profiler.runmodel import SuiteServer
from profiler.suite.config import MeasureConfig


def server(pid: int, workload: str, host: str | None = None) -> SuiteServer:
    return SuiteServer(pid=pid, found_by="server_pid", workload=workload, host=host or socket.gethostname())


def test_each_workload_gets_the_other_servers_once_per_pid_and_never_its_own():
    a, b, c = server(10, "a"), server(20, "b"), server(10, "c")  # c names a's server again
    servers: list[SuiteServer | None] = [a, None, b, c]
    assert [s.workload for s in others_of(servers, 0)] == ["b"]  # c's is its own pid
    assert [s.workload for s in others_of(servers, 1)] == ["a", "b"]  # the first that found pid 10 names it
    assert [s.workload for s in others_of(servers, 2)] == ["a"]
    assert [s.workload for s in others_of(servers, 3)] == ["b"]


class NoServer:
    pass


class Raises:
    @classmethod
    def local_server(cls, params: Any) -> tuple[int | None, str]:
        raise OSError("socket listing failed")


class BadPid:
    @classmethod
    def local_server(cls, params: Any) -> tuple[Any, str]:
        return "123", "a string"


class Found:
    @classmethod
    def local_server(cls, params: Any) -> tuple[int | None, str]:
        return 42, "server_pid"


def test_a_plugins_lookup_never_stops_the_run_and_says_why_it_found_none():
    assert server_of(NoServer, cast(Any, None)) == (None, "")
    assert server_of(Raises, cast(Any, None)) == (None, "its local_server() raised OSError: socket listing failed")
    assert server_of(BadPid, cast(Any, None)) == (None, "its local_server() returned pid '123', not a positive int")
    assert server_of(Found, cast(Any, None)) == (42, "server_pid")


@pytest.fixture
def sleepers():
    code = "import time; print('up', flush=True); time.sleep(60)"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline() == "up\n"  # asleep: its RSS holds still
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_several_servers_trees_are_read_together_and_an_unreadable_root_is_named(sleepers):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    tree = TreeReader([*sleepers, gone.pid], own=False)
    try:
        reading = tree.read()
        assert reading is not None and reading["processes"] == 2.0  # two idle interpreters, one member each
        rss = sum(psutil.Process(p).memory_info().rss for p in sleepers)  # statm: the kernel's counters may lag stat's by pages
        assert abs(reading["rss"] - rss) < 2**20 and rss > 2 * 5 * 2**20  # both trees summed (an interpreter holds > 5 MiB)
        assert list(tree.skipped) == [gone.pid]
    finally:
        tree.close()
    with pytest.raises(psutil.NoSuchProcess):
        TreeReader([gone.pid], own=False)
    assert tree_cores(sleepers[0]) == sorted(psutil.Process(sleepers[0]).cpu_affinity() or [])


class Sampler:
    """What the supervisor hands a server to (measure/sampler.py: ProcessSampler's attach_server), recorded."""

    gpu, gpu_uuid = None, None

    def __init__(self) -> None:
        self.attached: list[tuple[Any, bool]] = []

    def attach_server(self, pid: Any, own: bool) -> None:
        self.attached.append((pid, own))


def test_a_server_found_on_another_machine_is_not_read_on_this_one(sleepers):
    here, elsewhere = server(sleepers[0], "local"), server(sleepers[1], "remote", host="another-node")
    spec = ChildSpec("w", "toy", {}, [], "cpu", 0, MeasureConfig(), "/nonexistent", other_servers=[here, elsewhere])
    supervisor = ChildSupervisor(cast(Any, None), "cpu", MeasureConfig(), cast(Any, None))
    sampler, watch = Sampler(), ChildWatch("w")
    supervisor._attach_servers(spec, cast(Any, sampler), watch)
    assert sampler.attached == [([sleepers[0]], False)] and watch.other_servers == [here]
    assert watch.server_notes == [
        f"the local server of workload 'remote' (pid {sleepers[1]}) runs on another-node, not on {socket.gethostname()} where this workload ran: not read"
    ]
