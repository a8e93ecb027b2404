"""Compiled VLA action head (vla `compile: true`): over a StaticCache of exactly the tokens one call writes, the
compiled flow step gives the eager actions and the compiled discrete decode the eager action tokens (so the causal
mask over the static cache is the eager one), and the state record stays honest (the filled part from the per-layer
formula equals the eager DynamicCache's measured bytes; the allocation is measured). On CPU inductor compiles C++."""

from __future__ import annotations

import pytest
import torch

from profiler.run.child import SetupContextImpl
from tests.conftest import assert_bad_params
from tests.integration.test_compiled_decode import Record
from workloads.vla import VLA

SMALL = {"preset": "vla-tiny", "camera_resolution": [64, 64]}  # the tiny encoder's own size: no resize cost
FLOW = {"head": "flow", "chunk_len": 5, "flow_steps": 3, "ticks": 5, "control_hz": 100}  # 50 ms episodes
DISCRETE = {"head": "discrete", "ticks": 3, "control_hz": 100}


def policy_call(**params) -> tuple[VLA, dict, dict, list]:
    """Set up vla-tiny, run one inference call on a fixed frame: (workload, its state attributes, facts, spans)."""
    torch.manual_seed(0)  # the runner seeds torch before setup: the same random weights on both sides
    workload = VLA(VLA.Params(**SMALL, **params))
    ctx = SetupContextImpl("cpu", 0, "/tmp")
    workload.setup(ctx)
    mark = Record()
    workload.actions, state = workload.policy.infer(workload._preprocess(workload.frames[1]), workload.instruction, workload.noise, mark)
    return workload, state, ctx.facts, mark.spans


def test_compiled_flow_head_gives_eager_actions():
    eager, eager_state, _, _ = policy_call(**FLOW)
    compiled, state, facts, spans = policy_call(**FLOW, compile=True)
    # float32, random weights, |actions| of order 1: the static cache's longer masked rows and inductor's fused
    # kernels only reorder sums (about 1e-6 here); a wrong mask or write position moves actions by 1e-2 and more
    assert torch.allclose(compiled.actions, eager.actions, atol=1e-4, rtol=1e-4)
    assert compiled.actions.shape == (5, 7)
    assert "torch.compile" in facts["compiled"] and "each flow step" in facts["compiled"] and "compiled in setup" in facts["compiled"]
    assert [phase for phase, _ in spans] == ["vision", "prefix", "action"]
    # the static cache is exactly prefix + chunk: the expert's keys of the last step fill it, as the eager
    # DynamicCache's storage holds them too (its crop leaves a view)
    prefix = facts["prefix_tokens"]
    assert compiled.policy.cache_tokens == prefix + 5
    assert state["state_bytes"] == eager_state["state_bytes"] == state["state_allocated_bytes"]


def test_compiled_discrete_head_gives_eager_action_tokens():
    eager, eager_state, _, _ = policy_call(**DISCRETE)
    compiled, state, facts, _ = policy_call(**DISCRETE, compile=True)
    assert compiled.policy.action_tokens.tolist() == eager.policy.action_tokens.tolist()  # greedy; near-ties are rare at float32
    assert torch.equal(compiled.actions, eager.actions)
    assert "each action-token decode step" in facts["compiled"]
    per_token = state["state_allocated_bytes"] // (facts["prefix_tokens"] + 7)
    assert state["state_bytes"] == eager_state["state_bytes"] == per_token * (facts["prefix_tokens"] + 6)  # the last token's KV is never written


def test_an_episode_records_the_static_state_on_its_infer_spans():
    """run_once as the runner calls it: every infer span carries the formula's filled part and the measured
    allocation, labelled in the facts; a second episode gives the same (the cache is reset each call), and
    the shapes stay constant (no recompilation)."""
    episode = {**FLOW, "ticks": 10}
    eager, _, _, _ = policy_call(**episode)
    eager_mark = Record()
    eager.run_once(eager_mark)
    compiled, _, facts, _ = policy_call(**episode, compile=True)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    mark = Record()
    compiled.run_once(mark)
    compiled.run_once(mark)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs  # the graph compiled in setup serves every step of every call
    infer = [attrs for phase, attrs in mark.spans if phase == "infer"]
    assert len(infer) == 4  # per episode: the call before the first tick and the replan at tick 5 (chunk 5)
    assert facts["state_bytes_source"].startswith("formula") and facts["cache"] == "static"
    eager_bytes = {attrs["state_bytes"] for phase, attrs in eager_mark.spans if phase == "infer"}
    assert {a["state_bytes"] for a in infer} == eager_bytes
    assert {a["state_allocated_bytes"] for a in infer} == eager_bytes  # flow: the static cache is full after each call


def test_compiled_async_episode_runs_the_step_on_its_worker_threads(tmp_path):
    """async infers on a new thread per call: the step compiled in setup serves them (no CUDA graphs on CPU)."""
    workload, _, facts, _ = policy_call(**{**FLOW, "ticks": 10, "mode": "async"}, compile=True)
    mark = Record()
    workload.run_once(mark)
    infer = [attrs for phase, attrs in mark.spans if phase == "infer"]
    assert len(infer) >= 2 and all("state_allocated_bytes" in a for a in infer)
    assert "mode='default'" in facts["compiled"]


def test_the_eager_path_keeps_its_dynamic_cache():
    workload, state, facts, _ = policy_call(**FLOW)
    assert facts["compiled"] is None and workload.policy.static_cache is None
    assert set(state) == {"state_bytes"}


@pytest.mark.parametrize("params, needle", [("{compile: sometimes}", "compile"), ("{compile: 1}", "compile")])
def test_bad_compile_params(write_suite, params, needle):
    assert_bad_params(write_suite, "vla", params, needle)
