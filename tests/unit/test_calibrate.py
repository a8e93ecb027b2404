"""Ceilings that cannot be beaten: the stability rule of the repeated trials (a fake timer, never
the machine's), the cache's validation (machine key, profiler version, method, age), and a phase
that beats a ceiling, which gets a reason and never a utilization above 100%."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from profiler.characterize.summary import Passes, WorkloadOutcome, build_summary
from profiler.errors import UserError
from profiler.measure import calibrate
from profiler.measure.calibrate import CACHE_FORMAT, MAX_AGE_ENV, UTC_FORMAT, is_stable, repeat_until_stable
from profiler.plugin import Declaration
from profiler.runmodel import Calibration, Status, Work

# ---------------------------------------------------------------- repeated trials, on a fake timer


class FakeDevice:
    """A trial returns the next scripted duration and advances a fake clock by it (plus 1 ms of bookkeeping)."""

    def __init__(self, seconds: list[float]) -> None:
        self.seconds = list(seconds)
        self.now = 0.0
        self.calls = 0

    def trial(self) -> float:
        s = self.seconds[min(self.calls, len(self.seconds) - 1)]
        self.calls += 1
        self.now += s + 0.001
        return s

    def clock(self) -> float:
        return self.now


def test_stable_needs_the_peak_twice_and_no_rise_in_the_last_window():
    assert not is_stable([10.0] * 9)  # fewer than 2 x window trials
    assert is_stable([10.0] * 10)
    assert is_stable([9.0, 10.0, 9.0, 9.0, 9.0, 9.8, 9.0, 9.0, 9.0, 9.0])  # 9.8 within 3% of 10: reached again
    assert not is_stable([9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 10.0])  # still rising: the last window beat the rest by 11%
    assert not is_stable([9.0, 20.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0])  # a one-off peak is not reached again


def test_trials_stop_once_stable_and_drop_the_warmup():
    # 2 warmup trials (slow: never counted), then rising rates that settle at 100 units/s
    device = FakeDevice([1.0, 1.0, 0.02, 0.015, 0.012, 0.0105] + [0.01] * 50)
    trials = repeat_until_stable(device.trial, work=1.0, budget_s=60, clock=device.clock)
    assert trials.stable and device.calls == 2 + len(trials.rates)
    assert trials.best == pytest.approx(100.0) and min(trials.rates) == pytest.approx(50.0)  # the warmup's 1 unit/s is not among them
    assert len(trials.rates) == 10  # the 10th trial makes two windows of 5 whose bests are within 3% of the best
    spread = trials.spread()
    assert spread["best"] == pytest.approx(100.0) and spread["median"] == pytest.approx(100.0) and spread["trials"] == 10 and spread["stable"]


def test_trials_that_never_settle_stop_at_the_budget_and_say_so():
    # every trial 5% faster than the last: the best keeps rising, so it never settles
    device = FakeDevice([0.1 * 0.95**k for k in range(400)])
    trials = repeat_until_stable(device.trial, work=1.0, budget_s=1.0, clock=device.clock)
    assert not trials.stable and not trials.spread()["stable"]
    assert device.now >= 1.0 and device.now < 1.0 + 0.2  # stopped at the first trial past the budget
    assert trials.best == max(trials.rates) and trials.best > trials.rates[0]


# ---------------------------------------------------------------- the cache


KEY = {"cpu": "Test CPU", "threads": 2, "torch": "2.13.0+cpu", "device": "cpu", "profiler": "0.2.0"}
NOW = 2_000_000_000.0  # 2033-05-18, seconds since the epoch
DAY = 86400.0


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A temporary PROFILER_CACHE_DIR, this machine's key fixed, and `measure` replaced by a counter (no timing)."""
    monkeypatch.setenv("PROFILER_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(MAX_AGE_ENV, raising=False)
    monkeypatch.setattr(calibrate, "machine_key", lambda device: dict(KEY))
    measured = []

    def fake_measure(device: str) -> dict:
        measured.append(device)
        return {"device": device, "matmul_flops_per_s": {"float32": 2e11}, "copy_bytes_per_s": 4e10, "method": {"matmul": "fake", "copy": "fake"}}

    monkeypatch.setattr(calibrate, "measure", fake_measure)
    return measured


def write_cached(age_s: float, **changes) -> Path:
    path = calibrate.cache_path(KEY)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "format": CACHE_FORMAT,
        "key": dict(KEY),
        "measured_utc": time.strftime(UTC_FORMAT, time.gmtime(NOW - age_s)),
        "device": "cpu",
        "matmul_flops_per_s": {"float32": 1e11},
        "copy_bytes_per_s": 3e10,
        "method": {"matmul": "cached", "copy": "cached"},
    }
    data.update(changes)
    path.write_text(json.dumps(data))
    return path


def load(**kw) -> dict:
    return calibrate.load_or_measure("cpu", now=lambda: NOW, **kw)


def test_a_fresh_cache_of_this_machine_is_used_with_its_age(cache):
    path = write_cached(age_s=2 * DAY)
    result = load()
    assert cache == [] and result["from_cache"] and result["cache_file"] == str(path)
    assert result["age_s"] == pytest.approx(2 * DAY) and result["matmul_flops_per_s"] == {"float32": 1e11}
    assert Calibration.model_validate(result).provenance == "taken from the per-machine cache, 2.0 days old"


@pytest.mark.parametrize(
    "age_days, changes, why",
    [
        (8, {}, "the cached calibration is stale: measured 8.0 days ago, limit 7 days (PROFILER_CALIBRATION_MAX_AGE_DAYS)"),
        (1, {"key": {**KEY, "torch": "2.12.0+cpu"}}, "is for another machine or setup (torch '2.12.0+cpu' -> '2.13.0+cpu')"),
        (1, {"key": {**KEY, "profiler": "0.1.0"}}, "is for another machine or setup (profiler '0.1.0' -> '0.2.0')"),
        (1, {"key": {**KEY, "threads": 8}}, "is for another machine or setup (threads 8 -> 2)"),
        (1, {"format": None}, "was written by another calibration method"),
        (-2, {}, "stale"),  # dated in the future: a clock was wrong
    ],
)
def test_a_stale_or_mismatched_cache_is_measured_again(cache, age_days, changes, why):
    path = write_cached(age_s=age_days * DAY, **changes)
    result = load()
    assert cache == ["cpu"] and not result["from_cache"] and result["age_s"] == 0.0
    assert why in result["cache_note"], result["cache_note"]
    assert result["matmul_flops_per_s"] == {"float32": 2e11}
    rewritten = json.loads(path.read_text())  # the fresh measurement replaces it
    assert rewritten["key"] == KEY and rewritten["format"] == CACHE_FORMAT and rewritten["matmul_flops_per_s"] == {"float32": 2e11}
    assert load()["from_cache"]  # and is used next time


def test_the_age_limit_is_configurable_and_force_measures_again(cache, monkeypatch):
    write_cached(age_s=8 * DAY)
    monkeypatch.setenv(MAX_AGE_ENV, "30")
    assert load()["from_cache"] and cache == []
    result = load(force=True)
    assert not result["from_cache"] and result["cache_note"] == "--force" and cache == ["cpu"]
    monkeypatch.setenv(MAX_AGE_ENV, "a week")
    with pytest.raises(UserError, match="PROFILER_CALIBRATION_MAX_AGE_DAYS='a week': not a number of days"):
        load()


# ---------------------------------------------------------------- a phase that beats a ceiling

MS = 1_000_000


def spans() -> pd.DataFrame:
    """3 measured iterations (and a warmup) of a 10 ms `gemm` phase and a 10 ms `copy` phase."""
    rows = []
    for it in range(4):
        t0 = it * 100 * MS
        rows.append({"iteration": it, "warmup": it == 0, "phase": "iteration", "start_ns": t0, "end_ns": t0 + 20 * MS, "units": 0.0, "error": None})
        rows.append({"iteration": it, "warmup": it == 0, "phase": "gemm", "start_ns": t0, "end_ns": t0 + 10 * MS, "units": 1.0, "error": None})
        rows.append({"iteration": it, "warmup": it == 0, "phase": "copy", "start_ns": t0 + 10 * MS, "end_ns": t0 + 20 * MS, "units": 1.0, "error": None})
    return pd.DataFrame(rows)


def test_a_phase_that_beats_a_ceiling_has_no_utilization_but_a_reason():
    # gemm: 1.2e10 FLOP in 10 ms = 1.2 TFLOP/s against a calibrated 1 TFLOP/s; copy: 6e8 B in 10 ms = 60 GB/s against 50 GB/s
    work = pd.DataFrame(
        [
            {"phase": "gemm", "flops_counted": 1.2e10, "analytic_flops": 0.0, "bytes_moved": 1e8},
            {"phase": "copy", "flops_counted": 0.0, "analytic_flops": 0.0, "bytes_moved": 6e8},
            {"phase": "iteration", "flops_counted": 1.2e10, "analytic_flops": 0.0, "bytes_moved": 7e8},
        ]
    )
    ceilings = {"matmul_flops_per_s": {"float32": 1e12}, "copy_bytes_per_s": 5e10}
    outcome = WorkloadOutcome(
        name="w",
        type="synthetic",
        plugin="tests",
        params={},
        declaration=Declaration(step="gemm"),
        device="cpu",
        seed=0,
        status=Status.OK,
        error=None,
        child={"facts": {"dtype": "float32"}},
        wall_s=1.0,
    )
    summary = build_summary(outcome, spans(), pd.DataFrame(), 12, Passes(count_work=True, trace_ops=False, work=work, calibration=ceilings))
    assert summary.problems == []
    phases = summary.work.phases
    assert phases["gemm"].achieved_flops_per_s == pytest.approx(1.2e12) and phases["copy"].achieved_bytes_per_s == pytest.approx(6e10)

    def utilisations(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k in ("mfu", "mbu") and v is not None:
                    yield k, v
                yield from utilisations(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from utilisations(v)

    found = list(utilisations(summary.model_dump(mode="json")))
    assert found and all(v <= 1 for _, v in found), found  # nowhere in the summary a utilization above 100%
    assert phases["gemm"].mfu is None and phases["gemm"].mbu == pytest.approx(1e10 / 5e10) and phases["gemm"].bound is None
    assert phases["copy"].mbu is None and phases["copy"].mfu == 0.0 and phases["copy"].bound is None
    assert summary.work.ceiling_exceeded == {
        "gemm": "achieved 1.20 TFLOP/s above the calibrated 1.00 TFLOP/s (float32 matmul peak): the ceiling is too low for this phase "
        "(recalibrate: python -m profiler calibrate --force)",
        "copy": "achieved 60.0 GB/s above the calibrated 50.0 GB/s (copy bandwidth; a working set that stays in cache also beats it): "
        "the ceiling is too low for this phase (recalibrate: python -m profiler calibrate --force)",
    }
    # the iteration: 1.2e10 FLOP and 7e8 B in 20 ms = 0.6 TFLOP/s and 35 GB/s, within both ceilings
    assert phases["iteration"].mfu == pytest.approx(0.6) and phases["iteration"].mbu == pytest.approx(0.7)
    again = Work.model_validate(summary.work.model_dump(mode="json"))  # written and read back: the same
    assert again == summary.work


def test_a_stored_utilization_above_one_is_withdrawn_on_read():
    """A summary written before the roofline checked its ceilings (or by hand) never shows MFU above 100% either."""
    phase = {"spans_counted": 1, "flops_counted": 1.0, "flops_analytic": 0.0, "flops": 1.0, "bytes": 1.0, "mfu": 1.5, "mbu": 0.2, "bound": "compute-bound"}
    work = Work.model_validate({"phases": {"step": phase}})
    assert work.phases["step"].mfu is None and work.phases["step"].mbu == 0.2 and work.phases["step"].bound is None
    assert work.ceiling_exceeded["step"] == (
        "achieved FLOP/s above the calibrated matmul peak: the ceiling is too low for this phase (recalibrate: python -m profiler calibrate --force)"
    )
    stored = {**phase, "time_s": 1e-3, "achieved_flops_per_s": 1.5e12, "achieved_bytes_per_s": 1e9}
    work = Work.model_validate({"phases": {"step": stored}})
    assert work.ceiling_exceeded["step"].startswith("achieved 1.50 TFLOP/s above the calibrated 1.00 TFLOP/s (matmul peak): the ceiling is too low")
