"""Send each request at its scheduled time, and measure how well the sending itself went.

A load test is only as good as its generator: a request sent 5 ms late is queueing delay the
engine never caused. So every send is recorded with its scheduled and achieved time (seconds
from the start, on the monotonic `time.perf_counter` clock), and the generator's own CPU time
(`time.thread_time` of the sending thread) is kept beside them (issue 13: "the load generator's
own accuracy is measured").

Timing: sleep until `spin_s` before the scheduled time (the OS wakes a sleeper tens of
microseconds to a millisecond late), then spin on the clock for the rest. A send is never early;
a late one (the submit call blocked, or the process was descheduled) is recorded as late, and the
next sends are still aimed at their own scheduled times (no drift carried forward).
benchmarks/load_generator.py prints the p50/p99 send error and the CPU cost against a no-op
engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..runmodel import SendAccuracy

SPIN_S = 0.0005
"""Spin (busy-wait) this long before each send: longer is more accurate and costs more CPU."""


class Scheduled(Protocol):
    """Anything with a scheduled send time `send_s` (seconds from the start), e.g. profiler.load.arrivals.Request."""

    send_s: float


@dataclass
class SendReport:
    """What `send_all` did: per request its scheduled and achieved send time (s from the start), and the sender's cost."""

    scheduled_s: list[float] = field(default_factory=list)
    sent_s: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    """CPU time of the sending thread (time.thread_time), sleeping excluded, spinning and submit calls included."""
    wall_s: float = 0.0

    def errors_s(self) -> np.ndarray:
        """Achieved minus scheduled send time per request (s); never negative (a send is never early)."""
        return np.asarray(self.sent_s, dtype=float) - np.asarray(self.scheduled_s, dtype=float)

    def accuracy(self) -> SendAccuracy:
        """p50, p99 and max send error (s; numpy's linear percentiles), and the sender's CPU share of one core over the
        run (0..1); every field None when nothing was sent."""
        errors = self.errors_s()
        if not errors.size:
            return SendAccuracy()
        return SendAccuracy(
            p50_s=float(np.percentile(errors, 50)),
            p99_s=float(np.percentile(errors, 99)),
            max_s=float(errors.max()),
            cpu_share=self.cpu_s / self.wall_s if self.wall_s > 0 else None,
        )


def send_all(
    requests: Iterable[Scheduled],
    submit: Callable[[Any], None],
    spin_s: float = SPIN_S,
    clock: Callable[[], float] = time.perf_counter,
    start: float | None = None,
    stop: Any = None,
) -> SendReport:
    """Call `submit(request)` for each request at its `send_s` (seconds from `start`, a reading of `clock`; default:
    the call), in order, on this thread.

    Returns the SendReport. `submit` should return quickly (hand the request to an engine); whatever time it takes
    delays the next sends and is recorded as their error. Exceptions from `submit` propagate (the report so far is
    lost with them: wrap `submit` to keep it). `stop`: a threading.Event; once set, nothing more is sent."""
    report = SendReport()
    cpu_start = time.thread_time()
    start = clock() if start is None else start
    for request in requests:
        target = start + request.send_s
        remaining = target - clock()
        if remaining > spin_s:
            if stop is not None:
                if stop.wait(remaining - spin_s):
                    break
            else:
                time.sleep(remaining - spin_s)
        if stop is not None and stop.is_set():
            break
        while clock() < target:
            pass
        sent = clock()
        submit(request)
        report.scheduled_s.append(request.send_s)
        report.sent_s.append(sent - start)
    report.wall_s = clock() - start
    report.cpu_s = time.thread_time() - cpu_start
    return report
