"""The child-parent wire: typed messages that survive pickling (the spawn queue), dispatched by class; anything else is
named once, never guessed at."""

from __future__ import annotations

import pickle

from profiler.measure.nvml import Nvml
from profiler.run.supervisor import ChildSupervisor, ChildWatch, SilentListener
from profiler.run.wire import MESSAGES, ChildDone, IterationDone, SpansEnded, StageEntered
from profiler.runmodel import ChildError, ChildRecord, Loop
from profiler.suite.config import MeasureConfig


def test_every_message_crosses_a_queue_as_itself():
    for message in (StageEntered("measure", 5), IterationDone(3, warmup=False), SpansEnded(42), ChildDone(True, None, ChildRecord())):
        assert isinstance(message, MESSAGES) and pickle.loads(pickle.dumps(message)) == message


def test_the_supervisor_reads_messages_by_class_and_names_a_stranger():
    supervisor = ChildSupervisor(Nvml(), "cpu", MeasureConfig.model_validate({}), SilentListener())
    watch = ChildWatch("w")
    for message in (StageEntered("count_work"), SpansEnded(7), SpansEnded(5), {"kind": "phase", "phase": "x"}, "noise"):
        supervisor._handle(message, sampler=None, watch=watch)  # no GPU message: no sampler needed
    assert watch.stage == "count_work" and watch.measured and watch.last_span_end_ns == 7
    assert watch.wire_problem == "the child sent a message of an unknown kind (dict); it was left out"
    supervisor._handle(
        ChildDone(
            False,
            ChildError(phase="measure", reason="r"),
            ChildRecord(loop=Loop(warmup_iters=0, measured_iters=1, measure_s=1.0, stopped_at_max_seconds=False, hit_max_seconds=False)),
        ),
        None,
        watch,
    )
    assert watch.stage == "done" and watch.done is not None and watch.done.error == ChildError(phase="measure", reason="r")
