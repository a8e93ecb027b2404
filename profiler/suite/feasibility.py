"""Checks across fields of a resolved suite: what each entry asks for must be possible in the run's time.

Why: every value is first checked alone (config.py, the load's LoadConfig, the workload's Params), yet
some combinations no run can meet, and they used to validate and then measure nothing. How the run
treats time decides each rule (profiler/run/serve.py, profiler/load/arrivals.py `schedule`):

- a load run sends each request at its scheduled time and stops at `measure.max_seconds` from its
  start: a request scheduled later is never sent, one still running is marked timed out;
- a generated schedule puts request i at gap_0 + ... + gap_i, gaps of mean 1/rate; `requests: N`
  ends near N/rate, `duration_s` keeps the sends at or before it;
- a replayed trace sends each row at its arrival divided by `time_scale`, cut by `requests` or
  `duration_s`;
- the samplers (the parent's and a load's engine sampler) take their first sample one period,
  1/sample_hz, after they start.

Hence, with M = measure.max_seconds:
- measure.sample_hz: 1/sample_hz <= M (else not one sample in the measured time);
- load.rate: the mean gap 1/rate <= M (else no request is expected before the run stops);
- load.duration_s: duration_s <= M (sends after M never happen), and rate x duration_s >=
  warmup_requests + cooldown_requests + 1 (else the window is expected to hold no measured request);
- load.requests (poisson, gamma, constant): requests / rate <= M (the expected time to send them all);
- a trace: the last replayed send <= M; its rows also pass every check `schedule` makes (token counts
  times token_scale within the token bound, a measured request left), for each sweep point.
A closed loop's sends follow the engine's responses, so its time cannot be known before it runs.

Each error is one line: the file:line (or --set) of the offending key, the rule with its numbers,
and what to change.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..errors import UserError
from ..load.arrivals import trace_send_times
from ..loadconfig import LoadConfig
from .config import MeasureConfig, SuiteConfig, WorkloadEntry, where_from
from .yaml_source import YamlSource


class ResolvedWorkload(Protocol):
    """What these checks read of resolve.py's ResolvedWorkload (not imported: resolve.py imports this module)."""

    index: int
    entry: WorkloadEntry
    sweep_point: dict[str, Any] | None


def check_feasible(suite: SuiteConfig, workloads: list[ResolvedWorkload], source: YamlSource, overrides: dict[tuple[Any, ...], str]) -> None:
    """Raise `UserError` (one line) for the first value of `suite` that no run could meet (see the module docstring).

    workloads: the resolved entries and sweep points (resolve.py), each load with its trace path made absolute.
    """
    from ..load.traces import forget_traces

    try:
        _check_sampler(suite.measure, source, overrides)
        for w in workloads:
            if w.entry.load is not None:
                _check_load(w, w.entry.load, suite.measure, source, overrides)
    finally:
        forget_traces()


def _check_sampler(measure: MeasureConfig, source: YamlSource, overrides: dict[tuple[Any, ...], str]) -> None:
    period = 1.0 / measure.sample_hz
    if period > measure.max_seconds:
        where = where_from(source, ("measure", "sample_hz"), overrides)
        raise UserError(
            f"{where}: measure.sample_hz: {measure.sample_hz:g} Hz samples every {period:.4g} s, longer than measure.max_seconds "
            f"({measure.max_seconds:g} s): the run would end before its first sample; give sample_hz >= 1/max_seconds = {1 / measure.max_seconds:.4g}"
        )


class _Point:
    """Where the keys of one entry's (or sweep point's) load come from, for the error line."""

    def __init__(self, w: ResolvedWorkload, source: YamlSource, overrides: dict[tuple[Any, ...], str]) -> None:
        self.w = w
        self.source = source
        self.overrides = overrides

    def fail(self, key: str, message: str, also: tuple[str, ...] = ()) -> UserError:
        """The error for `key`, at its line; at the sweep's line instead when `key` or a key in `also` (the rule's
        other operands) is swept, since that is what makes this point differ."""
        i = self.w.index
        point = self.w.sweep_point or {}
        key = next((k for k in (key, *also) if f"load.{k}" in point), key)
        swept = f"load.{key}" in point
        path: tuple[Any, ...] = ("workloads", i, "sweep", f"load.{key}") if swept else ("workloads", i, "load", key)
        label = ",".join(f"{k}={v}" for k, v in (self.w.sweep_point or {}).items())
        name = f"workloads[{i}].sweep: {label}: load.{key}" if self.w.sweep_point else f"workloads[{i}].load.{key}"
        return UserError(f"{where_from(self.source, path, self.overrides)}: {name}: {message}")


def _check_load(w: ResolvedWorkload, load: LoadConfig, measure: MeasureConfig, source: YamlSource, overrides: dict[tuple[Any, ...], str]) -> None:
    point = _Point(w, source, overrides)
    limit = measure.max_seconds
    stops = f"measure.max_seconds ({limit:g} s), where the run stops sending"
    if load.duration_s is not None and load.duration_s > limit:
        raise point.fail("duration_s", f"{load.duration_s:g} s is beyond {stops}; give duration_s <= max_seconds or raise max_seconds")
    if load.pattern == "trace":
        _check_trace(point, load, limit, stops)
    elif load.rate is not None:
        _check_generated(point, load, limit, stops)


def _check_generated(point: _Point, load: LoadConfig, limit: float, stops: str) -> None:
    assert load.rate is not None
    rate = load.rate
    if 1.0 / rate > limit:
        raise point.fail(
            "rate", f"{rate:g} requests/s has a mean gap of {1 / rate:.4g} s, beyond {stops}; give rate >= 1/max_seconds = {1 / limit:.4g} or raise max_seconds"
        )
    needed = load.warmup_requests + load.cooldown_requests + 1
    if load.duration_s is not None and rate * load.duration_s < needed:
        raise point.fail(
            "duration_s",
            f"rate x duration_s = {rate:g} x {load.duration_s:g} s = {rate * load.duration_s:.3g} requests expected, fewer than "
            f"warmup_requests + cooldown_requests + 1 = {needed} to measure one; give a longer duration_s or a higher rate",
            also=("rate", "warmup_requests", "cooldown_requests"),
        )
    if load.requests is not None and load.requests / rate > limit:
        raise point.fail(
            "requests",
            f"requests / rate = {load.requests} / {rate:g} = {load.requests / rate:.4g} s, the expected time to send them all, is beyond {stops}; "
            "give fewer requests, a higher rate, or raise max_seconds",
            also=("rate",),
        )


def _check_trace(point: _Point, load: LoadConfig, limit: float, stops: str) -> None:
    from ..load.traces import read_trace

    assert load.trace is not None
    try:
        send = trace_send_times(load, read_trace(load.trace))
    except UserError as exc:  # the file changed since resolve.py read it
        raise point.fail("trace", str(exc)) from None
    except ValueError as exc:
        key = str(exc).split(":", 1)[0] if str(exc).split(":", 1)[0] in LoadConfig.model_fields else "trace"
        raise point.fail(key, str(exc)) from None
    last = float(send[-1])
    if last > limit:
        key = "requests" if load.requests is not None else "time_scale" if load.time_scale != 1.0 else "trace"
        cut = f"its first {len(send)} requests" if load.requests is not None else f"its {len(send)} requests"
        raise point.fail(
            key,
            f"the trace replays {cut} over {last:.4g} s (time_scale {load.time_scale:g}), beyond {stops}; cut it with requests or duration_s, "
            "raise time_scale, or raise max_seconds",
        )
