"""The measured window of a load run on hand-computed cases: a request that did not finish is in the window from its
arrival to the moment the driver stopped, so throughput and goodput are not inflated by timed-out requests; a closed
loop reports the concurrency it held and the rate the engine paced it to, and its warnings speak in its own terms."""

from __future__ import annotations

import pandas as pd
import pytest

from profiler.characterize.serving import concurrency_held, measured_window_ns, none_finished, per_request, serving_summary, serving_warnings
from profiler.loadconfig import LoadConfig, Objective
from profiler.runmodel import LoadFacts

S = 1_000_000_000
SIZES = {"input": {"fixed": 4}, "output": {"fixed": 2}}


def record(index: int, arrival_s: float | None, tokens_s: list[float] | None, status: str, sent_s: float | None = None, queued_s: float = 0.0) -> dict:
    """One row of requests.parquet (run/serve.py), times in seconds from 0 turned into ns; the engine schedules it
    `queued_s` after its arrival."""
    arrival = None if arrival_s is None else round(arrival_s * S)
    tokens = None if tokens_s is None else [round(t * S) for t in tokens_s]
    return {
        "index": index,
        "measured": True,
        "input_tokens": 4,
        "output_tokens_requested": 2,
        "scheduled_send_s": arrival_s or 0.0,
        "arrival_ns": arrival,
        "sent_ns": None if arrival is None else round((sent_s if sent_s is not None else arrival_s) * S),
        "scheduled_ns": None if arrival is None else arrival + round(queued_s * S),
        "token_ns": tokens,
        "finished_ns": tokens[-1] if tokens else None,
        "status": status,
        "error": None,
        "slot_wait_s": None,
    }


def test_an_open_loop_whose_requests_time_out_is_measured_to_the_drivers_stop():
    # arrivals at 0..4 s; three finish 0.5 s after arriving; the last two never end; the driver stops at 5 s
    rows = [record(i, float(i), [i + 0.25, i + 0.5], "finished") for i in range(3)]
    rows += [record(3, 3.0, None, "timed_out"), record(4, 4.0, None, "timed_out")]
    load = LoadConfig.model_validate({"pattern": "poisson", "rate": 1.0, "requests": 5, "sizes": SIZES})
    facts = LoadFacts(pattern="poisson", requests=5, measured_requests=5, end_ns=5 * S)
    s = serving_summary(pd.DataFrame(rows), None, facts, load, Objective())
    assert s.window_s == pytest.approx(5.0)  # 0 s to the stop, not to the last finish (2.5 s) or the last arrival (4 s)
    assert s.throughput_rps == pytest.approx(3 / 5) and s.goodput_rps == pytest.approx(0.0)  # TPOT 0.25 s misses 0.1 s
    assert s.window_ended_at_stop and (s.window_start_ns, s.window_end_ns) == (0, 5 * S)
    assert s.measured_status_counts == {"finished": 3, "timed_out": 2}
    # Little's law: 3 x 0.5 s + (5 - 3) s + (5 - 4) s in the system over 5 s
    assert s.concurrency_held == pytest.approx((1.5 + 2 + 1) / 5)
    assert s.offered_rate_rps == pytest.approx(1.0)
    (short,) = serving_warnings(s, facts)  # 0.6 of 1.0 req/s served, but not an overload: two requests were cut off
    assert short.startswith("offered 1 req/s, served 0.6 req/s, but 2 of 5 measured requests had not ended") and "queue grew" not in short
    # without the stop (a child that died mid-load; an older summary) an unended request ends at its arrival, as before
    assert measured_window_ns(per_request(pd.DataFrame(rows))) == (0.0, 4.0 * S)


def test_a_closed_loop_outlasting_max_seconds_reports_its_concurrency_not_an_offered_rate():
    # concurrency 2, 6 requests: two sent at 0 and 1 ms never end, four never sent; the driver stops at 5 s
    rows = [record(0, 0.0, None, "timed_out"), record(1, 0.001, None, "timed_out")]
    rows += [record(i, None, None, "not_sent") for i in range(2, 6)]
    rows[2:] = [{**r, "measured": True} for r in rows[2:]]
    load = LoadConfig.model_validate({"pattern": "closed", "concurrency": 2, "requests": 6, "sizes": SIZES})
    facts = LoadFacts(pattern="closed", requests=6, measured_requests=6, end_ns=5 * S)
    s = serving_summary(pd.DataFrame(rows), None, facts, load, Objective())
    assert s.offered_rate_rps is None and s.arrival_cv is None  # 2 sends 1 ms apart are not a rate of 1000 req/s
    assert s.window_s == pytest.approx(5.0) and s.throughput_rps == 0.0
    assert s.concurrency_held == pytest.approx((5.0 + 4.999) / 5.0)
    warnings = serving_warnings(s, facts)
    assert not any("queue grew" in w for w in warnings)
    (closed,) = [w for w in warnings if w.startswith("closed loop")]
    assert "closed loop at concurrency 2: when max_seconds stopped the run, 2 measured request(s) were still in flight and 4 never sent" in closed
    assert "held 2 requests in flight and finished none, so no request's latency statistics" in closed


def test_concurrency_held_counts_each_request_inside_the_window_only():
    rows = [record(0, 0.0, [1.0], "finished"), record(1, 1.0, [3.0], "finished")]  # 1 s + 2 s in 3 s
    assert concurrency_held(per_request(pd.DataFrame(rows))) == pytest.approx(1.0)


def test_a_chunk_of_several_tokens_is_several_tokens_and_itl_stays_per_token():
    """A streamed chunk carrying k tokens after a gap g (k equal arrival times) gives k gaps of g / k; tokens that come with
    the first one are inside TTFT and have no gap of their own."""
    from profiler.characterize.serving import itl_s, token_gaps_ns

    ms = 1_000_000
    tokens = [0, 0, 10 * ms, 40 * ms, 40 * ms, 40 * ms, 50 * ms]  # 2 tokens first, then 1, then 3 after 30 ms, then 1
    gaps = token_gaps_ns(tokens)
    assert gaps[0] != gaps[0] and list(gaps[1:]) == [10 * ms] * 5  # NaN, then 10 ms per token
    table = pd.DataFrame({"token_ns": [tokens, [0, 20 * ms]]})
    assert list(itl_s(table)) == pytest.approx([0.010] * 5 + [0.020])


OPEN8 = {"pattern": "poisson", "rate": 8.0, "requests": 12, "sizes": SIZES}


def test_overload_is_a_queue_that_grew_not_a_short_run_served_below_its_offered_rate():
    # 12 requests 1/8 s apart, none queued, each 0.5 s from arrival to its last token: 12 served in 1.875 s (6.4 req/s)
    # against 8 offered, below 0.9 x, as a short run's drain tail makes it; not an overload
    rows = [record(i, i / 8, [i / 8 + 0.05, i / 8 + 0.5], "finished") for i in range(12)]
    load = LoadConfig.model_validate(OPEN8)
    facts = LoadFacts(pattern="poisson", requests=12, measured_requests=12, end_ns=2 * S)
    calm = serving_summary(pd.DataFrame(rows), None, facts, load, Objective())
    assert calm.throughput_rps < 0.9 * calm.offered_rate_rps and calm.queue_trend_s == (0.0, 0.0)
    assert serving_warnings(calm, facts) == []
    # the same arrivals, queued 0.1 s more per request: the last quarter waits 1.0 s (median) against 0.1 s
    grown = [record(i, i / 8, [i / 8 + 0.1 * i + 0.05, i / 8 + 0.1 * i + 0.5], "finished", queued_s=0.1 * i) for i in range(12)]
    s = serving_summary(pd.DataFrame(grown), None, facts, load, Objective())
    (overload,) = serving_warnings(s, facts)
    assert overload.startswith("overloaded: the queueing delay grew from 0.1 s") and "to 1 s" in overload


def test_requests_never_sent_are_left_out_of_attainment_and_failures_are_said():
    rows = [record(i, i / 8, [i / 8 + 0.05, i / 8 + 0.1], "finished") for i in range(10)]
    rows[3] = {**rows[3], "status": "failed", "error": "boom"}
    rows += [record(10, None, None, "not_sent"), record(11, None, None, "not_sent")]
    facts = LoadFacts(pattern="poisson", requests=12, measured_requests=12, end_ns=2 * S)
    s = serving_summary(pd.DataFrame(rows), None, facts, LoadConfig.model_validate(OPEN8), Objective())
    assert s.slo_attainment == pytest.approx(9 / 10)  # 9 of the 10 sent meet the SLO; the 2 never sent are not misses
    warnings = serving_warnings(s, facts)
    assert "1 of 12 measured requests failed" in warnings[0]
    assert warnings[1].startswith("2 of 12 measured requests were never sent: their send time fell after max_seconds")
    assert warnings[0] == "1 of 12 measured requests failed; most common error (1): boom"


def test_a_server_over_http_is_not_overloaded_because_its_late_prompts_were_long():
    """No scheduling time (scheduled_ns None): TTFT stands in for queueing, at the median prompt length. 12 requests,
    TTFT = 0.01 s + 0.0001 s per prompt token, prompts of 50 and 450 tokens in turn (the first quarter 50, 450, 50; the
    last 450, 50, 450): raw TTFT medians 0.015 s and 0.055 s (3.7x, 40 ms: an overload by the rule), the same at the
    median prompt (250): 0.035 s both."""
    rows = []
    for i in range(12):
        n = 50 if i % 2 == 0 else 450
        ttft = 0.01 + 0.0001 * n
        rows.append({**record(i, i / 8, [i / 8 + ttft, i / 8 + ttft + 0.01], "finished"), "scheduled_ns": None, "input_tokens": n})
    facts = LoadFacts(pattern="poisson", requests=12, measured_requests=12, end_ns=3 * S)
    s = serving_summary(pd.DataFrame(rows), None, facts, LoadConfig.model_validate(OPEN8), Objective())
    assert s.queue_s.count == 0 and s.queue_trend_s == pytest.approx((0.035, 0.035))
    assert not [w for w in serving_warnings(s, facts) if w.startswith("overloaded")]
    # a queue that grows 10 ms per request on top of the same prompts is still seen, and named for what stands in
    grown = [{**r, "token_ns": [t + i * 10_000_000 for t in r["token_ns"]], "finished_ns": r["finished_ns"] + i * 10_000_000} for i, r in enumerate(rows)]
    s = serving_summary(pd.DataFrame(grown), None, facts, LoadConfig.model_validate(OPEN8), Objective())
    (overload,) = [w for w in serving_warnings(s, facts) if w.startswith("overloaded")]
    assert overload.startswith("overloaded: TTFT at the median prompt length (the server reports no queueing: TTFT stands in) grew")


def test_a_load_run_in_which_no_sent_request_finished_is_a_failure_with_its_most_common_error():
    rows = [{**record(i, i / 8, None, "failed"), "error": "HTTP 404: Not Found" if i else "HTTP 500: boom"} for i in range(4)]
    rows.append(record(4, None, None, "not_sent"))
    facts = LoadFacts(pattern="poisson", requests=5, measured_requests=5, end_ns=2 * S)
    s = serving_summary(pd.DataFrame(rows), None, facts, LoadConfig.model_validate(OPEN8), Objective())
    assert s.measured_errors == {"HTTP 404: Not Found": 3, "HTTP 500: boom": 1}
    assert none_finished(s) == (
        "none of the 4 measured requests sent finished (4 failed); most common error (3): HTTP 404: Not Found "
        "(and 1 other error text: requests.parquet, column error)"
    )
    one_ok = [{**rows[0], **record(0, 0.0, [0.05, 0.1], "finished")}] + rows[1:]
    assert none_finished(serving_summary(pd.DataFrame(one_ok), None, facts, LoadConfig.model_validate(OPEN8), Objective())) is None
