"""The serving metrics' definitions on hand-computed cases: Andes QoE, SLOs, goodput, knee, max rate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from profiler.characterize.serving import MaxRate, andes_qoe, interpolate_max_rate, itl_s, knee, meets_slo, per_request, window_s
from profiler.loadconfig import SLO


def test_qoe_is_one_when_tokens_arrive_on_the_expected_timeline():
    assert andes_qoe([1.0, 2.0, 3.0], expected_ttft_s=1.0, tokens_per_s=1.0) == pytest.approx(1.0)


def test_qoe_of_a_late_burst_is_the_ratio_of_areas():
    # expected at 1, 2, 3; all arrive at 3, the buffer shows them at 3, 4, 5; T = 5
    # expected area (5-1)+(5-2)+(5-3) = 9; delivered (5-3)+(5-4)+(5-5) = 3
    assert andes_qoe([3.0, 3.0, 3.0], expected_ttft_s=1.0, tokens_per_s=1.0) == pytest.approx(3 / 9)


def test_qoe_is_capped_at_one_when_tokens_come_early():
    assert andes_qoe([0.1, 0.1, 0.1], expected_ttft_s=1.0, tokens_per_s=1.0) == 1.0


def test_qoe_of_a_slow_stream_after_a_timely_start():
    # expected 1, 1.5, 2 (2 tok/s); delivered 1, 2, 3 (a 1 s gap each); T = 3
    # expected area 2 + 1.5 + 1 = 4.5; delivered 2 + 1 + 0 = 3
    assert andes_qoe([1.0, 2.0, 3.0], expected_ttft_s=1.0, tokens_per_s=2.0) == pytest.approx(3 / 4.5)


def test_qoe_of_nothing_is_nan_and_bad_parameters_raise():
    assert math.isnan(andes_qoe([], 1.0, 1.0))
    with pytest.raises(ValueError):
        andes_qoe([1.0], 0.0, 1.0)


def _requests() -> pd.DataFrame:
    ms = 1_000_000
    return pd.DataFrame(
        {
            "index": [0, 1, 2, 3],
            "measured": [True, True, True, False],
            "status": ["finished", "finished", "failed", "finished"],
            "arrival_ns": [0, 100 * ms, 200 * ms, 300 * ms],
            "scheduled_ns": [10 * ms, 150 * ms, 210 * ms, 310 * ms],
            "token_ns": [[100 * ms, 150 * ms, 200 * ms], [400 * ms, 420 * ms], [300 * ms], [400 * ms]],
            "finished_ns": [200 * ms, 420 * ms, 300 * ms, 400 * ms],
        }
    )


def test_per_request_latency_runs_from_arrival():
    t = per_request(_requests()).set_index("index")
    assert t.loc[0, "queue_s"] == pytest.approx(0.010)
    assert t.loc[0, "ttft_s"] == pytest.approx(0.100)
    assert t.loc[0, "e2e_s"] == pytest.approx(0.200)
    assert t.loc[0, "tpot_s"] == pytest.approx((0.200 - 0.100) / 2)  # vLLM: (E2E - TTFT) / (n - 1)
    assert t.loc[1, "ttft_s"] == pytest.approx(0.300) and t.loc[1, "tpot_s"] == pytest.approx(0.020)
    assert math.isnan(t.loc[2, "tpot_s"])  # one token: no TPOT
    assert sorted(itl_s(t.loc[[0, 1]])) == pytest.approx([0.02, 0.05, 0.05])  # per token


def test_slo_attainment_counts_failed_requests_as_missing_and_skips_tpot_of_one_token():
    t = per_request(_requests())
    measured = t.loc[t["measured"]]
    ok = meets_slo(measured, SLO(ttft_s=0.2, tpot_s=0.06))
    assert ok.tolist() == [True, False, False]  # request 1: TTFT 0.3 s; request 2 failed
    assert meets_slo(measured, SLO(ttft_s=None, tpot_s=None, e2e_s=0.5)).tolist() == [True, True, False]
    # goodput = requests meeting every SLO / measured window (first measured arrival 0 -> last measured end 0.42 s)
    assert window_s(t) == pytest.approx(0.42)
    assert ok.sum() / window_s(t) == pytest.approx(1 / 0.42)


def test_knee_is_the_point_farthest_below_the_chord():
    result = knee([1, 2, 3, 4, 5], [1.0, 1.1, 1.2, 2.0, 5.0])
    # normalised: x - y = 0, .225, .45, .5, 0 -> rate 4
    assert result.rate == 4
    assert knee([1, 2], [1.0, 2.0]).rate is None
    assert knee([1, 2, 3], [1.0, 1.0, 1.0]).rate is None
    assert knee([1, 2, 3, 4], [5.0, 4.0, 3.0, 2.0]).rate is None  # falling: no knee
    assert knee([1, 2, 3, 4], [1.0, 4.0, 9.0, 2.0]).rate is None  # peaks before the end


def test_highest_rate_meeting_the_target_is_interpolated_and_labelled():
    r = interpolate_max_rate([4, 1, 2], [0.5, 1.0, 0.95], 0.9)
    assert r.rate == pytest.approx(2 + (0.95 - 0.9) / (0.95 - 0.5) * 2)
    assert "interpolated" in r.basis
    assert interpolate_max_rate([1, 2], [1.0, 0.95], 0.9) == MaxRate(2.0, "at least", "at least: the highest rate swept still meets it")
    assert interpolate_max_rate([1, 2], [0.9, 0.5], 0.9).kind == "measured"
    assert interpolate_max_rate([1, 2], [0.5, 0.2], 0.9).rate is None


def test_itl_of_no_tokens_is_empty():
    assert itl_s(pd.DataFrame({"token_ns": [[], None]})).size == 0
    assert np.isnan(per_request(pd.DataFrame({"arrival_ns": [0], "scheduled_ns": [None], "token_ns": [[]], "finished_ns": [None]}))["ttft_s"][0])
