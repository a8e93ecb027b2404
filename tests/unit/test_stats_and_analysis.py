"""Statistics and the per-request metric definitions, on data whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from profiler.analysis import phase_noise, phase_table, request_metrics, summarize
from profiler.stats import describe

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
    return {"iteration": iteration, "warmup": warmup, "phase": phase, "index": 0, "start_ns": int(start_ms * MS),
            "end_ns": int(end_ms * MS), "units": float(units), "device_s": None, "error": error, "position": position}


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
    assert "ttft_s" not in out["metrics"] and "ttft_s" in out["unavailable"]
    assert "device_s" in out["unavailable"] and "cpu" in out["unavailable"]["device_s"]
    assert "peak_rss_bytes" in out["unavailable"]


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
