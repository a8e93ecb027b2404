"""The Ray executor's placement rules, checked against a described cluster (no Ray connection): the resources a point
asks for, a point no node can hold, and the device a suite gets on a cluster."""

from __future__ import annotations

import pytest

from profiler.errors import UserError
from profiler.plugin import Declaration, Resources
from profiler.run.ray_executor import RayExecutor
from profiler.suite.config import ExecutorConfig, MeasureConfig


def executor(nodes: list[dict], **config) -> RayExecutor:
    """A RayExecutor that knows `nodes` (Ray's `Resources` per node) without connecting."""
    ex = RayExecutor.__new__(RayExecutor)
    ex.config, ex.measure, ex.nodes = ExecutorConfig(kind="ray", **config), MeasureConfig(), [{"Resources": r, "Alive": True} for r in nodes]
    return ex


class FakePoint:
    def __init__(self, resources: Resources, device: str) -> None:
        self.workload = type("W", (), {"declaration": Declaration(resources=resources)})()
        self.spec = type("S", (), {"device": device})()


def test_a_point_asks_for_its_declared_cores_gpus_and_memory_divided_by_the_share():
    ex = executor([{"CPU": 8, "GPU": 2}])
    assert ex.resources(FakePoint(Resources(cpu_cores=2, gpus=1, memory_bytes=2**30), "cuda")) == {"num_cpus": 2, "num_gpus": 1, "memory": 2**30}
    assert ex.resources(FakePoint(Resources(cpu_cores=2, gpus=1), "cpu"))["num_gpus"] == 0  # on the CPU no GPU is held
    shared = executor([{"CPU": 8, "GPU": 2}], gpu_share=4, cpu_share=2)
    assert shared.resources(FakePoint(Resources(cpu_cores=2, gpus=1), "cuda")) == {"num_cpus": 1, "num_gpus": 0.25}
    assert "contended" in shared.policy("cuda") and "never shared" in ex.policy("cuda")


def test_a_point_no_node_can_hold_is_named_with_the_largest_node():
    ex = executor([{"CPU": 2}, {"CPU": 4, "GPU": 1}])
    assert ex._infeasible({"num_cpus": 4, "num_gpus": 1}) is None
    why = ex._infeasible({"num_cpus": 8, "num_gpus": 1})
    assert why == "no node of the Ray cluster can hold this point: it needs 8 CPU core(s), 1 GPU(s); the largest node has 4 CPU(s) and 1 GPU(s)"
    assert "GiB of memory" in ex._infeasible({"num_cpus": 1, "num_gpus": 0, "memory": 2**50})


def test_the_device_on_a_cluster():
    gpu, cpu = executor([{"CPU": 2}, {"CPU": 4, "GPU": 1}]), executor([{"CPU": 2}])
    assert gpu.resolve_device("auto") == "cuda" and cpu.resolve_device("auto") == "cpu"
    with pytest.raises(UserError, match="Ray assigns each point its GPU"):
        gpu.resolve_device("cuda:1")
    with pytest.raises(UserError, match="no node of the Ray cluster has a GPU"):
        cpu.resolve_device("cuda")
