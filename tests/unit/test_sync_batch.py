"""The straggler tail, the stage breakdown and memory by kind (profiler/characterize/sync_batch.py), on a
toy engine whose requests have known lengths and whose steps take exactly 1 ms of a fake clock."""

from __future__ import annotations

import contextlib

import pandas as pd
import pytest

from profiler.characterize.sync_batch import batch_tails, memory_by_kind, stage_shares, stage_tokens_per_s, tail_of
from workloads.rollout import StepResult, run_rollout

MS = 1_000_000


class ToyBatcher:
    """Every pending request gets one token per step; a request of length L finishes at step L."""

    def __init__(self) -> None:
        self.left: dict[str, int] = {}
        self.made: dict[str, list[int]] = {}
        self.done: dict[str, list[int]] = {}

    def add(self, key: str, prompt: list[int], max_new_tokens: int) -> None:
        self.left[key], self.made[key] = max_new_tokens, []

    def pending(self) -> bool:
        return bool(self.left)

    def step(self) -> StepResult:
        running = list(self.left)
        finished = []
        for key in running:
            self.made[key].append(7)
            self.left[key] -= 1
            if self.left[key] == 0:
                del self.left[key]
                self.done[key] = self.made.pop(key)
                finished.append(key)
        return StepResult(sequences=len(running), tokens=len(running), finished=finished)

    def kv_bytes_used(self) -> int:
        return 100 * sum(len(v) for v in self.made.values())

    def take_outputs(self) -> dict[str, list[int]]:
        done, self.done = self.done, {}
        return done


class FakeClockMark:
    """A `mark` whose spans each take exactly 1 ms of a fake clock; rows like spans.parquet's, read after the
    iteration (attributes set after a span's body are kept, as the SpanRecorder keeps them)."""

    def __init__(self) -> None:
        self.now, self.spans = 0, []

    @property
    def rows(self) -> list[dict]:
        return [{"iteration": 0, "phase": phase, "start_ns": start, "end_ns": end, **span.attrs} for phase, start, end, span in self.spans]

    @contextlib.contextmanager
    def __call__(self, phase: str, units: float = 0, **attrs):
        class Span:
            pass

        span = Span()
        span.attrs = dict(attrs)
        start = self.now
        yield span
        self.now += MS
        self.spans.append((phase, start, self.now, span))


def test_tail_on_a_toy_engine_with_known_lengths():
    lengths = [1, 2, 3, 4, 10]
    mark = FakeClockMark()
    out = run_rollout(ToyBatcher(), {f"r{i}": ([1, 2], n) for i, n in enumerate(lengths)}, mark)
    assert {k: len(v) for k, v in out.items()} == {f"r{i}": n for i, n in enumerate(lengths)}
    spans = pd.DataFrame(mark.rows)
    assert list(spans["sequences"]) == [5, 4, 3, 2, 1, 1, 1, 1, 1, 1] and spans["finished"].sum() == 5
    t = batch_tails(spans, "rollout_step").iloc[0]
    # N = 5: the median request is the 3rd to finish (step 3), the last finishes at step 10, each step 1 ms
    assert t["requests"] == 5 and t["steps"] == 10 and t["tail_steps"] == 7
    assert t["batch_s"] == pytest.approx(10e-3) and t["tail_s"] == pytest.approx(7e-3) and t["tail_share"] == pytest.approx(0.7)
    # the slowest 10%: from the 4th finish (floor(0.9 * 5)) at step 4 to the last
    assert t["p90_tail_share"] == pytest.approx(0.6)
    # occupancy: (5 + 4 + 3 + 2 + 6 x 1) / (10 steps x peak 5); in the tail (steps 4..10): (2 + 6) / (7 x 5)
    assert t["occupancy"] == pytest.approx(20 / 50) and t["tail_occupancy"] == pytest.approx(8 / 35)
    assert spans["memory_kv_cache_bytes"].iloc[0] == 100 * 4  # the four unfinished requests hold one token each


def test_a_request_of_the_wrong_length_is_an_error():
    class Short(ToyBatcher):
        def take_outputs(self):
            return {k: v[:-1] for k, v in super().take_outputs().items()}

    with pytest.raises(RuntimeError, match="generated 2 tokens, not the 3 asked for"):
        run_rollout(Short(), {"a": ([1], 3)}, FakeClockMark())


def test_simultaneous_finishes_share_their_step():
    # four requests all finish at step 2: the median and the last finish coincide, no tail
    t = tail_of([0, MS], [MS, 2 * MS], [0, 4], [4, 4])
    assert t["tail_s"] == 0 and t["tail_share"] == 0 and t["occupancy"] == 1 and t["tail_occupancy"] is None


def test_spans_without_finished_give_no_tail():
    spans = pd.DataFrame({"iteration": [0], "phase": ["decode_step"], "start_ns": [0], "end_ns": [MS], "sequences": [1.0]})
    assert batch_tails(spans, "decode_step").empty


def test_stage_shares_and_tokens_per_second():
    rows = [
        {"iteration": 0, "phase": "iteration", "start_ns": 0, "end_ns": 10 * MS},
        {"iteration": 0, "phase": "rollout", "start_ns": 0, "end_ns": 6 * MS, "tokens": 60},
        {"iteration": 0, "phase": "training", "start_ns": 6 * MS, "end_ns": 9 * MS, "tokens": 300},
        {"iteration": 1, "phase": "iteration", "start_ns": 20 * MS, "end_ns": 40 * MS},
        {"iteration": 1, "phase": "rollout", "start_ns": 20 * MS, "end_ns": 36 * MS, "tokens": 80},
        {"iteration": 1, "phase": "training", "start_ns": 36 * MS, "end_ns": 39 * MS, "tokens": 300},
    ]
    spans = pd.DataFrame(rows)
    shares = stage_shares(spans, ("rollout", "training", "weight_sync"))
    assert list(shares.columns) == ["rollout", "training", "weight_sync", "other"]
    assert shares.loc[0].tolist() == pytest.approx([0.6, 0.3, 0.0, 0.1])
    assert shares.loc[1].tolist() == pytest.approx([0.8, 0.15, 0.0, 0.05])
    rates = stage_tokens_per_s(spans, ("rollout", "training", "weight_sync"))
    assert rates == pytest.approx({"rollout": 140 / 0.022, "training": 600 / 0.006})


def test_memory_by_kind_keeps_each_kinds_peak():
    spans = pd.DataFrame({"memory_weights_bytes": [10, None, 10], "memory_kv_cache_bytes": [5, 9, None], "state_bytes": [1, 2, 3]})
    assert memory_by_kind(spans) == {"weights": 10, "kv_cache": 9}


def test_attribute_warnings_name_what_was_left_out_or_overlaps():
    from profiler.characterize.sync_batch import attribute_warnings

    rows = [
        {"iteration": 0, "phase": "iteration", "start_ns": 0, "end_ns": 10 * MS},
        {"iteration": 0, "phase": "a", "start_ns": 0, "end_ns": 8 * MS, "tokens": -5},
        {"iteration": 0, "phase": "b", "start_ns": 2 * MS, "end_ns": 6 * MS},  # nested in a: the stages overlap
        {"iteration": 0, "phase": "step", "start_ns": 0, "end_ns": MS, "sequences": 2, "finished": 3, "memory_weights_bytes": -1},
    ]
    spans = pd.DataFrame(rows)
    text = " | ".join(attribute_warnings(spans, ("a", "b"), "step"))
    assert "`memory_weights_bytes` is negative on 1" in text and "`tokens` is negative on 1" in text
    assert "more requests `finished` than `sequences`" in text and "stages overlap (a, b: their time sums to 120%" in text
    assert memory_by_kind(spans) == {} and stage_tokens_per_s(spans, ("a",)) == {}
    assert memory_by_kind(pd.DataFrame({"memory_KV_bytes": [7]})) == {"KV": 7}
