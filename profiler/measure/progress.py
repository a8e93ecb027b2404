"""The newest end of a span the child has marked: what the parent's hang watch counts as progress.

Why: a workload that keeps marking spans is making progress however slow the machine is, even inside one long
iteration (a VLA episode on a busy 2-core machine, a counting pass under FLOP counters) that sends no per-iteration
message. The measured loop's recorder is read where it already keeps its spans (no cost per span); the untimed
counting and traced passes note each span's end here. run/child.py (SpanWatch) reads both every few seconds and
tells the parent when they moved.
"""

from __future__ import annotations

import time


class SpanClock:
    """time.monotonic_ns of the newest span end noted (0: none yet)."""

    last_end_ns = 0


def note_span_end() -> None:
    SpanClock.last_end_ns = time.monotonic_ns()
