"""The smart-glasses workload: camera frames and voice queries on one device, the context bounded by its
policy, the three conditions of one run, the summary and report built from them, and its bad inputs."""

from __future__ import annotations

import pandas as pd
import pytest

from profiler.characterize.summary import summarize
from profiler.measure.spans import SpanRecorder
from profiler.measure.store import SPANS, PartWriter, merge_parts
from profiler.run.child import SetupContextImpl
from tests.conftest import FAST_MEASURE, assert_bad_params, run_suite_text
from workloads.multimodal_stream import MultimodalStream

SMALL = {"camera_resolution": [32, 32], "session_s": 2.0, "fps": 4.0}


def sessions(tmp_path, iterations: int, **params) -> tuple[pd.DataFrame, dict, MultimodalStream]:
    """Run `iterations` sessions in process (none is warmup); the spans as spans.parquet holds them."""
    workload = MultimodalStream(MultimodalStream.Params(**{**SMALL, **params}))
    ctx = SetupContextImpl("cpu", 0, str(tmp_path))
    workload.setup(ctx)
    recorder = SpanRecorder(PartWriter(tmp_path, SPANS))
    try:
        for i in range(iterations):
            recorder.run_iteration(workload, i, warmup=False)
    finally:
        workload.teardown()
    recorder.flush()
    merge_parts(tmp_path, SPANS)
    return pd.read_parquet(tmp_path / "spans.parquet"), ctx.facts, workload


@pytest.fixture(scope="module")
def three_conditions(tmp_path_factory):
    """Frames alone, queries alone, both: 2 s each, a window of 4 sinks + 2 frames, a query every 0.67 s (3 a session)."""
    window = 4 + 2 * 10  # glasses-tiny: 10 tokens per frame
    return sessions(
        tmp_path_factory.mktemp("glasses"),
        3,
        context={"policy": "sink_window", "window_tokens": window, "sink_tokens": 4},
        queries={"pattern": "constant", "rate_per_min": 90.0, "answer_tokens": {"fixed": 6}, "sentence_tokens": 3, "question_tokens": {"fixed": 4}},
    )


def test_the_kv_cache_stops_growing_at_the_window(three_conditions):
    spans, facts, _ = three_conditions
    bound = facts["context_bound_bytes"]
    assert bound == 24 * facts["kv_bytes_per_token"]
    held = spans.loc[spans["state_bytes"].notna(), "state_bytes"]
    assert held.max() == bound  # reached: the session starts primed to the window, and every update evicts back to it
    assert (held <= bound).all()
    updates = spans.loc[spans["phase"] == "context_update"]
    assert (updates["evicted"] == 10).all()  # each frame past the window pushes one frame's tokens out


def test_each_session_runs_one_condition_with_its_own_streams(three_conditions):
    spans, _, _ = three_conditions
    by_iteration = spans.loc[spans["condition"].notna()].groupby("iteration")["condition"].unique()
    assert [list(c) for c in by_iteration] == [["frames"], ["queries"], ["frames+queries"]]
    frames = spans.loc[spans["phase"] == "frame"]
    assert set(frames["condition"]) == {"frames", "frames+queries"}
    for _, g in frames.groupby("iteration"):  # every frame due is either taken or dropped, once
        assert sorted(g["frame"]) == list(range(8))
        assert (g.loc[g["dropped"] == 0, "deadline_ns"] - g.loc[g["dropped"] == 0, "scheduled_ns"] == 250_000_000).all()
    queries = spans.loc[spans["phase"] == "query"]
    assert set(queries["condition"]) == {"queries", "frames+queries"}
    assert queries["obs_ns"].notna().all()


def test_every_query_is_heard_and_answered_in_full(three_conditions):
    spans, _, _ = three_conditions
    q = spans.loc[spans["request_id"].notna()]
    for _, g in q.groupby(["iteration", "request_id"]):
        phases = g["phase"].value_counts()
        assert phases["query"] == 1 and phases["asr"] == 1 and phases["prefill"] == 1 and phases["tts"] == 1
        assert phases["decode"] == 5  # 6 answer tokens: the first from the prefill
        query = g.loc[g["phase"] == "query"].iloc[0]
        tts = g.loc[g["phase"] == "tts"].iloc[0]
        assert query["obs_ns"] <= g["start_ns"].min() and tts["end_ns"] <= query["end_ns"]
        assert tts["audio_s"] > 0


def test_the_summary_compares_the_conditions(three_conditions):
    spans, _, workload = three_conditions
    s = summarize(spans, pd.DataFrame(), {}, MultimodalStream.declaration(workload.p))
    assert set(s.streams.conditions) == {"frames", "queries", "frames+queries"}
    assert s.streams.conditions["frames"].deadlines.miss_rate.count == 1
    assert s.streams.conditions["queries"].deadlines is None  # queries carry no deadlines (their arrival is no inference)
    assert s.metrics.first_output_s.count >= 2 and s.metrics.qoe.count >= 2
    pairs = {(i.phase, i.alone, i.together) for i in s.streams.interference}
    assert ("frame_encode", "frames", "frames+queries") in pairs
    assert ("asr", "queries", "frames+queries") in pairs
    assert s.streams.energy_unavailable.startswith("no NVML")


def test_visual_budget_keeps_text_and_the_newest_frames(tmp_path):
    spans, facts, _ = sessions(
        tmp_path,
        1,
        conditions=["frames+queries"],
        context={"policy": "visual_budget", "visual_tokens": 20},
        queries={"pattern": "constant", "rate_per_min": 90.0, "answer_tokens": {"fixed": 3}, "sentence_tokens": 2, "question_tokens": {"fixed": 3}},
    )
    per_token = facts["kv_bytes_per_token"]
    updates = spans.loc[spans["phase"] == "context_update"].sort_values("end_ns")
    text = spans.loc[spans["phase"].isin(["prefill", "decode"])]
    total_text = 3 * (text["phase"] == "prefill").sum() + (text["phase"] == "decode").sum()
    text_held = updates["state_bytes"].to_numpy() / per_token - 20  # after each frame: 20 visual tokens + the text so far
    assert (text_held >= 0).all() and (text_held <= total_text).all()
    assert (pd.Series(text_held).diff().dropna() >= 0).all()  # text is never evicted
    assert text_held[-1] > 0


@pytest.mark.parametrize(
    "params, needle",
    [
        ("{fps: 0}", "fps"),
        ("{context: {policy: sink_window, window_tokens: 8, sink_tokens: 4}}", "cannot hold the sinks (4) and one frame's 10 tokens"),
        ("{context: {policy: visual_budget, visual_tokens: 5}}", "smaller than one frame's 10 tokens"),
        ("{context: {policy: lru}}", "policy"),
    ],
)
def test_bad_inputs_are_one_line(write_suite, params, needle):
    assert_bad_params(write_suite, "multimodal_stream", params, needle)


def test_a_run_reports_frames_queries_context_and_interference(tmp_path):
    suite = f"""name: glasses
{FAST_MEASURE}
workloads:
  - name: glasses
    type: multimodal_stream
    params:
      camera_resolution: [32, 32]
      session_s: 1.5
      fps: 4
      queries: {{pattern: constant, rate_per_min: 120, answer_tokens: {{fixed: 4}}, sentence_tokens: 2}}
"""
    result, run = run_suite_text(tmp_path, suite.replace("warmup_iters: 1", "warmup_iters: 0"))
    s = run.workloads["glasses"].summary
    assert set(s.streams.conditions) == {"frames", "queries", "frames+queries"}
    html = (run.path / "report.html").read_text()
    for text in ("Streams: frames and queries on one device", "time to first audio", "Interference between the streams", "KV cache", "Energy per hour"):
        assert text in html
