"""The load generator's send loop: never early, in order, every send recorded with its error, a
blocked submit recorded as lateness of the sends behind it (assertions that hold on a busy machine)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from profiler.load.sender import send_all


@dataclass
class Planned:
    send_s: float
    index: int


def test_sends_in_order_never_early_and_recorded():
    plan = [Planned(0.005 * i, i) for i in range(20)]
    seen: list[int] = []
    report = send_all(plan, lambda r: seen.append(r.index))
    assert seen == list(range(20))
    assert report.scheduled_s == [p.send_s for p in plan] and len(report.sent_s) == 20
    assert (report.errors_s() >= 0).all()  # a send is never early
    accuracy = report.accuracy()
    assert accuracy.p50_s is not None and accuracy.p99_s is not None and accuracy.max_s is not None
    assert accuracy.p50_s <= accuracy.p99_s <= accuracy.max_s
    assert report.wall_s >= plan[-1].send_s and 0 <= report.cpu_s


def test_a_blocked_submit_is_lateness_of_the_next_send_not_a_shifted_schedule():
    plan = [Planned(0.01 * i, i) for i in range(6)]

    def submit(r: Planned) -> None:
        if r.index == 2:
            time.sleep(0.05)  # the engine blocked for 50 ms

    report = send_all(plan, submit)
    errors = report.errors_s()
    assert errors[3] >= 0.04 - 1e-3  # request 3 was due 10 ms after request 2, which held the loop for 50 ms
    assert report.scheduled_s[5] == pytest.approx(0.05)  # the targets stay the schedule's own


def test_accuracy_of_nothing_is_unavailable_not_zero():
    report = send_all([], lambda r: None)
    assert report.accuracy().model_dump() == {"p50_s": None, "p99_s": None, "max_s": None, "cpu_share": None}
