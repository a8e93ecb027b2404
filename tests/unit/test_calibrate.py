"""Ceilings that cannot be beaten: the stability rule of the repeated trials (a fake timer, never
the machine's), the cache's validation (machine key, profiler version, method, contents, age), a
calibration under contention (the /proc counters mocked: never this machine's load), which is
not cached, and a phase that beats a ceiling, which gets a reason and never a utilization above
100%."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from profiler.characterize.summary import Passes, WorkloadOutcome, build_summary
from profiler.cli import main
from profiler.errors import UserError
from profiler.measure import calibrate
from profiler.measure.calibrate import CACHE_FORMAT, MAX_AGE_ENV, STABLE_MEDIAN_WITHIN, UTC_FORMAT, ContentionMeter, is_stable, repeat_until_stable
from profiler.measure.sampler import ProcStatReader
from profiler.plugin import Declaration
from profiler.runmodel import CONTENDED_CORES, Calibration, ChildRecord, Status, Work

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
    assert is_stable([9.5, 10.0, 9.5, 9.5, 9.5, 9.8, 9.5, 9.5, 9.5, 9.5])  # 9.8 within 3% of 10: reached again
    assert not is_stable([9.5, 9.5, 9.5, 9.5, 9.5, 9.5, 9.5, 9.5, 9.5, 10.0])  # still rising: the last window beat the rest by 5%
    assert not is_stable([9.0, 20.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0])  # a one-off peak is not reached again


def test_stable_needs_the_median_of_the_last_window_near_the_best():
    """A best reached in a few lucky trials amid slow ones is not stable (a user saw best 227, median 97, 'stable')."""
    lucky = [97.0, 97.0, 97.0, 97.0, 227.0, 97.0, 97.0, 97.0, 97.0, 227.0]
    assert is_stable(lucky, median_within=1.0)  # the peak was reached twice and the last window did not raise it: the old rule said stable
    assert not is_stable(lucky)  # the last window's median, 97, is 57% below the best
    assert STABLE_MEDIAN_WITHIN == 0.10
    settled = [100.0] * 5 + [91.0, 91.0, 91.0, 100.0, 100.0]  # median of the last 5: 91, within 10% of 100
    assert is_stable(settled)
    assert not is_stable([100.0] * 5 + [89.0, 89.0, 89.0, 100.0, 100.0])  # median 89: 11% below
    # the trials stop only once the median has caught up: lucky peaks amid slow trials run to the budget, unstable
    device = FakeDevice([0.05, 0.05] + [0.01 if k % 5 == 4 else 0.0227 for k in range(400)])
    trials = repeat_until_stable(device.trial, work=1.0, budget_s=2.0, clock=device.clock)
    assert len(trials.rates) > 50 and not trials.stable and trials.best == pytest.approx(100.0) and trials.spread()["median"] == pytest.approx(1 / 0.0227)


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


class MockedProcStat(ProcStatReader):
    """Stands in for ProcStatReader's reading of /proc (the boundary), keeping its arithmetic (`other_cores`): each read()
    advances a mocked clock by `seconds` and the counters by `others` cores of other processes' CPU and `own` cores of
    this process's, at 100 ticks/s; `script` gives (seconds, others, own) per read, the last repeated. Like
    ProcStatReader on its own pid, its own ticks are those of the measured process and of the reader's process both."""

    TICKS = 100
    script: list[tuple[float, float, float]] = [(6.0, 0.0, 1.0)]

    def __init__(self, pid: int) -> None:
        assert pid == os.getpid()
        self.is_self = True
        self.cores = [0, 1]
        self.reads = 0
        self.last = {"t": 1000.0, "cores_busy": 0, "proc_ticks": 0, "self_ticks": 0, "steal": 0}
        self.closed = False

    def read(self) -> dict:
        seconds, others, own = self.script[min(self.reads, len(self.script) - 1)]
        self.reads += 1
        own_ticks = round(own * seconds * self.TICKS)
        last = self.last
        self.last = {
            "t": last["t"] + seconds,
            "cores_busy": last["cores_busy"] + round(others * seconds * self.TICKS) + own_ticks,
            "proc_ticks": last["proc_ticks"] + own_ticks,
            "self_ticks": last["self_ticks"] + own_ticks,
            "steal": 0,
        }
        return {"other_cpu_cores": 0.0, "proc_cpu_percent": 100.0 * own}

    def close(self) -> None:
        self.closed = True


def mock_contention(monkeypatch, *script: tuple[float, float, float]) -> None:
    """The /proc counters during calibration (MockedProcStat): (seconds, other processes' cores, own cores) per reading."""
    monkeypatch.setattr(MockedProcStat, "script", list(script))
    monkeypatch.setattr(calibrate, "ProcStatReader", MockedProcStat)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A temporary PROFILER_CACHE_DIR, this machine's key fixed, `measure` replaced by a counter (no timing) that marks
    three measurements, and the contention mocked as quiet (never this machine's load)."""
    monkeypatch.setenv("PROFILER_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(MAX_AGE_ENV, raising=False)
    monkeypatch.setattr(calibrate, "machine_key", lambda device: dict(KEY))
    mock_contention(monkeypatch, (6.0, 0.01, 1.0))
    measured = []

    def fake_measure(device: str, meter: ContentionMeter | None = None) -> dict:
        measured.append(device)
        for name in ("matmul float32", "matmul bfloat16", "copy"):
            if meter is not None:
                meter.mark(name)
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
    for bad in ("a week", "-1", "nan"):
        monkeypatch.setenv(MAX_AGE_ENV, bad)
        with pytest.raises(UserError, match=f"PROFILER_CALIBRATION_MAX_AGE_DAYS='{bad}': must be a number of days >= 0; give e.g."):
            load()
    monkeypatch.setenv(MAX_AGE_ENV, "0")
    write_cached(age_s=1)
    assert not load()["from_cache"]  # 0 days: a cached calibration a second old is measured again


# ---------------------------------------------------------------- invalid cache contents

VALID = {"matmul_flops_per_s": {"float32": 1e11}, "copy_bytes_per_s": 3e10, "method": {"matmul": "cached", "copy": "cached"}}


@pytest.mark.parametrize(
    "changes, why",
    [
        ({"matmul_flops_per_s": {"float32": -5}}, "matmul_flops_per_s.float32: -5 is not a positive number"),
        ({"matmul_flops_per_s": {"float32": 0}}, "matmul_flops_per_s.float32: 0 is not a positive number"),
        ({"matmul_flops_per_s": {"float32": math.nan}}, "matmul_flops_per_s.float32: nan is not a positive number"),
        ({"matmul_flops_per_s": {"float32": 10**400}}, "is not a positive number"),  # an integer beyond a float
        ({"matmul_flops_per_s": {"float32": "1e11"}}, "matmul_flops_per_s.float32: '1e11' is not a positive number"),
        ({"matmul_flops_per_s": {"float32": True}}, "is not a positive number"),
        ({"matmul_flops_per_s": {}}, "matmul_flops_per_s: no matmul ceiling"),
        ({"matmul_flops_per_s": None}, "matmul_flops_per_s: no matmul ceiling"),
        ({"matmul_flops_per_s": [1e11]}, "matmul_flops_per_s: no matmul ceiling"),
        ({"copy_bytes_per_s": None}, "copy_bytes_per_s: None is not a positive number"),
        ({"copy_bytes_per_s": -1e10}, "copy_bytes_per_s: -10000000000.0 is not a positive number"),
        ({"method": {"matmul": "cached"}}, "method: no copy method"),
        ({"method": "cached"}, "method: no matmul or copy method"),
        ({"matmul_spread": {"float32": {"best": 1e11}}}, "matmul_spread.float32.trials: Field required"),
        ({"key": None}, "key: no machine key"),
        ({"copy_spread": {"best": "fast", "trials": 3, "stable": True}}, "copy_spread.best: Input should be a valid number"),
        ({"contention": "other processes used 0.95 of a core"}, "measured under contention (other processes used 0.95 of a core)"),
    ],
)
def test_a_cache_of_invalid_contents_is_measured_again_with_the_reason(cache, changes, why):
    path = write_cached(age_s=DAY, **changes)
    result = load()
    assert cache == ["cpu"] and not result["from_cache"]
    assert result["cache_note"].startswith(f"the cached file {path} has invalid contents (") and why in result["cache_note"], result["cache_note"]
    assert result["matmul_flops_per_s"] == {"float32": 2e11} and json.loads(path.read_text())["matmul_flops_per_s"] == {"float32": 2e11}


@pytest.mark.parametrize("text", ["[1, 2]", "null", '"calibration"', "3", '{"format": 2}', '{"format": 2, "measured_utc": 5}', "{", ""])
def test_a_cache_that_is_not_a_calibration_is_measured_again(cache, text):
    path = calibrate.cache_path(KEY)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    result = load()
    assert cache == ["cpu"] and not result["from_cache"] and result["cache_note"].startswith(f"the cached file {path} ")
    assert "has invalid contents" in result["cache_note"] or "is unreadable" in result["cache_note"]


@pytest.mark.parametrize(
    "changes",
    [
        {"matmul_flops_per_s": {"float32": -5}},
        {"matmul_flops_per_s": {}, "method": {}},
        {"method": None, "key": ["cpu"]},
        {"matmul_flops_per_s": {"float32": -5}, "copy_bytes_per_s": "fast", "matmul_spread": {"float32": 7}},
    ],
)
def test_calibrate_never_tracebacks_on_a_cache_of_any_contents(cache, monkeypatch, capsys, changes):
    monkeypatch.setattr(calibrate.time, "time", lambda: NOW)
    write_cached(age_s=DAY, **changes)
    assert main(["calibrate", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "peak matmul float32: 200 GFLOP/s" in out and "-5" not in out.split("measured afresh")[0]
    assert "has invalid contents" in out and "method: fake; fake" in out and cache == ["cpu"]
    write_cached(age_s=DAY, **changes)
    assert main(["calibrate", "--device", "cpu", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["matmul_flops_per_s"] == {"float32": 2e11}


def test_a_valid_cache_passes_the_contents_check():
    assert calibrate.check_contents({**VALID, "key": dict(KEY)}) == []


# ---------------------------------------------------------------- contention during calibration (the /proc counters mocked)


def test_quiet_calibration_mocked_counters_is_cached_with_its_contention(cache):
    result = load()
    assert result["contention"] is None and result["other_cpu_cores"] == pytest.approx({"matmul float32": 0.01, "matmul bfloat16": 0.01, "copy": 0.01})
    assert result["contention_check"].startswith("not contended: other processes used up to 0.01 of a core on the calibrating process's 2 cores")
    assert "cache_error" not in result and Path(result["cache_file"]).exists()
    assert load()["from_cache"] and cache == ["cpu"]


def test_own_threads_are_not_contention_mocked_counters(cache, monkeypatch):
    """The calibration's own CPU (here 2 cores of torch threads) is never counted as other processes' (ProcStatReader on
    its own pid would subtract it twice and hide contention; the meter must neither hide nor invent it)."""
    mock_contention(monkeypatch, (6.0, 0.0, 2.0))
    assert load()["contention"] is None
    mock_contention(monkeypatch, (6.0, 0.95, 1.0))
    assert load(force=True)["other_cpu_cores"]["copy"] == pytest.approx(0.95)


def test_contended_calibration_mocked_counters_is_not_cached_and_says_why(cache, monkeypatch):
    # another job used 0.95 of a core during the copy measurement only
    mock_contention(monkeypatch, (6.0, 0.0, 1.0), (6.0, 0.0, 1.0), (6.0, 0.95, 1.0))
    result = load()
    assert result["other_cpu_cores"] == pytest.approx({"matmul float32": 0.0, "matmul bfloat16": 0.0, "copy": 0.95})
    assert result["contention"] == (
        "other processes used up to 0.95 of a core on the calibrating process's 2 cores during calibration "
        f"(matmul float32 0.00, matmul bfloat16 0.00, copy 0.95; contended from {CONTENDED_CORES})"
    )
    assert result["contention_check"] == f"CONTENDED: {result['contention']}"
    assert "cache_file" not in result and not list(calibrate.cache_dir().glob("calibration-*.json"))
    assert result["cache_error"].startswith("not cached: measured under contention") and "python -m profiler calibrate --force" in result["cache_error"]
    provenance = Calibration.model_validate(result).provenance  # what a run's report shows from its calibration.json
    assert provenance.startswith("measured afresh: no cached calibration for this machine; measured under contention: other processes used up to 0.95")
    assert "python -m profiler calibrate --force" in provenance
    mock_contention(monkeypatch, (6.0, 0.0, 1.0))
    again = load()  # nothing was cached: measured again, quietly this time, and cached
    assert cache == ["cpu", "cpu"] and again["contention"] is None and not again["from_cache"] and Path(again["cache_file"]).exists()


def test_a_contended_force_keeps_the_previous_cache_mocked_counters(cache, monkeypatch):
    path = write_cached(age_s=DAY)
    mock_contention(monkeypatch, (6.0, 0.5, 1.0))
    assert load(force=True)["contention"] and json.loads(path.read_text())["matmul_flops_per_s"] == {"float32": 1e11}
    assert load()["from_cache"]


@pytest.mark.parametrize("others, contended", [(CONTENDED_CORES - 0.01, False), (CONTENDED_CORES, True), (2.0, True)])
def test_the_contention_threshold_mocked_counters(cache, monkeypatch, others, contended):
    mock_contention(monkeypatch, (6.0, others, 1.0))
    result = load()
    assert bool(result["contention"]) is contended and ("cache_file" in result) is not contended


def test_short_measurements_count_toward_the_next_mocked_counters(cache, monkeypatch):
    """/proc counts in 10 ms ticks: an interval under MIN_CONTENTION_S is merged into the next, never kept alone."""
    mock_contention(monkeypatch, (0.1, 5.0, 1.0), (0.1, 5.0, 1.0), (6.0, 0.0, 1.0))
    result = load()
    # 0.2 s at 5 cores and 6 s at 0 cores: (0.2 * 5) / 6.2 = 0.16 of a core over matmul float32, matmul bfloat16 and copy
    assert result["other_cpu_cores"] == pytest.approx({"matmul float32 + matmul bfloat16 + copy": 1.0 / 6.2}) and result["contention"] is None


def test_contention_not_measured_elsewhere_than_linux_mocked(cache, monkeypatch):
    def no_proc(pid: int):
        raise FileNotFoundError("/proc/1/stat")

    monkeypatch.setattr(calibrate, "ProcStatReader", no_proc)
    result = load()
    assert result["contention"] is None and result["other_cpu_cores"] is None
    assert result["contention_check"] == "contention not measured (no per-core CPU counters here (Linux /proc: FileNotFoundError))"
    assert Path(result["cache_file"]).exists()  # cannot tell: cached as before


def test_one_reading_over_the_whole_when_nothing_was_marked_mocked_counters(monkeypatch):
    mock_contention(monkeypatch, (30.0, 0.3, 1.0))
    meter = ContentionMeter()
    result = meter.result()
    meter.close()
    assert result["other_cpu_cores"] == pytest.approx({"calibration": 0.3}) and result["contention"].startswith("other processes used 0.30 of a core")
    assert meter.reader.closed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux /proc")
def test_the_real_proc_reader_has_the_counters_the_meter_reads():
    """No timing: only that ProcStatReader on this process keeps the raw counters the meter subtracts."""
    meter = ContentionMeter()
    try:
        assert meter.why_not is None and meter.cores >= 1
        assert {"t", "cores_busy", "proc_ticks"} <= set(meter.last)
    finally:
        meter.close()


def test_calibrate_warns_under_contention_mocked_counters(cache, monkeypatch, capsys):
    monkeypatch.setattr(calibrate.time, "time", lambda: NOW)
    mock_contention(monkeypatch, (6.0, 0.95, 1.0))
    assert main(["calibrate", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if line.startswith("warning: calibration measured under contention")]
    assert len(warning) == 1 and "measure again on a quiet machine: python -m profiler calibrate --force" in warning[0]
    assert "cache: not cached: measured under contention" in captured.out
    assert "contention: CONTENDED: other processes used up to 0.95 of a core" in captured.out
    mock_contention(monkeypatch, (6.0, 0.0, 1.0))
    assert main(["calibrate", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err and "contention: not contended: other processes used up to 0.00 of a core" in captured.out


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
        child=ChildRecord(facts={"dtype": "float32"}),
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
        "copy": "achieved 60.0 GB/s above the calibrated 50.0 GB/s (copy bandwidth, counted traffic; a working set that stays in cache also beats it): "
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
