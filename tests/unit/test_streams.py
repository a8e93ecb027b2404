"""Concurrent streams within one workload (profiler/characterize/streams.py and the per-request, deadline and
drop accounting of profiler/characterize/analysis.py), on span tables with known timings: frames every 100 ms
with known encode times and drops, queries with known arrival, token and audio times, in two conditions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profiler.characterize.analysis import deadline_metrics, request_metrics
from profiler.characterize.serving import andes_qoe
from profiler.characterize.streams import first_output_s, interference, qoe_samples, streams_summary
from profiler.characterize.summary import summarize
from profiler.plugin import Declaration, QoE

MS = 1_000_000
PERIOD = 100 * MS
DECL = Declaration(
    output_unit="token",
    request="query",
    step="decode",
    deliveries=("prefill", "decode"),
    presentation="tts",
    qoe=QoE(expected_ttft_s=0.2, tokens_per_s=10.0),
    streams=("frames", "queries"),
)


def row(iteration: int, phase: str, start_ms: float, end_ms: float, **attrs) -> dict:
    return {
        "iteration": iteration,
        "warmup": False,
        "error": None,
        "phase": phase,
        "start_ns": round(start_ms * MS),
        "end_ns": round(end_ms * MS),
        "units": 0,
        **attrs,
    }


def frames(iteration: int, condition: str, encode_ms: float, count: int = 10, drop: tuple[int, ...] = ()) -> list[dict]:
    """`count` frames every 100 ms, each taking `encode_ms`; the frames in `drop` are skipped (dropped=1)."""
    out = []
    for k in range(count):
        t = k * 100
        if k in drop:
            out.append(row(iteration, "frame", t, t, condition=condition, deadline_ns=(t + 100) * MS, dropped=1))
            continue
        out.append(row(iteration, "frame", t, t + encode_ms, condition=condition, deadline_ns=(t + 100) * MS, scheduled_ns=t * MS, dropped=0))
        out.append(row(iteration, "frame_encode", t, t + encode_ms, condition=condition))
    return out


def query(iteration: int, condition: str, rid: int, arrival_ms: float, first_ms: float, gap_ms: float, tokens: int, audio_ms: float) -> list[dict]:
    """A query arriving at `arrival_ms`: first token `first_ms` later, then a token every `gap_ms`; first audio at arrival + audio_ms."""
    a = arrival_ms
    end = a + first_ms + gap_ms * (tokens - 1)
    out = [row(iteration, "query", a + 1, max(end, a + audio_ms), condition=condition, request_id=rid, obs_ns=a * MS)]
    out.append(row(iteration, "prefill", a + 1, a + first_ms, units=1, condition=condition, request_id=rid))
    for k in range(1, tokens):
        t = a + first_ms + gap_ms * k
        out.append(row(iteration, "decode", t - gap_ms, t, units=1, condition=condition, request_id=rid))
    out.append(row(iteration, "tts", a + first_ms + 10, a + audio_ms, condition=condition, request_id=rid))
    return out


def iteration(i: int, start_ms: float, end_ms: float) -> dict:
    return row(i, "iteration", start_ms, end_ms)


def session_table() -> pd.DataFrame:
    rows = [iteration(0, 0, 1000), iteration(1, 0, 1000)]
    rows += frames(0, "frames", encode_ms=20)
    rows += frames(1, "frames+queries", encode_ms=40, drop=(3, 7))
    rows += query(1, "frames+queries", rid=0, arrival_ms=100, first_ms=50, gap_ms=20, tokens=5, audio_ms=300)
    rows += query(1, "frames+queries", rid=1, arrival_ms=600, first_ms=80, gap_ms=20, tokens=3, audio_ms=250)
    return pd.DataFrame(rows)


def test_requests_that_share_an_iteration_are_measured_from_their_own_arrival():
    m = request_metrics(session_table(), DECL.deliveries, DECL.request)
    assert m["ttft_s"] == pytest.approx([0.050, 0.080])
    assert m["tpot_s"] == pytest.approx([0.020, 0.020])
    assert sorted(m["itl_s"]) == pytest.approx([0.020] * 6)
    assert m["e2e_s"] == pytest.approx([0.300, 0.250])  # the query span ends with its audio here
    assert first_output_s(session_table(), "query", "tts") == pytest.approx([0.300, 0.250])


def test_without_request_ids_an_iteration_is_still_one_request():
    t = session_table().drop(columns=["request_id"])
    m = request_metrics(t, DECL.deliveries)
    assert m["ttft_s"] == pytest.approx([0.150])  # iteration 1 starts at 0; its first delivery ends at 150 ms


def test_dropped_frames_are_missed_deadlines_and_counted_as_drops():
    d = deadline_metrics(session_table())
    assert d["deadline_miss_rate"] == pytest.approx([0.0, 0.2])  # 2 of 10 dropped in iteration 1; none late
    assert d["drop_rate"] == pytest.approx([0.0, 0.2])
    assert d["lateness_s"].size == 18  # dropped frames have no lateness of their own
    assert d["lateness_s"].max() == pytest.approx(-0.060)


def test_a_late_frame_is_a_miss_but_not_a_drop():
    t = pd.DataFrame([iteration(0, 0, 300)] + frames(0, "frames", encode_ms=150, count=3))
    d = deadline_metrics(t)
    assert d["deadline_miss_rate"] == pytest.approx([1.0])
    assert d["drop_rate"] == pytest.approx([0.0])


def test_qoe_hears_the_first_sentence_when_its_audio_is_ready():
    got = qoe_samples(session_table(), DECL)
    # query 0: tokens at 50, 70, 90, 110, 130 ms, audio at 300 ms: all five heard at 300 ms
    want = andes_qoe([0.3] * 5, 0.2, 10.0)
    assert got[0] == pytest.approx(want)
    assert 0 < got[0] < 1


def test_interference_compares_a_phase_alone_and_together():
    t = pd.DataFrame([iteration(i, 0, 1000) for i in range(2)] + frames(0, "frames", encode_ms=20) + frames(1, "frames+queries", encode_ms=40))
    conditions = pd.Series({0: "frames", 1: "frames+queries"})
    items = {i.phase: i for i in interference(t, conditions, seed=0, contended=False)}
    enc = items["frame_encode"]
    assert (enc.alone, enc.together) == ("frames", "frames+queries")
    assert enc.ratio == pytest.approx(2.0)
    assert enc.verdict == "slower"
    assert enc.n == [10, 10]


def test_interference_is_inconclusive_with_few_spans_or_under_contention():
    t = pd.DataFrame([iteration(i, 0, 1000) for i in range(2)] + frames(0, "frames", 20, count=3) + frames(1, "frames+queries", 40, count=3))
    conditions = pd.Series({0: "frames", 1: "frames+queries"})
    assert all(i.verdict.startswith("inconclusive: fewer than") for i in interference(t, conditions, 0, False))
    t = session_table()
    items = interference(t, pd.Series({0: "frames", 1: "frames+queries"}), 0, contended=True)
    assert items and all(i.verdict.startswith("inconclusive: measured under contention") for i in items)


def test_energy_per_condition_is_the_counter_over_its_sessions():
    t = pd.DataFrame(
        [row(0, "iteration", 0, 3000), row(1, "iteration", 3000, 6000)]
        + [row(0, "frame_encode", 10, 20, condition="frames"), row(1, "frame_encode", 3010, 3040, condition="frames+queries")]
    )
    # a counter rising at 10 W, then at 30 W
    ts = np.arange(0, 6001, 100)
    energy = np.where(ts <= 3000, ts / 1000 * 10, 30 + (ts - 3000) / 1000 * 30)
    samples = pd.DataFrame({"t_ns": ts * MS, "gpu_energy_j": energy})
    s = streams_summary(t, samples, DECL, 0, False, lambda part: (None, None, {}))
    assert s.energy_unavailable is None
    assert s.conditions["frames"].average_power_w == pytest.approx(10.0)
    assert s.conditions["frames+queries"].average_power_w == pytest.approx(30.0)
    none = streams_summary(t, pd.DataFrame({"t_ns": ts * MS}), DECL, 0, False, lambda part: (None, None, {}))
    assert "no NVML energy counter" in none.energy_unavailable


def test_the_summary_gives_each_condition_and_the_time_to_first_audio():
    s = summarize(session_table(), pd.DataFrame(), {}, DECL)
    assert s.metrics.first_output_s.count == 2
    assert s.metrics.first_output_s.median == pytest.approx(0.275)
    assert s.metrics.qoe.count == 2
    assert set(s.streams.conditions) == {"frames", "frames+queries"}
    both = s.streams.conditions["frames+queries"]
    assert both.deadlines.drop_rate.mean == pytest.approx(0.2)
    assert both.metrics.ttft_s.count == 2
    assert s.streams.conditions["frames"].metrics.ttft_s is None
    assert s.streams.energy_unavailable.startswith("no NVML")


def test_requests_in_flight_count_those_that_arrived_and_are_not_done():
    from profiler.characterize.streams import in_flight_at_arrival

    rows = [iteration(0, 0, 2000)]
    rows += query(0, "queries", rid=0, arrival_ms=100, first_ms=50, gap_ms=20, tokens=5, audio_ms=600)  # ends at 700
    rows += query(0, "queries", rid=1, arrival_ms=300, first_ms=50, gap_ms=20, tokens=5, audio_ms=600)  # arrives during 0
    rows += query(0, "queries", rid=2, arrival_ms=1500, first_ms=50, gap_ms=20, tokens=5, audio_ms=100)
    assert list(in_flight_at_arrival(pd.DataFrame(rows), "query")) == [1, 2, 1]


def test_dropped_inputs_have_no_latency_of_their_own():
    from profiler.characterize.analysis import phase_stats

    t = pd.DataFrame([iteration(0, 0, 1000)] + frames(0, "frames", encode_ms=30, drop=(1, 2, 3)))
    assert phase_stats(t)["frame"]["latency_s"]["count"] == 7
    assert phase_stats(t)["frame"]["latency_s"]["median"] == pytest.approx(0.030)


def test_a_condition_without_requests_is_said_and_has_no_request_figures():
    from profiler.characterize.streams import stream_warnings

    rows = [iteration(0, 0, 1000), iteration(1, 0, 1000)]
    rows += query(0, "queries", rid=0, arrival_ms=100, first_ms=50, gap_ms=20, tokens=5, audio_ms=300)
    rows += frames(1, "frames+queries", encode_ms=40)  # its query stream drew no arrival
    s = summarize(pd.DataFrame(rows), pd.DataFrame(), {}, DECL)
    assert s.streams.conditions["frames+queries"].metrics.e2e_s is None  # not the session's length
    (warning,) = stream_warnings(s.streams)
    assert warning.startswith("condition frames+queries drew no request") and "where queries drew 1" in warning
    only_frames = summarize(pd.DataFrame([iteration(0, 0, 1000)] + frames(0, "frames", encode_ms=40)), pd.DataFrame(), {}, DECL)
    assert only_frames.metrics.e2e_s is None
