"""Compiled VLA action head on CUDA (vla `compile: true`): in sync mode CUDA graphs (mode reduce-overhead) replay the
flow step and give the eager actions, call after call; async mode compiles without CUDA graphs and runs an episode."""

from __future__ import annotations

import pytest

from tests.integration.test_compiled_decode import Record

pytestmark = pytest.mark.gpu

FLOW = {"preset": "vla-tiny", "camera_resolution": [64, 64], "head": "flow", "chunk_len": 5, "flow_steps": 3, "ticks": 10, "control_hz": 100}


def setup_vla(**params):
    import torch

    from profiler.run.child import SetupContextImpl
    from workloads.vla import VLA

    torch.manual_seed(0)
    workload = VLA(VLA.Params(**FLOW, dtype="float32", **params))  # float32: a tolerance that catches a wrong mask
    ctx = SetupContextImpl("cuda", 0, "/tmp")
    workload.setup(ctx)
    return workload, ctx.facts


def actions(workload, frame: int = 1):
    pixels = workload._preprocess(workload.frames[frame])
    return workload.policy.infer(pixels, workload.instruction, workload.noise, Record())[0]


def test_cuda_graphs_replay_the_eager_flow_step():
    import torch

    eager, _ = setup_vla()
    compiled, facts = setup_vla(compile=True)
    assert "mode='reduce-overhead'" in facts["compiled"]
    expected = actions(eager)
    for _ in range(3):  # replays, not only the recording: the graph's buffers are reused each call
        assert torch.allclose(actions(compiled), expected, atol=1e-3, rtol=1e-3)


def test_async_compiles_without_cuda_graphs_and_runs():
    workload, facts = setup_vla(compile=True, mode="async")
    assert "mode='default'" in facts["compiled"] and "without CUDA graphs" in facts["compiled"]
    mark = Record()
    workload.run_once(mark)
    assert sum(phase == "infer" for phase, _ in mark.spans) >= 2
