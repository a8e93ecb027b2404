"""The parent's sampler thread: rows at the requested rate, and a write failure recorded, not raised."""

from __future__ import annotations

import os
import threading
import time

import pandas as pd

from profiler.measure.sampler import SAMPLE_SCHEMA, ProcessSampler
from profiler.measure.store import SAMPLES, PartWriter, read_frame


def test_sampler_writes_rows_of_this_process(tmp_path):
    sampler = ProcessSampler(os.getpid(), 100, PartWriter(tmp_path, SAMPLES, max_rows=10, schema=SAMPLE_SCHEMA))
    sampler.start()
    time.sleep(0.5)
    sampler.stop()
    assert sampler.error is None
    t = pd.concat([read_frame(p) for p in tmp_path.glob(f"{SAMPLES}.part-*.parquet")])["t_ns"].sort_values().to_numpy()
    # the rate between its first and last row (the thread's start-up is not sampling), with room for a busy machine
    assert len(t) >= 5 and 40 <= (len(t) - 1) / ((t[-1] - t[0]) / 1e9) <= 110


def test_a_write_failure_stops_sampling_with_a_reason_and_no_thread_traceback(tmp_path):
    raised: list[BaseException] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: raised.append(args.exc_value)
    try:
        sampler = ProcessSampler(os.getpid(), 200, PartWriter(tmp_path / "removed", SAMPLES, max_rows=5, schema=SAMPLE_SCHEMA))
        sampler.start()
        time.sleep(0.3)
        assert not sampler.is_alive()  # stopped at the first failed write
        sampler.stop()  # the final flush fails quietly too
    finally:
        threading.excepthook = previous
    assert raised == []
    assert sampler.error and "could not be written" in sampler.error
