"""Arrival processes and request sizes (profiler.load.arrivals): statistics for a fixed seed, validation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from profiler.load.arrivals import gap_stats, schedule
from profiler.loadconfig import LoadConfig

SIZES = {"input": {"fixed": 128}, "output": {"fixed": 32}}


def make(**kw) -> LoadConfig:
    base = {"pattern": "poisson", "rate": 10.0, "requests": 20_000, "seed": 1, "sizes": SIZES}
    base.update(kw)
    return LoadConfig.model_validate({k: v for k, v in base.items() if v is not None})


def sends(config: LoadConfig) -> list[float]:
    return [r.send_s for r in schedule(config)]


def test_poisson_gaps_mean_and_cv():
    stats = gap_stats(sends(make()))
    assert stats.mean_gap_s == pytest.approx(0.1, rel=0.05)
    assert 0.9 <= stats.cv_gap <= 1.1
    assert stats.achieved_rate == pytest.approx(10.0, rel=0.05)


@pytest.mark.parametrize(("burstiness", "cv"), [(0.25, 2.0), (4.0, 0.5), (1.0, 1.0)])
def test_gamma_cv_is_one_over_sqrt_burstiness(burstiness, cv):
    stats = gap_stats(sends(make(pattern="gamma", burstiness=burstiness)))
    assert stats.cv_gap == pytest.approx(cv, rel=0.10)
    assert stats.mean_gap_s == pytest.approx(0.1, rel=0.05)


def test_constant_gaps_are_even():
    times = sends(make(pattern="constant", requests=100))
    stats = gap_stats(times)
    assert stats.cv_gap == pytest.approx(0.0, abs=1e-9)
    assert stats.mean_gap_s == pytest.approx(0.1)
    assert times[0] == pytest.approx(0.1) and times[-1] == pytest.approx(10.0)


def test_same_seed_same_schedule_other_seed_other():
    config = make(pattern="gamma", burstiness=0.5, requests=500, sizes={"input": {"lognormal": {"median": 500, "sigma": 0.8}}, "output": {"uniform": [1, 200]}})
    assert schedule(config) == schedule(config)
    other = schedule(config.model_copy(update={"seed": 2}))
    assert [r.send_s for r in other] != [r.send_s for r in schedule(config)]
    assert [r.input_tokens for r in other] != [r.input_tokens for r in schedule(config)]


def test_sizes_do_not_shift_arrivals():
    a = sends(make(requests=200))
    b = sends(make(requests=200, sizes={"input": {"uniform": [5, 9]}, "output": {"lognormal": {"median": 50, "sigma": 1.0}}}))
    assert a == b


@pytest.mark.parametrize("pattern", ["poisson", "gamma", "constant"])
def test_rescale_puts_last_request_at_n_over_rate(pattern):
    kw = {"burstiness": 0.5} if pattern == "gamma" else {}
    times = sends(make(pattern=pattern, requests=1000, rate=4.0, rescale=True, **kw))
    assert times[-1] == pytest.approx(1000 / 4.0, rel=1e-12)
    assert times == sorted(times)


def test_without_rescale_the_last_request_is_not_exactly_at_n_over_rate():
    assert sends(make(requests=1000, rate=4.0))[-1] != pytest.approx(250.0, rel=1e-9)


@pytest.mark.parametrize("pattern", ["poisson", "gamma", "constant"])
def test_duration_cuts_the_schedule(pattern):
    kw = {"burstiness": 2.0} if pattern == "gamma" else {}
    times = sends(make(pattern=pattern, requests=None, duration_s=200.0, rate=5.0, **kw))
    assert max(times) <= 200.0
    assert len(times) == pytest.approx(1000, rel=0.1)
    if pattern == "constant":
        assert len(times) == 1000


def test_warmup_and_cooldown_are_not_measured():
    reqs = schedule(make(requests=10, warmup_requests=2, cooldown_requests=3))
    assert [r.measured for r in reqs] == [False, False, True, True, True, True, True, False, False, False]
    assert [r.index for r in reqs] == list(range(10))


def test_warmup_and_cooldown_checked_against_a_duration_schedule():
    with pytest.raises(ValueError, match="warmup_requests"):
        schedule(make(requests=None, duration_s=1.0, rate=2.0, pattern="constant", warmup_requests=2))


def test_size_distributions():
    n = 20_000
    reqs = schedule(make(requests=n, sizes={"input": {"lognormal": {"median": 1000, "sigma": 0.7}}, "output": {"uniform": [3, 17]}}))
    inputs = np.array([r.input_tokens for r in reqs])
    outputs = np.array([r.output_tokens for r in reqs])
    assert np.median(inputs) == pytest.approx(1000, rel=0.05)
    assert inputs.min() >= 1
    assert outputs.min() >= 3 and outputs.max() <= 17
    assert set(outputs.tolist()) == set(range(3, 18))
    fixed = schedule(make(requests=50))
    assert {(r.input_tokens, r.output_tokens) for r in fixed} == {(128, 32)}
    assert all(r.prefix_blocks is None for r in fixed)


def trace_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "arrival_s": [0.0, 1.0, 2.5, 4.0, 10.0],
            "input_tokens": [100, 200, 300, 400, 500],
            "output_tokens": [10, 20, 30, 40, 50],
            "prefix_blocks": [[1, 2], [1, 3], None, [4], [5, 6, 7]],
        }
    )


def trace_config(**kw) -> LoadConfig:
    return LoadConfig.model_validate({"pattern": "trace", "trace": "azure.csv", "seed": 0, **kw})


def test_trace_replay_with_time_scale_halves_times():
    reqs = schedule(trace_config(time_scale=2.0, sizes={"input": "from_trace", "output": "from_trace"}), trace_frame())
    assert [r.send_s for r in reqs] == [0.0, 0.5, 1.25, 2.0, 5.0]
    assert [r.input_tokens for r in reqs] == [100, 200, 300, 400, 500]
    assert [r.output_tokens for r in reqs] == [10, 20, 30, 40, 50]
    assert [r.prefix_blocks for r in reqs] == [[1, 2], [1, 3], None, [4], [5, 6, 7]]


def test_trace_defaults_to_its_own_sizes_and_can_be_cut():
    assert [r.send_s for r in schedule(trace_config(), trace_frame())] == [0.0, 1.0, 2.5, 4.0, 10.0]
    assert len(schedule(trace_config(requests=3), trace_frame())) == 3
    assert [r.send_s for r in schedule(trace_config(duration_s=4.0), trace_frame())] == [0.0, 1.0, 2.5, 4.0]


def test_trace_with_drawn_sizes_keeps_times_and_drops_prefix_blocks():
    reqs = schedule(trace_config(sizes={"input": {"fixed": 7}, "output": "from_trace"}), trace_frame())
    assert [r.input_tokens for r in reqs] == [7] * 5
    assert [r.output_tokens for r in reqs] == [10, 20, 30, 40, 50]
    assert all(r.prefix_blocks is None for r in reqs)


def test_trace_dataframe_is_required_and_checked():
    with pytest.raises(ValueError, match="DataFrame"):
        schedule(trace_config())
    with pytest.raises(ValueError, match="prefix_blocks"):
        schedule(trace_config(), trace_frame().drop(columns=["prefix_blocks"]))
    with pytest.raises(ValueError, match="pass no trace"):
        schedule(make(requests=5), trace_frame())


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": None}, "rate"),
        ({"requests": 0}, "requests"),
        ({"pattern": "poisson", "burstiness": 2.0}, "burstiness"),
        ({"pattern": "gamma", "burstiness": 0}, "burstiness"),
        ({"duration_s": 10.0}, "duration_s"),
        ({"requests": None}, "requests"),
        ({"sizes": {"input": "from_trace", "output": {"fixed": 1}}}, "from_trace"),
        ({"requests": 10, "warmup_requests": 5, "cooldown_requests": 5}, "warmup_requests"),
        ({"warmup_requests": -1}, "warmup_requests"),
        ({"sizes": {"input": {"uniform": [10, 5]}, "output": {"fixed": 1}}}, "uniform"),
        ({"sizes": {"input": {"fixed": 1, "uniform": [1, 2]}, "output": {"fixed": 1}}}, "fixed"),
        ({"sizes": {"input": {"lognormal": {"median": 0, "sigma": 1}}, "output": {"fixed": 1}}}, "median"),
        ({"sizes": None}, "sizes"),
        ({"rescale": True, "requests": None, "duration_s": 5.0}, "rescale"),
        ({"time_scale": 2.0}, "time_scale"),
        ({"rates": 5}, "rates"),
    ],
)
def test_invalid_configs_name_the_field(overrides, field):
    with pytest.raises(ValidationError) as err:
        make(**overrides)
    assert field in str(err.value)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"pattern": "trace"}, "trace"),
        ({"pattern": "trace", "trace": "t.csv", "rate": 5.0}, "rate"),
        ({"pattern": "trace", "trace": "t.csv", "requests": 3, "duration_s": 1.0}, "duration_s"),
        ({"pattern": "trace", "trace": "t.csv", "time_scale": 0}, "time_scale"),
    ],
)
def test_invalid_trace_configs_name_the_field(config, field):
    with pytest.raises(ValidationError) as err:
        LoadConfig.model_validate(config)
    assert field in str(err.value)


def test_gap_stats_edges():
    assert gap_stats([0.0, 1.0, 2.0]).model_dump() == {"requests": 3, "mean_gap_s": 1.0, "cv_gap": 0.0, "achieved_rate": 1.0}
    at_once = gap_stats([1.0, 1.0])  # no gap to take a CV of, no span to take a rate over: unavailable, never nan or inf
    assert at_once.cv_gap is None and at_once.achieved_rate is None
    with pytest.raises(ValueError):
        gap_stats([1.0])
    with pytest.raises(ValueError):
        gap_stats([2.0, 1.0])


def test_closed_loop_needs_concurrency_and_requests_and_sends_all_at_zero():
    from profiler.load.arrivals import schedule
    from profiler.loadconfig import LoadConfig

    sizes = {"input": {"fixed": 8}, "output": {"fixed": 4}}
    load = LoadConfig.model_validate({"pattern": "closed", "concurrency": 3, "requests": 5, "sizes": sizes})
    assert [r.send_s for r in schedule(load)] == [0.0] * 5
    for bad, needle in (
        ({"pattern": "closed", "requests": 5, "sizes": sizes}, "concurrency"),
        ({"pattern": "closed", "concurrency": 2, "duration_s": 5.0, "sizes": sizes}, "requests"),
        ({"pattern": "closed", "concurrency": 2, "requests": 5, "rate": 3.0, "sizes": sizes}, "rate"),
        ({"pattern": "poisson", "concurrency": 2, "rate": 1.0, "requests": 5, "sizes": sizes}, "concurrency"),
        ({"pattern": "closed", "concurrency": 0, "requests": 5, "sizes": sizes}, "concurrency"),
    ):
        with pytest.raises(ValueError, match=needle):
            LoadConfig.model_validate(bad)


def test_requests_longer_than_the_positions_are_clipped_or_scaled_and_counted():
    from profiler.load.arrivals import Request, fit_to_positions

    def reqs():
        return [Request(0, 0.0, 100, 10, True), Request(1, 0.0, 30, 5, True), Request(2, 0.0, 50, 200, True)]

    clipped = reqs()
    info = fit_to_positions(clipped, 64, "clip")
    assert info.touched == 2 and info.factor is None
    assert [(r.input_tokens, r.output_tokens) for r in clipped] == [(54, 10), (30, 5), (1, 63)]
    scaled = reqs()
    info = fit_to_positions(scaled, 125, "scale")
    assert info.factor == pytest.approx(0.5) and info.touched == 3
    assert [(r.input_tokens, r.output_tokens) for r in scaled] == [(50, 5), (15, 2), (25, 100)]
    assert all(r.input_tokens + r.output_tokens <= 125 for r in scaled)
    with pytest.raises(ValueError, match="request 0 needs 100 \\+ 10 positions"):
        fit_to_positions(reqs(), 64, "reject")


def test_token_scale_shrinks_trace_sizes_and_only_traces_take_it(tmp_path):
    import pandas as pd

    from profiler.load.arrivals import schedule
    from profiler.loadconfig import LoadConfig

    trace = pd.DataFrame({"arrival_s": [0.0, 1.0], "input_tokens": [1000, 15], "output_tokens": [100, 4], "prefix_blocks": [None, None]})
    load = LoadConfig.model_validate({"pattern": "trace", "trace": "t.csv", "token_scale": 0.1})
    assert [(r.input_tokens, r.output_tokens) for r in schedule(load, trace)] == [(100, 10), (2, 1)]
    with pytest.raises(ValueError, match="token_scale"):
        LoadConfig.model_validate(
            {"pattern": "poisson", "rate": 1.0, "requests": 3, "token_scale": 0.5, "sizes": {"input": {"fixed": 1}, "output": {"fixed": 1}}}
        )


# ---------------------------------------------------------------- a capped lognormal (reasoning outputs' long tail)

CAPPED = {"input": {"fixed": 64}, "output": {"lognormal": {"median": 256, "sigma": 1.0, "max": 1024}}}


def test_a_capped_lognormal_keeps_its_median_and_sets_draws_above_the_cap_to_it():
    from profiler.load.arrivals import capped_sizes

    n, seed = 20_000, 3
    config = make(requests=n, seed=seed, sizes=CAPPED)
    outputs = np.array([r.output_tokens for r in schedule(config)])
    # the same draws by hand: schedule's output generator is the third child of SeedSequence(seed)
    raw = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2]).lognormal(math.log(256), 1.0, n)
    assert outputs.tolist() == np.maximum(np.rint(np.minimum(raw, 1024)), 1).astype(int).tolist()
    assert outputs.max() == 1024 and np.median(outputs) == pytest.approx(256, rel=0.05)
    above = int((raw > 1024).sum())
    assert capped_sizes(config, n) == {"output": above}
    assert above / n == pytest.approx(0.5 * math.erfc(math.log(4) / math.sqrt(2)), abs=0.01)  # 1 - Phi(ln(max / median) / sigma) = 8.3%
    assert (outputs == 1024).sum() >= above


def test_without_a_cap_the_lognormal_draws_are_unchanged_and_nothing_is_counted():
    from profiler.load.arrivals import capped_sizes

    config = make(requests=1000, seed=5, sizes={"input": {"lognormal": {"median": 100, "sigma": 0.5}}, "output": {"uniform": [1, 9]}})
    raw = np.random.default_rng(np.random.SeedSequence(5).spawn(3)[1]).lognormal(math.log(100), 0.5, 1000)
    assert [r.input_tokens for r in schedule(config)] == np.maximum(np.rint(raw), 1).astype(int).tolist()
    assert capped_sizes(config, 1000) == {}
    both = make(requests=10, sizes={"input": {"lognormal": {"median": 10, "sigma": 0.1, "max": 10}}, "output": CAPPED["output"]})
    assert set(capped_sizes(both, 10)) == {"input", "output"}


@pytest.mark.parametrize(
    "lognormal, needle",
    [
        ({"median": 256, "sigma": 1.0, "max": 100}, "max (100) is below the median (256)"),
        ({"median": 256, "sigma": 1.0, "max": 0}, "greater than or equal to 1"),
        ({"median": 256, "sigma": 1.0, "max": 512.5}, "max"),
        ({"median": 256, "sigma": 1.0, "cap": 512}, "cap"),
    ],
)
def test_a_bad_cap_is_refused_naming_it(lognormal, needle):
    with pytest.raises(ValidationError) as err:
        make(requests=10, sizes={"input": {"fixed": 1}, "output": {"lognormal": lognormal}})
    assert needle in str(err.value)


def test_failed_trace_rows_are_counted_in_the_replayed_span_only():
    """A trace of 40 rows, 7 with 0 output tokens (failed in production), at rows 10, 30, 32, 35-38. Replaying 24
    requests spans rows 0-24 (25 rows, one failed): 1 skipped, not 7. The same by duration_s; all 7 uncut."""
    import pandas as pd

    from profiler.load.arrivals import failed_trace_rows

    failed = {10, 30, 32, 35, 36, 37, 38}
    trace = pd.DataFrame({"arrival_s": [float(i) for i in range(40)], "input_tokens": [8] * 40, "output_tokens": [0 if i in failed else 4 for i in range(40)]})
    trace["prefix_blocks"] = None
    cut = LoadConfig.model_validate({"pattern": "trace", "trace": "t.csv", "requests": 24})
    assert [r.send_s for r in schedule(cut, trace)][-1] == 24.0  # the 24th request is row 24
    assert failed_trace_rows(cut, trace) == 1
    assert failed_trace_rows(LoadConfig.model_validate({"pattern": "trace", "trace": "t.csv", "duration_s": 20.0}), trace) == 1
    assert failed_trace_rows(LoadConfig.model_validate({"pattern": "trace", "trace": "t.csv"}), trace) == 7
    assert failed_trace_rows(LoadConfig.model_validate({"pattern": "trace", "trace": "t.csv", "requests": 40}), trace) == 7
