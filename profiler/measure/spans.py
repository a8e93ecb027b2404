"""Spans: the core record. `mark(phase, units=N, **attrs)` as the workload sees it.

A span stores the host monotonic time when its body starts and when its output is on the host
(time.monotonic_ns: CLOCK_MONOTONIC, the same clock the parent's sampler uses, so spans and
samples line up). On CUDA it also records a pair of CUDA events around the body and resolves
their device time at the end of the iteration (one sync per iteration, never per span), opens an
NVTX range so Nsight Systems timelines carry the same phases, and tracks the allocator's peak
memory per phase (reset when the phase changes).

Spans are kept in memory for the current iteration only, so attributes set after a span closes
(`span.attrs["state_bytes"] = n`) are still stored, and rows are handed to the PartWriter
between iterations: file writes never fall inside a timed region.
"""

from __future__ import annotations

import time
import traceback
from typing import Any, cast

from ..plugin import ITERATION  # the reserved phase: the runner's span around each run_once
from .progress import SpanClock
from .store import PartWriter

_now = time.monotonic_ns


class Span:
    """One timed region. Use as a context manager; set `attrs` after the body if needed.

    Kept minimal on purpose: creating, entering and leaving a span is the profiler's cost inside
    the measured region (benchmarks/overhead.py measures it).
    """

    __slots__ = ("phase", "units", "attrs", "start_ns", "end_ns", "error", "_closed")

    def __init__(self, recorder: SpanRecorder, phase: str, units: float, attrs: dict[str, Any]) -> None:
        self._closed = recorder.closed
        self.phase = phase
        self.units = units
        self.attrs = attrs
        self.error: str | None = None

    def __enter__(self) -> Span:
        self.start_ns = _now()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self.end_ns = _now()
        if exc_type is not None:
            self.error = exc_type.__name__
        self._closed.append(self)
        return False


class CudaSpan(Span):
    """A span that also records CUDA events, an NVTX range and per-phase peak memory."""

    __slots__ = ("start_event", "end_event", "device_s", "_recorder")

    def __init__(self, recorder: CudaSpanRecorder, phase: str, units: float, attrs: dict[str, Any]) -> None:
        super().__init__(recorder, phase, units, attrs)
        self._recorder = recorder
        self.device_s: float | None = None

    def __enter__(self) -> CudaSpan:
        rec = self._recorder
        rec.enter_phase(self.phase)
        rec.nvtx.range_push(self.phase)
        self.start_event, self.end_event = rec.take_events()
        self.start_ns = _now()
        self.start_event.record()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self.end_event.record()
        self.end_ns = _now()
        self._recorder.nvtx.range_pop()
        if exc_type is not None:
            self.error = exc_type.__name__
        self._closed.append(self)
        return False


class SpanRecorder:
    """Creates spans for one workload run and streams them, one iteration at a time, to disk."""

    span_class: type[Span] = Span

    def __init__(self, writer: PartWriter, flush_every_s: float = 1.0) -> None:
        self.writer = writer
        self.flush_every_s = flush_every_s
        self.closed: list[Span] = []  # spans closed in this iteration (cleared, never replaced)
        self.iteration = -1
        self.warmup = False
        self._last_flush = time.monotonic()

    # ---- the workload-facing API
    def mark(self, phase: str, units: float = 0, **attrs: Any) -> Span:
        return self.span_class(self, phase, units, attrs)

    # ---- the runner-facing API
    def run_iteration(self, workload: Any, iteration: int, warmup: bool) -> None:
        """Run one `run_once` inside the reserved `iteration` span, then store its spans."""
        self.iteration = iteration
        self.warmup = warmup
        try:
            with self.mark(ITERATION):
                workload.run_once(self.mark)
        finally:
            self.end_iteration()

    def end_iteration(self) -> None:
        self.resolve_device_times()
        ordered = sorted(self.closed, key=lambda s: s.start_ns)  # index = order of start
        rows = [self._row(s, i) for i, s in enumerate(ordered)]
        if ordered:
            SpanClock.last_end_ns = max(SpanClock.last_end_ns, max(s.end_ns for s in ordered))
        self.closed.clear()
        self.writer.extend(rows)
        if self.writer.full or time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        self.writer.flush()
        self._last_flush = time.monotonic()

    def last_span_end_ns(self) -> int:
        """The newest span end, the current iteration's included (read from another thread: SpanWatch), 0 if none."""
        try:
            current = self.closed[-1].end_ns if self.closed else 0
        except IndexError:  # cleared meanwhile by end_iteration
            current = 0
        return max(SpanClock.last_end_ns, current)

    def resolve_device_times(self) -> None:
        """CPU spans have no device time."""

    def device_time_s(self, span: Span) -> float | None:
        return None

    def _row(self, span: Span, index: int) -> dict[str, Any]:
        row = {
            "iteration": self.iteration,
            "warmup": self.warmup,
            "phase": span.phase,
            "index": index,
            "start_ns": span.start_ns,
            "end_ns": span.end_ns,
            "units": float(span.units),
            "device_s": self.device_time_s(span),
            "error": span.error,
        }
        for key, value in span.attrs.items():
            row[key if key not in row else f"attr_{key}"] = value
        return row


class CudaSpanRecorder(SpanRecorder):
    """SpanRecorder for CUDA devices: events, NVTX ranges, per-phase peak memory."""

    span_class = CudaSpan

    def __init__(self, writer: PartWriter, torch_module: Any, flush_every_s: float = 1.0) -> None:
        super().__init__(writer, flush_every_s)
        self.torch = torch_module
        self.nvtx = torch_module.cuda.nvtx
        self._event_pool: list[Any] = []
        self._current_phase: str | None = None
        self.phase_memory: dict[str, dict[str, int]] = {}

    def take_events(self) -> tuple[Any, Any]:
        pool = self._event_pool
        if len(pool) >= 2:
            return pool.pop(), pool.pop()
        Event = self.torch.cuda.Event
        return Event(enable_timing=True), Event(enable_timing=True)

    def enter_phase(self, phase: str) -> None:
        if phase != self._current_phase and phase != ITERATION:
            self.close_phase_memory()
            self._current_phase = phase

    def close_phase_memory(self) -> None:
        """Fold the allocator peak since the last phase change into that phase, then reset it."""
        cuda = self.torch.cuda
        if self._current_phase is not None:
            stats = cuda.memory_stats()
            mem = self.phase_memory.setdefault(self._current_phase, {"peak_allocated_bytes": 0, "peak_reserved_bytes": 0})
            mem["peak_allocated_bytes"] = max(mem["peak_allocated_bytes"], int(stats.get("allocated_bytes.all.peak", 0)))
            mem["peak_reserved_bytes"] = max(mem["peak_reserved_bytes"], int(stats.get("reserved_bytes.all.peak", 0)))
        cuda.reset_peak_memory_stats()

    def resolve_device_times(self) -> None:
        spans = cast("list[CudaSpan]", self.closed)  # this recorder makes CudaSpans only
        if not spans:
            return
        spans[-1].end_event.synchronize()  # the last span ends last: one sync per iteration
        for span in spans:
            span.device_s = span.start_event.elapsed_time(span.end_event) / 1e3
            self._event_pool.extend((span.start_event, span.end_event))

    def device_time_s(self, span: Span) -> float | None:
        return cast(CudaSpan, span).device_s

    def end_iteration(self) -> None:
        self.close_phase_memory()
        self._current_phase = None
        super().end_iteration()


def format_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
