"""ITL against context and KV bytes against tokens of context held (profiler.characterize.serving), on
constructed request records and engine samples whose answers are known exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profiler.characterize.serving import (
    bin_width,
    context_gaps,
    context_growth,
    fit_kv_growth,
    itl_by_context,
    kv_tokens_held,
    per_request,
    running_at,
    running_at_gaps,
)

MS = 1_000_000


def records(rows: list[dict]) -> pd.DataFrame:
    """Request records as requests.parquet holds them (index, measured, status, arrival/sent/scheduled/finished ns, token_ns)."""
    base = {"measured": True, "status": "finished", "arrival_ns": 0, "sent_ns": 0, "finished_ns": None}
    out = []
    for i, r in enumerate(rows):
        row = {"index": i, **base, **r}
        if row["finished_ns"] is None and row.get("token_ns"):
            row["finished_ns"] = row["token_ns"][-1]
        out.append(row)
    return pd.DataFrame(out).astype({"finished_ns": float, "scheduled_ns": float, "sent_ns": float, "arrival_ns": float})


@pytest.mark.parametrize("longest, width", [(0, 1), (15, 1), (16, 2), (31, 2), (32, 5), (79, 5), (80, 10), (1109, 100), (2112, 200), (32_831, 5000)])
def test_the_bin_width_is_the_smallest_1_2_5_step_giving_at_most_16_bins(longest, width):
    assert bin_width(longest) == width


def test_the_i_th_gap_is_at_context_input_plus_i():
    table = records(
        [
            {"input_tokens": 10, "scheduled_ns": 0, "token_ns": [0, 1 * MS, 3 * MS, 6 * MS]},
            {"input_tokens": 20, "scheduled_ns": 0, "token_ns": [5 * MS]},  # one token: no gap
            {"input_tokens": 5, "scheduled_ns": 0, "token_ns": None, "status": "timed_out"},
        ]
    )
    gaps = context_gaps(table)
    assert gaps["index"].tolist() == [0, 0, 0]
    assert gaps["context_tokens"].tolist() == [11, 12, 13]
    assert gaps["itl_s"].tolist() == pytest.approx([0.001, 0.002, 0.003])
    assert gaps["end_ns"].tolist() == [1 * MS, 3 * MS, 6 * MS]
    assert context_gaps(table.iloc[1:]).empty


def test_itl_by_context_gives_each_bins_p50_and_p90_and_gap_count():
    gaps = pd.DataFrame({"context_tokens": np.arange(10), "itl_s": np.arange(10) / 1000, "running": [1.0] * 5 + [2.0, 2.0, 4.0, 4.0, 4.0]})
    bins = itl_by_context(gaps, width=5)
    assert bins[["context_lo", "context_hi", "gaps"]].values.tolist() == [[0, 5, 5], [5, 10, 5]]
    assert bins["itl_p50_s"].tolist() == pytest.approx([0.002, 0.007])
    assert bins["itl_p90_s"].tolist() == pytest.approx([0.0036, 0.0086])  # numpy's linear percentile: 0.9 x 4 = 3.6 of the way
    assert bins["running_p50"].tolist() == [1.0, 4.0]
    sparse = itl_by_context(gaps.loc[gaps["context_tokens"].isin([0, 9])].drop(columns="running"), width=3)
    assert sparse["context_lo"].tolist() == [0, 9] and sparse["running_p50"].isna().all()  # empty bins are left out
    with pytest.raises(ValueError, match="width"):
        itl_by_context(gaps, width=-1)


def test_the_running_batch_comes_from_the_engine_else_from_the_records():
    table = records([{"input_tokens": 1, "scheduled_ns": 0, "token_ns": [10]}, {"input_tokens": 1, "scheduled_ns": 5, "token_ns": [20]}])
    assert running_at(table, np.array([0, 5, 10, 11, 20, 21])).tolist() == [1, 2, 2, 1, 1, 0]
    engine = pd.DataFrame({"t_ns": [0, 10], "running": [1.0, 3.0]})
    running, source = running_at_gaps(table, engine, np.array([-1, 5, 10, 15]))
    assert source == "engine samples" and np.array_equal(running, [np.nan, 1.0, 3.0, 3.0], equal_nan=True)
    running, source = running_at_gaps(table, None, np.array([5]))
    assert source == "request records" and running.tolist() == [2.0]


def kv_case() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Request 0 holds 10 prompt tokens from t=0 and one more per token (t=10, 20, 30); request 1 holds 4 from
    t=15, tokens at 25 and 35, finished at 40. The engine reports 100 bytes per token held."""
    table = records(
        [
            {"input_tokens": 10, "scheduled_ns": 0, "token_ns": [10, 20, 30], "finished_ns": 30},
            {"input_tokens": 4, "scheduled_ns": 15, "token_ns": [25, 35], "finished_ns": 40},
        ]
    )
    t = [5, 15, 20, 25, 35, 40, 45]
    held = [10, 11 + 4, 12 + 4, 12 + 5, 6, 6, 0]
    engine = pd.DataFrame({"t_ns": t, "kv_bytes_used": [100.0 * h for h in held], "kv_bytes_total": 1e6, "running": [1, 2, 2, 2, 1, 1, 0]})
    return table, engine


def test_tokens_held_count_the_prompt_from_scheduling_and_one_per_token_delivered():
    table, engine = kv_case()
    held, why = kv_tokens_held(table, engine)
    assert why is None
    assert held["tokens_held"].tolist() == [10, 15, 16, 17, 6, 6, 0]
    fit = fit_kv_growth(held)
    assert fit["slope_bytes_per_token"] == pytest.approx(100.0) and fit["intercept_bytes"] == pytest.approx(0.0, abs=1e-6)
    assert fit["r2"] == pytest.approx(1.0) and fit["samples"] == 7 and fit["max_tokens_held"] == 17


def test_samples_after_a_request_without_token_times_are_left_out():
    table, engine = kv_case()
    lost = records([{"input_tokens": 50, "scheduled_ns": None, "sent_ns": 22, "token_ns": None, "status": "timed_out"}])
    held, why = kv_tokens_held(pd.concat([table, lost], ignore_index=True), engine)
    assert why is None and held["t_ns"].tolist() == [5, 15, 20]
    early = records([{"input_tokens": 50, "scheduled_ns": None, "sent_ns": 0, "token_ns": None, "status": "lost"}])
    held, why = kv_tokens_held(pd.concat([table, early], ignore_index=True), engine)
    assert held.empty and "not recorded" in why
    assert kv_tokens_held(table, engine.assign(kv_bytes_used=np.nan))[1] == "the engine reports no KV bytes used"


def test_whole_pages_lift_the_line_but_keep_its_slope():
    page, per_token = 64, 8192
    tokens = np.arange(1, 64 * page + 1)  # one request growing through 64 whole pages
    held = pd.DataFrame({"tokens_held": tokens, "kv_bytes_used": per_token * page * np.ceil(tokens / page)})
    fit = fit_kv_growth(held)
    assert fit["slope_bytes_per_token"] == pytest.approx(per_token, rel=0.001)
    assert fit["intercept_bytes"] == pytest.approx(per_token * (page - 1) / 2, rel=0.02)  # half a page of slack on average
    with pytest.raises(ValueError, match="at least 3"):
        fit_kv_growth(held.head(2))
    with pytest.raises(ValueError, match="same 5 tokens"):
        fit_kv_growth(pd.DataFrame({"tokens_held": [5, 5, 5], "kv_bytes_used": [1.0, 2.0, 3.0]}))


def growth_case() -> tuple[pd.DataFrame, pd.DataFrame]:
    """One request of 1 prompt token and 41 tokens whose i-th gap lasts i ms (context 1 + i); the engine runs 1
    request until 100 ms, then 3."""
    gaps_ms = np.arange(1, 41)
    token_ns = np.concatenate([[0], np.cumsum(gaps_ms) * MS]).tolist()
    table = per_request(records([{"input_tokens": 1, "scheduled_ns": 0, "token_ns": token_ns}]))
    engine = pd.DataFrame({"t_ns": [0, 100 * MS], "running": [1.0, 3.0], "kv_bytes_used": [np.nan, np.nan], "kv_bytes_total": [np.nan, np.nan]})
    return table, engine


def test_growth_compares_the_shortest_and_longest_bins_with_enough_gaps_and_flags_a_changing_batch():
    table, engine = growth_case()
    itl, kv, why = context_growth(table, table, engine, {"kv_bytes_per_token": 8192, "page_size_tokens": 32, "prefix_caching": False})
    assert itl.bin_tokens == 5 and itl.gaps == 40 and itl.max_context_tokens == 41
    assert [b.context_lo for b in itl.bins] == list(range(0, 45, 5)) and [b.gaps for b in itl.bins] == [3, 5, 5, 5, 5, 5, 5, 5, 2]
    assert (itl.from_bin, itl.to_bin) == (1, 7)  # contexts 5-9 (gaps 4-8 ms) and 35-39 (gaps 34-38 ms): p50 6 and 36 ms
    assert itl.bins[1].itl_p50_s == pytest.approx(0.006) and itl.bins[7].itl_p50_s == pytest.approx(0.036)
    assert itl.growth == pytest.approx(6.0)
    assert itl.running_from == "engine samples" and (itl.running_min, itl.running_max) == (1.0, 3.0) and itl.batch_changed
    assert kv is None and why == {"kv_by_context": "the engine reports no KV bytes used"}


def test_kv_growth_is_compared_with_the_declared_bytes_per_token_and_refused_under_prefix_caching():
    table, engine = kv_case()
    table = per_request(table)
    itl, kv, why = context_growth(table, table, engine, {"kv_bytes_per_token": 50, "page_size_tokens": 16, "prefix_caching": False})
    assert why == {}
    assert kv.slope_bytes_per_token == pytest.approx(100.0) and kv.slope_over_declared == pytest.approx(2.0)
    assert kv.declared_bytes_per_token == 50.0 and kv.page_tokens == 16 and kv.samples == 7
    assert kv.running_mean == pytest.approx(9 / 7)
    assert itl.growth is None and itl.from_bin is None  # 3 gaps in all: no bin has enough to compare
    _, kv, why = context_growth(table, table, engine, {"kv_bytes_per_token": 50, "prefix_caching": True})
    assert kv is None and "prefix caching" in why["kv_by_context"]
    itl, _, why = context_growth(table, table.iloc[:0], engine, {})
    assert itl is None and why["itl_by_context"] == "no finished measured request with 2 or more tokens"
