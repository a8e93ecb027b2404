"""Statistics and the per-request metric definitions, on data whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from profiler.characterize import stats
from profiler.characterize.analysis import phase_noise, phase_table, position_table, request_metrics
from profiler.characterize.stats import describe, ratio_ci, slope_ci
from profiler.characterize.summary import summarize

MS = 1_000_000


def test_describe_known_sample():
    s = describe(np.arange(1, 101, dtype=float))
    assert s["count"] == 100 and s["median"] == 50.5 and s["min"] == 1 and s["max"] == 100
    assert s["iqr"] == np.percentile(np.arange(1, 101), 75) - np.percentile(np.arange(1, 101), 25)
    lo, hi = s["ci95_median"]
    assert lo < 50.5 < hi and hi - lo < 25
    assert s["ci_method"].startswith("bootstrap")


def test_describe_is_reproducible_and_handles_large_and_empty():
    x = np.random.default_rng(1).normal(10, 1, 50_000)
    big = describe(x)
    assert big["ci_method"].startswith("order statistics")
    assert big["ci95_median"][0] < np.median(x) < big["ci95_median"][1]
    assert describe(x[:500]) == describe(x[:500])
    assert describe([]) == {"count": 0}
    assert describe([np.nan]) == {"count": 0}


def span(iteration, phase, start_ms, end_ms, units=0, warmup=False, error=None, position=None):
    return {
        "iteration": iteration,
        "warmup": warmup,
        "phase": phase,
        "index": 0,
        "start_ns": int(start_ms * MS),
        "end_ns": int(end_ms * MS),
        "units": float(units),
        "device_s": None,
        "error": error,
        "position": position,
    }


def known_spans() -> pd.DataFrame:
    rows = []
    for it, t0 in enumerate([0, 1000, 2000]):
        warm = it == 0
        # request: prefill 10 ms (first token), then 3 decode steps of 5 ms, 2 tokens per step (batch 2)
        rows.append(span(it, "iteration", t0, t0 + 26, warmup=warm))
        rows.append(span(it, "prefill", t0, t0 + 10, units=2, warmup=warm, position=8))
        for k in range(3):
            rows.append(span(it, "decode_step", t0 + 10 + 5 * k, t0 + 15 + 5 * k, units=2, warmup=warm, position=9 + k))
    return pd.DataFrame(rows)


def test_request_metrics_follow_vllm_definitions():
    m = request_metrics(known_spans())
    assert np.allclose(m["e2e_s"], [0.026, 0.026])  # warmup excluded
    assert np.allclose(m["ttft_s"], [0.010, 0.010])
    assert np.allclose(m["tpot_s"], [(0.026 - 0.010) / 3] * 2)
    assert np.allclose(m["itl_s"], [0.005] * 6)
    assert np.allclose(m["output_units_per_s"], [8 / 0.026] * 2)


def test_failed_iterations_are_excluded():
    df = known_spans()
    df.loc[(df["iteration"] == 2) & (df["phase"] == "iteration"), "error"] = "RuntimeError"
    assert len(request_metrics(df)["e2e_s"]) == 1


def test_summary_marks_missing_metrics_unavailable_with_reason():
    df = known_spans()
    df["units"] = 0.0
    out = summarize(df, pd.DataFrame(), {"device": "cpu"})
    assert out.metrics.ttft_s is None and "ttft_s" in out.unavailable
    assert "device_s" in out.unavailable and "cpu" in out.unavailable["device_s"]
    assert "peak_rss_bytes" in out.unavailable


def test_noise_is_measured_per_position_not_across_a_growing_step():
    rows = []
    for it in range(6):
        for k in range(10):  # latency grows 1 ms per position, identical across iterations
            rows.append(span(it, "decode_step", 100 * it + k, 100 * it + k + 1 + k, units=1, position=k))
    assert phase_noise(pd.DataFrame(rows))["decode_step"] == 0.0


def test_phase_table_for_notebooks():
    table = phase_table(known_spans()).set_index("phase")
    assert table.loc["decode_step", "count"] == 6 and table.loc["prefill", "count"] == 2
    assert table.loc["decode_step", "median_s"] == 0.005 and table.loc["iteration", "median_s"] == 0.026


def _forced_bootstrap(monkeypatch, fn, *args):
    """The same call with the bootstrap forced past BOOTSTRAP_MAX_N (the reference)."""
    monkeypatch.setattr(stats, "BOOTSTRAP_MAX_N", 10**9)
    try:
        return fn(*args)
    finally:
        monkeypatch.undo()


def test_large_sample_ratio_interval_agrees_with_the_bootstrap(monkeypatch):
    rng = np.random.default_rng(1)
    a = rng.lognormal(0.1, 0.3, 30_000)
    b = rng.lognormal(0.0, 0.3, 25_000)
    fast = ratio_ci(a, b)
    slow = _forced_bootstrap(monkeypatch, ratio_ci, a, b)
    width = slow["ci95"][1] - slow["ci95"][0]
    assert fast["ratio"] == slow["ratio"]
    assert abs(fast["ci95"][0] - slow["ci95"][0]) < 0.2 * width and abs(fast["ci95"][1] - slow["ci95"][1]) < 0.2 * width
    big = ratio_ci(rng.lognormal(0, 0.3, 1_000_000), rng.lognormal(0, 0.3, 1_000_000))  # a million each, no resample matrix
    assert big["ci95"][0] <= big["ratio"] <= big["ci95"][1] and big["ci95"][1] - big["ci95"][0] < 0.01


def test_large_sample_slope_interval_agrees_with_the_pairs_bootstrap(monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1000, 25_000)
    y = 3.0 + 0.002 * x + rng.normal(0, 0.05 + 0.0005 * x)  # noise grows with x: a plain SE would be wrong
    fast = slope_ci(x, y)
    slow = _forced_bootstrap(monkeypatch, slope_ci, x, y)
    width = slow[1] - slow[0]
    assert fast[0] < 0.002 < fast[1]
    assert abs(fast[0] - slow[0]) < 0.2 * width and abs(fast[1] - slow[1]) < 0.2 * width


def test_position_table_agrees_with_a_pandas_groupby():
    rng = np.random.default_rng(3)
    n = 5000
    spans = pd.DataFrame(
        {
            "iteration": rng.integers(1, 20, n),
            "warmup": False,
            "error": None,
            "phase": rng.choice(["decode_step", "prefill", "iteration"], n),
            "position": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 40, n).astype(float)),
            "start_ns": 0,
            "end_ns": rng.integers(1_000, 9_000_000, n),
            "state_bytes": np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 1 << 20, n).astype(float)),
        }
    )
    got = position_table(spans)
    m = spans.loc[spans["position"].notna()].assign(latency_s=lambda f: (f["end_ns"] - f["start_ns"]) / 1e9)
    want = m.groupby(["phase", "position"], as_index=False).agg(
        median_s=("latency_s", "median"), state_bytes=("state_bytes", "median"), count=("latency_s", "size")
    )
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want[got.columns].reset_index(drop=True), check_dtype=False)
    only = position_table(spans, "prefill")
    assert set(only["phase"]) == {"prefill"} and len(only) == len(want.loc[want["phase"] == "prefill"])


def streamed_request(sequences_attr: bool) -> pd.DataFrame:
    """Issue 11 case 10: one request streams a first token after 50 ms, then 10 chunks of 4 tokens
    20 ms apart (speculative decoding or chunked streaming): E2E 250 ms, 41 tokens."""
    rows = []
    for it, t0 in enumerate([0, 1000]):
        rows.append(span(it, "iteration", t0, t0 + 250))
        rows.append({**span(it, "first", t0, t0 + 50, units=1), **({"sequences": 1.0} if sequences_attr else {})})
        for k in range(10):
            rows.append({**span(it, "chunk", t0 + 50 + 20 * k, t0 + 70 + 20 * k, units=4), **({"sequences": 1.0} if sequences_attr else {})})
    return pd.DataFrame(rows)


def test_a_chunked_stream_is_measured_per_token():
    m = request_metrics(streamed_request(sequences_attr=True))
    assert np.allclose(m["ttft_s"], [0.050, 0.050])
    assert np.allclose(m["tpot_s"], [(0.250 - 0.050) / 40] * 2)  # vLLM: (E2E - TTFT) / (tokens - 1) = 5.0 ms
    assert len(m["itl_s"]) == 2 * 40 and np.allclose(m["itl_s"], 0.005)  # 4 tokens after 20 ms: four 5 ms gaps
    assert np.allclose(m["output_units_per_s"], 41 / 0.250)


def test_a_batch_delivery_is_one_token_per_sequence():
    """`units` 4 for 4 sequences is one token each: TPOT and ITL are per step, as before."""
    rows = []
    for it, t0 in enumerate([0, 1000]):
        rows.append(span(it, "iteration", t0, t0 + 60))
        for k in range(6):
            rows.append({**span(it, "step", t0 + 10 * k, t0 + 10 + 10 * k, units=4), "sequences": 4.0})
    m = request_metrics(pd.DataFrame(rows))
    assert np.allclose(m["tpot_s"], 0.010) and np.allclose(m["itl_s"], 0.010) and len(m["itl_s"]) == 2 * 5
    # without the attribute a delivery is read the same way (one token to each of `units` sequences)
    legacy = request_metrics(pd.DataFrame([{k: v for k, v in r.items() if k != "sequences"} for r in rows]))
    assert np.allclose(legacy["tpot_s"], m["tpot_s"]) and np.allclose(legacy["itl_s"], m["itl_s"])
