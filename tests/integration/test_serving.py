"""Serving under a load: the driver's records against an engine with exact timings, faults, and llm_serve."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import assert_one_line_error, run_cli, run_suite_text

ROOT_TRACES = __import__("pathlib").Path(__file__).resolve().parents[2] / "configs" / "traces"

TOY = """\
name: load
device: cpu
measure: {{max_seconds: {max_seconds}, min_seconds: 0, sample_hz: 50}}
workloads:
  - name: toy
    type: toy_serve
    params: {params}
    load: {load}
    objective: {{slo: {{ttft_s: 0.05, tpot_s: 0.006}}, qoe: {{expected_ttft_s: 0.5, tokens_per_s: 100}}}}
"""


def requests_of(w) -> pd.DataFrame:
    return pd.read_parquet(w.path / "requests.parquet")


SIZES = "sizes: {input: {fixed: 8}, output: {fixed: 5}}"


def toy_run(tmp_path, params="{queue_s: 0.01, prefill_s: 0.02, token_s: 0.005}", load=None, max_seconds=30, expect_ok=True):
    load = load or f"{{pattern: constant, rate: 40, requests: 12, warmup_requests: 2, {SIZES}}}"
    tmp_path.mkdir(parents=True, exist_ok=True)
    return run_suite_text(tmp_path, TOY.format(params=params, load=load, max_seconds=max_seconds), expect_ok=expect_ok)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return toy_run(tmp_path_factory.mktemp("toy"))[1].workloads["toy"]


def test_every_request_is_recorded_with_latency_from_its_arrival(toy):
    r = requests_of(toy).set_index("index")
    assert len(r) == 12 and (r["status"] == "finished").all()
    assert r["measured"].tolist() == [False, False] + [True] * 10
    late = (r["sent_ns"] - r["arrival_ns"]).to_numpy()  # the generator's own error, inside the user's latency
    assert (late >= 0).all()
    first = r["token_ns"].map(lambda t: t[0]).to_numpy()
    # the engine stamps from its submit call, a few microseconds after the send began
    assert (r["scheduled_ns"] - r["sent_ns"] >= 10_000_000).all()
    assert np.array_equal(first - r["scheduled_ns"].to_numpy(), np.full(12, 20_000_000))
    assert all(np.all(np.diff(t) == 5_000_000) and len(t) == 5 for t in r["token_ns"])


def test_the_summary_applies_the_definitions(toy):
    s = toy.summary.serving
    r = requests_of(toy)
    m = r.loc[r["measured"]]
    ttft = ((m["token_ns"].map(lambda t: t[0]) - m["arrival_ns"]) / 1e9).to_numpy()
    queue = ((m["scheduled_ns"] - m["arrival_ns"]) / 1e9).to_numpy()
    assert s.requests == 12 and s.measured_requests == 10 and s.status_counts == {"finished": 12}
    assert s.ttft_s.median == pytest.approx(np.median(ttft), abs=1e-9) and s.ttft_s.min >= 0.030
    assert s.queue_s.median == pytest.approx(np.median(queue), abs=1e-9)
    assert s.tpot_s.median == pytest.approx(0.005, abs=1e-9) and s.itl_s.median == pytest.approx(0.005, abs=1e-9)
    assert s.itl_s.count == 10 * 4  # per token, after the first
    assert s.e2e_s.median == pytest.approx(np.median(ttft + 4 * 0.005), abs=1e-9)
    expected_ok = np.mean(ttft <= 0.05)  # TPOT 5 ms meets 6 ms always
    assert s.slo_attainment == pytest.approx(expected_ok)
    assert s.goodput_rps == pytest.approx(expected_ok * 10 / s.window_s)
    assert s.slo == "ttft <= 0.05 s, tpot <= 0.006 s"
    assert s.qoe.median == pytest.approx(1.0)  # tokens well ahead of a reader expecting the first at 0.5 s
    assert s.arrival_cv < 0.5  # constant rate: even gaps (the sender's jitter only)
    assert s.sender.p99_s is not None and s.sender.cpu_share is not None
    # the per-request spans feed the common metrics: TTFT from arrival, as above
    assert toy.summary.metrics.ttft_s.median == pytest.approx(s.ttft_s.median, abs=1e-6)
    assert toy.summary.unavailable["work"].startswith("not counted under a load")


def test_failed_and_timed_out_requests_are_counted_never_dropped(tmp_path):
    run = toy_run(tmp_path / "fail", params="{fail_every: 4}")[1].workloads["toy"]
    s = run.summary.serving
    assert s.status_counts == {"finished": 9, "failed": 3}
    failed = requests_of(run).loc[requests_of(run)["status"] == "failed"]
    assert failed["measured"].sum() == 3
    assert s.slo_attainment <= 7 / 10  # failed measured requests meet no SLO

    slow = toy_run(tmp_path / "slow", params="{token_s: 0.5}", load=f"{{pattern: constant, rate: 20, requests: 6, {SIZES}}}", max_seconds=1.5)[1]
    w = slow.workloads["toy"]
    assert w.summary.serving.status_counts.get("timed_out", 0) >= 1
    assert w.summary.loop.hit_max_seconds and not w.summary.loop.stopped_at_max_seconds  # min_iters is not a load's
    assert w.summary.loop.timed_out_requests == w.summary.serving.status_counts["timed_out"]
    assert any("request(s) not finished (recorded as timed out)" in x for x in w.summary.warnings)


def test_an_engine_that_dies_keeps_every_record_taken_and_says_which_were_lost(tmp_path):
    result, run = toy_run(tmp_path, params="{die_after: 4}", expect_ok=False)
    assert result.returncode != 0
    w = run.workloads["toy"]
    assert w.summary.status.value == "failed" and "died" in w.summary.error.reason
    counts = requests_of(w)["status"].value_counts().to_dict()
    assert counts["finished"] == 4 and counts.get("lost", 0) + counts.get("not_sent", 0) == 8
    assert w.summary.serving.status_counts == counts


def test_a_closed_loop_never_has_more_than_its_concurrency_in_flight(tmp_path):
    load = f"{{pattern: closed, concurrency: 2, requests: 8, {SIZES}}}"
    w = toy_run(tmp_path, load=load)[1].workloads["toy"]
    r = requests_of(w)
    assert (r["status"] == "finished").all()
    events = sorted([(t, 1) for t in r["sent_ns"]] + [(t, -1) for t in r["finished_ns"]], key=lambda e: (e[0], e[1]))
    assert max(np.cumsum([e[1] for e in events])) <= 2
    assert (r["arrival_ns"] == r["sent_ns"]).all()  # a closed loop's request arrives when it is sent
    assert w.summary.serving.arrival_cv is None


def test_a_rate_sweep_runs_one_point_per_rate(tmp_path):
    suite = TOY.format(params="{}", load=f"{{pattern: poisson, rate: 10, requests: 6, {SIZES}}}", max_seconds=30)
    suite += "    sweep: {load.rate: [10, 40]}\n"
    run = run_suite_text(tmp_path, suite)[1]
    assert sorted(run.workloads) == ["toy[load.rate=10]", "toy[load.rate=40]"]
    assert run.workloads["toy[load.rate=40]"].summary.serving.load.rate == 40


@pytest.mark.parametrize(
    ("load", "needle"),
    [
        ("{pattern: poisson, rate: 0, requests: 5, " + SIZES + "}", "rate"),
        ("{pattern: closed, concurrency: 0, requests: 5, " + SIZES + "}", "concurrency"),
        ("{pattern: trace, trace: nosuch.csv}", "nosuch.csv"),
        ("{pattern: poisson, rate: 1, " + SIZES + "}", "requests/duration_s"),
        ("{pattern: poisson, rate: 1, requests: 3, sizes: {input: {fixed: -1}, output: {fixed: 1}}}", "fixed"),
    ],
)
def test_bad_loads_are_one_line_errors(write_suite, load, needle):
    suite = write_suite(f"name: s\nworkloads:\n  - name: t\n    type: toy_serve\n    load: {load}\n")
    assert_one_line_error(run_cli("validate", suite), "load", needle)


def test_bad_serving_entries_are_one_line_errors(write_suite, tmp_path):
    head = "name: s\nworkloads:\n  - name: t\n"
    load = "    load: {pattern: poisson, rate: 1, requests: 3, " + SIZES + "}\n"
    cases = [
        (head + "    type: llm_serve\n", "give it a load: block"),
        (head + "    type: toy_serve\n" + load + "    objective: {slo: {ttft_s: -1}}\n", "ttft_s"),
        (head + "    type: toy\n    objective: {slo: {ttft_s: 1}}\n", "objective"),
        (head + "    type: toy_serve\n" + load + "    sweep: {load.rate: [0, 1]}\n", "load.rate=0"),
        (head + "    type: toy_serve\n" + load + "    sweep: {load.rat: [1, 2]}\n", "did you mean 'rate'"),
    ]
    for text, needle in cases:
        assert_one_line_error(run_cli("validate", write_suite(text)), needle)
    bad = tmp_path / "bad.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,10,5\n2023-11-16 18:15:45.0000000,10,5\n")
    text = head + "    type: toy_serve\n    load: {pattern: trace, trace: " + str(bad) + "}\n"
    assert_one_line_error(run_cli("validate", write_suite(text)), "bad.csv", "line 3")


LLM = """\
name: llm-load
device: cpu
measure: {max_seconds: 60, sample_hz: 20}
workloads:
  - name: llm
    type: llm_serve
    params: {preset: llama-tiny, page_size: 16, kv_cache_tokens: 4096}
    load: {pattern: trace, trace: TRACE, requests: 10, time_scale: 4.0, token_scale: 0.02}
"""


def test_llm_serve_replays_a_mooncake_trace_through_continuous_batching(tmp_path):
    run = run_suite_text(tmp_path, LLM.replace("TRACE", str(ROOT_TRACES / "mooncake.jsonl")), timeout=240)[1]
    w = run.workloads["llm"]
    s = w.summary.serving
    r = requests_of(w)
    assert s.status_counts == {"finished": 10}
    # every request generates exactly its requested length (EOS disabled), token by token
    assert (r["token_ns"].map(len) == r["output_tokens_requested"]).all()
    assert (r["scheduled_ns"] >= r["arrival_ns"]).all()
    assert s.ttft_s.count == 10 and s.ttft_s.median > 0 and s.itl_s.count == int((r["output_tokens_requested"] - 1).sum())
    assert s.kv_occupancy_max is not None and 0 < s.kv_occupancy_max <= 1
    assert s.concurrency.count > 0
    # the pattern's prefix sharing, from the trace's hash_ids, as the schedule sent it
    lines = [json.loads(x) for x in (ROOT_TRACES / "mooncake.jsonl").read_text().splitlines()[:10]]
    seen, shared, total = set(), 0, 0
    for x in lines:
        shared += sum(h in seen for h in x["hash_ids"])
        total += len(x["hash_ids"])
        seen.update(x["hash_ids"])
    assert s.prefix_share == pytest.approx(shared / total)
    facts = w.summary.facts
    assert facts["engine"].startswith("transformers") and facts["page_size_tokens"] == 16
    assert facts["kv_bytes_per_token"] == 2 * 4 * 4 * 64 * 4  # llama-tiny: 2 (K, V) x 4 layers x 4 KV heads x head_dim 64 x fp32
    assert s.kv_bytes_total == facts["kv_cache_bytes"]
    spans = w.spans
    assert set(spans["phase"]) >= {"iteration", "queue", "prefill", "decode"}


def test_a_workload_without_an_engine_serves_requests_in_arrival_order(tmp_path):
    suite = """\
name: seq
device: cpu
measure: {max_seconds: 30, min_seconds: 0, sample_hz: 50, count_work: false, trace_ops: false}
workloads:
  - name: toy
    type: toy
    params: {first_s: 0.02, step_s: 0.01, steps: 2}
    load: {pattern: constant, rate: 50, requests: 10, sizes: {input: {fixed: 1}, output: {fixed: 1}}}
"""
    w = run_suite_text(tmp_path, suite)[1].workloads["toy"]
    r = requests_of(w).sort_values("index")
    assert (r["status"] == "finished").all() and len(r) == 10
    # one at a time: each starts after the previous finished, so requests arriving every 20 ms for 40 ms of work queue up
    assert (r["scheduled_ns"].to_numpy()[1:] >= r["finished_ns"].to_numpy()[:-1]).all()
    assert r["scheduled_ns"].iloc[-1] - r["arrival_ns"].iloc[-1] > r["scheduled_ns"].iloc[0] - r["arrival_ns"].iloc[0]
    # its tokens are the ends of its delivery spans (first, step, step), its own spans are kept per iteration
    assert (r["token_ns"].map(len) == 3).all()
    assert set(w.spans["phase"]) == {"iteration", "first", "step"} and w.spans["iteration"].nunique() == 10
    s = w.summary.serving
    assert s.status_counts == {"finished": 10} and s.queue_s.p90 > s.queue_s.median > 0
    assert "served in arrival order" in json.loads((w.path / "child.json").read_text())["serve_engine"]


BAD_ENGINE = '''
from workloads.toy_serve import ToyServe


class BadRecords(ToyServe):
    """toy_serve whose records say 'done' instead of 'finished', plus one record for a request never sent."""

    def collect(self, timeout_s):
        records = super().collect(timeout_s)
        for r in records:
            r["status"] = "done"
        if records and records[0]["index"] == 0:
            records.append({**records[0], "index": 999})
        return records
'''


def test_bad_engine_records_become_failed_requests_and_warnings(tmp_path):
    (tmp_path / "badengine.py").write_text(BAD_ENGINE)
    suite = TOY.format(params="{}", load=f"{{pattern: constant, rate: 40, requests: 4, {SIZES}}}", max_seconds=30)
    result, run = run_suite_text(tmp_path, suite.replace("type: toy_serve", "type: badengine:BadRecords"), expect_ok=False)
    w = run.workloads["toy"]
    assert w.summary.serving.status_counts == {"failed": 4}
    # no request finished and every one failed: the workload failed (exit 1), its records kept
    assert result.returncode == 1 and w.status == "failed" and w.summary.error.phase == "load"
    joined = " ".join(w.summary.warnings)
    assert "status 'done'" in joined and "999" in joined
