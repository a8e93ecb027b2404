"""The load driver: send a schedule of requests to an engine at their times and record each one.

Why: under a `load:` block a workload is not run iteration after iteration; requests arrive by a
process (or a replayed trace) whether or not the engine is ready, and the engine batches them. This
module replaces the measured loop for such a workload (profiler/run/child.py):

- a sending thread submits each request at its scheduled time (profiler/load/sender.py, whose
  achieved-vs-scheduled error is kept); a closed loop instead holds `concurrency` requests in
  flight, sending the next when one ends;
- the main thread collects finished records from the engine until every request has ended or
  `measure.max_seconds` has passed (the rest are recorded as timed out and cancelled);
- a sampling thread reads the engine's scheduler (running, waiting, KV bytes held) at
  `measure.sample_hz` into engine.parquet;
- every request is one row of requests.parquet (arrival, sent, scheduled, every token, finished,
  status), failed and timed-out ones included; an engine that dies keeps every record taken so far
  and the rest are marked lost;
- an engine with the optional `measured_window(edge)` (plugin.Engine) is told when the measured window opens ("start":
  the first measured request is about to be sent) and closes ("end": the last measured request has ended, or the
  driver stopped waiting), so it can read its own counters at both edges (workloads/endpoint_metrics.py);
- each finished request also becomes spans (its iteration = the request, from arrival to the last
  token; `queue` up to the engine scheduling it; `prefill` up to the first token; one `decode`
  span per later token), so the per-request metrics, phase statistics and differences read a load
  run like any other. Warmup and cooldown requests are stored as warmup spans.

The parts are `LoadDriver`'s methods: `send` (the sending thread), `collect` and `take` (the main thread; each
engine record validated once into a load/records.py `EngineRecord`), `record` (the end: records first), and the
`_Sampler` thread. Each request's record is a load/records.py `RequestRecord`.

Arrival times: for an open loop a request's arrival is its scheduled send time (a late send is the
generator's error, reported, and counted inside the request's latency as a user would see it);
for a closed loop it is when it was sent (the client waited for a free slot; that wait is
`slot_wait_s`, reported apart, as vLLM reports its --max-concurrency semaphore).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..load.arrivals import Request, capped_sizes, failed_trace_rows, fit_to_positions, gap_stats, schedule
from ..load.records import ENDED, BadRecord, EngineRecord, RequestRecord, RequestStatus, request_table
from ..load.sender import send_all
from ..loadconfig import LoadConfig
from ..measure.journal import Journal, journal_path, read_frames
from ..measure.store import ENGINE, REQUESTS, SPANS, PartWriter, atomic_write_table, rows_to_table
from ..plugin import ITERATION, ServedRequest
from ..runmodel import LoadFacts, SendAccuracy
from ..suite.config import MeasureConfig

COLLECT_TIMEOUT_S = 0.05
MOONCAKE_BLOCK_TOKENS = 512


def served_request(r: Request, token_scale: float) -> ServedRequest:
    return ServedRequest(
        index=r.index,
        input_tokens=r.input_tokens,
        output_tokens=r.output_tokens,
        prefix_blocks=r.prefix_blocks,
        prefix_block_tokens=max(1, round(MOONCAKE_BLOCK_TOKENS * token_scale)),
        measured=r.measured,
    )


def prefix_share(requests: list[Request]) -> float | None:
    """Share of prompt blocks already seen in an earlier request's prefix (Mooncake `hash_ids`): what a
    prefix cache could serve, a trait of the pattern. None when the requests carry no blocks."""
    seen: set[int] = set()
    total = shared = 0
    for r in requests:
        if not r.prefix_blocks:
            continue
        for h in r.prefix_blocks:
            total += 1
            shared += h in seen
        seen.update(r.prefix_blocks)
    return shared / total if total else None


class _Sampler(threading.Thread):
    """Reads engine_stats() at a fixed rate until stopped."""

    def __init__(self, engine: Any, hz: float) -> None:
        super().__init__(name="engine-sampler", daemon=True)
        self.engine = engine
        self.period = 1.0 / hz
        self.rows: list[dict[str, Any]] = []
        self.stopped = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                stats = self.engine.engine_stats()
            except Exception as exc:  # the engine died: the driver reports it
                self.error = f"{type(exc).__name__}: {exc}"
                return
            self.rows.append({"t_ns": time.monotonic_ns(), **{k: (None if v is None else float(v)) for k, v in stats.items()}})
            self.stopped.wait(self.period)


class SequentialEngine:
    """Any workload as an engine: requests are served in arrival order, `batch` at a time (the workload's
    batch_size: a batch runs full, padded when fewer requests wait), one `run_once` per batch on the
    calling thread (the main thread: `collect` runs it). The workload's own spans are recorded as in the
    measured loop (one iteration per batch, from its start), so its phases, work and operator mix stay
    what they are; each request's record takes the batch's start as its scheduling and the ends of the
    batch's delivery spans as its tokens."""

    max_positions = None

    def __init__(self, workload: Any, recorder: Any, deliveries: tuple[str, ...], batch: int) -> None:
        import queue

        self.workload = workload
        self.recorder = recorder
        self.deliveries = deliveries
        self.batch = max(1, batch)
        self.waiting: queue.Queue[ServedRequest] = queue.Queue()
        self.running = 0
        self.iteration = 0

    def submit(self, request: ServedRequest) -> None:
        self.waiting.put(request)

    def collect(self, timeout_s: float) -> list[dict[str, Any]]:
        import queue

        try:
            batch = [self.waiting.get(timeout=timeout_s)]
        except queue.Empty:
            return []
        while len(batch) < self.batch:
            try:
                batch.append(self.waiting.get_nowait())
            except queue.Empty:
                break
        captured: list[Any] = []
        mark = self.recorder.mark

        def capturing(phase: str, units: float = 0, **attrs: Any) -> Any:
            span = mark(phase, units, **attrs)
            captured.append(span)
            return span

        class _Once:
            def run_once(_self, _mark: Any) -> None:
                self.workload.run_once(capturing)

        self.running = len(batch)
        start = time.monotonic_ns()
        try:  # an error ends the load: the driver marks the batch lost and the child records the error
            self.recorder.run_iteration(_Once(), self.iteration, warmup=not any(r.measured for r in batch))
        finally:
            self.iteration += 1
            self.running = 0
        finished = time.monotonic_ns()
        delivered = sorted(
            s.end_ns for s in captured if s.units > 0 and getattr(s, "end_ns", None) is not None and (not self.deliveries or s.phase in self.deliveries)
        )
        return [{"index": r.index, "status": "finished", "error": None, "scheduled_ns": start, "token_ns": delivered, "finished_ns": finished} for r in batch]

    def engine_stats(self) -> dict[str, float | None]:
        return {"running": self.running, "waiting": self.waiting.qsize(), "kv_bytes_used": None, "kv_bytes_total": None, "preempted": None}

    def cancel(self, index: int) -> None:
        """Nothing to stop: a request still waiting is never started once the driver stops collecting."""


Progress = Callable[[int, int], None]
"""progress(done, total): requests ended so far, of the schedule's."""


def serve(engine: Any, load: LoadConfig, trace: Any, measure: MeasureConfig, workdir: Path, progress: Progress, request_spans: bool = True) -> LoadFacts:
    """Run the load against `engine`; write requests.parquet, engine.parquet and spans; return the run's facts.

    measure: the suite's measure block (`max_seconds`, `sample_hz`). progress(done, total): called as requests end.
    request_spans: write each request's spans (False when the engine records the workload's own spans, as
    SequentialEngine does). Raises whatever the engine raised after writing every record taken so far.
    """
    driver = LoadDriver(engine, load, trace, workdir, progress, request_spans, measure.sample_hz)
    return driver.run(measure.max_seconds)


class LoadDriver:
    """One load run: the schedule, every request's record, and the parts that share them. The sending thread (`send`)
    hands requests to the engine; the main thread takes the engine's records (`collect`) and, at the end, writes them
    (`record`); the sampling thread (`_Sampler`) reads the engine's scheduler. They share the records (each written by
    one thread at a time: sent, then ended), `stop_sending`, the closed loop's `slots` and the sender's error."""

    def __init__(self, engine: Any, load: LoadConfig, trace: Any, workdir: Path, progress: Progress, with_spans: bool, sample_hz: float) -> None:
        self.engine, self.load, self.trace, self.workdir, self.progress, self.with_spans = engine, load, trace, workdir, progress, with_spans
        self.requests = schedule(load, trace)
        max_positions = getattr(engine, "max_positions", None)
        self.long_requests = fit_to_positions(self.requests, int(max_positions), load.long_requests) if max_positions else None
        self.records = {r.index: RequestRecord.of(r) for r in self.requests}
        self.closed = load.pattern == "closed"
        self.slots = threading.Semaphore(load.concurrency or 1)
        self.stop_sending = threading.Event()
        self.send_error: BaseException | None = None
        self.sender_accuracy: SendAccuracy | None = None
        self.bad_records: list[str] = []
        self.ended = 0
        self.measured_left = sum(r.measured for r in self.requests)
        hook = getattr(engine, "measured_window", None)
        self.window_hook: Callable[[str], Any] | None = hook if callable(hook) else None
        self.window_edges: list[str] = []
        self.start_perf = 0.0
        self.start_ns = 0
        self.schedule_facts = self.facts_before()
        self.journal = RecordJournal(workdir, with_spans)
        self.sampler = _Sampler(engine, sample_hz)
        self.sender = threading.Thread(target=self.send, name="load-sender", daemon=True)

    def run(self, max_seconds: float) -> LoadFacts:
        """Send, collect for up to `max_seconds`, record; the facts, or what ended the load raised after recording."""
        # one origin for arrivals and sends: time.perf_counter and time.monotonic_ns are both CLOCK_MONOTONIC on Linux
        self.start_perf = time.perf_counter()
        self.start_ns = round(self.start_perf * 1e9)
        self.sampler.start()
        self.sender.start()
        failure: BaseException | None = None
        try:
            self.collect(time.monotonic() + max_seconds)
        except BaseException as exc:
            failure = exc
        end_facts = self.record(failure)
        if failure is not None:
            raise failure
        return LoadFacts.model_validate({**self.schedule_facts, **end_facts})

    def facts_before(self) -> dict[str, Any]:
        """The facts of the schedule, known before the first send (LoadFacts' fields)."""
        facts: dict[str, Any] = {
            "pattern": self.load.pattern,
            "requests": len(self.requests),
            "measured_requests": sum(r.measured for r in self.requests),
            "long_requests": self.long_requests,
            "sizes_capped": capped_sizes(self.load, len(self.requests)),
            "prefix_share": prefix_share(self.requests),
            "trace_failed_rows_skipped": failed_trace_rows(self.load, self.trace),
        }
        if not self.closed and len(self.requests) > 1:
            facts["scheduled_gaps"] = gap_stats([r.send_s for r in self.requests])
        return facts

    # send: the sending thread

    def send(self) -> None:
        """The sending thread: each request at its time (open loop, load/sender.py) or as a slot frees (closed loop),
        until every one is sent or `stop_sending` is set. What it raises is kept for `collect` to raise."""
        try:
            if self.closed:
                self.hold_slots()
            else:
                report = send_all(self.requests, self.submit, start=self.start_perf, stop=self.stop_sending)
                self.sender_accuracy = report.accuracy()
        except BaseException as exc:  # an engine that refuses a request: the main thread reports it
            self.send_error = exc

    def hold_slots(self) -> None:
        """The closed loop: `concurrency` requests in flight, the next sent as one ends (`take` frees its slot); each
        request's wait for its slot is its `slot_wait_s`."""
        for r in self.requests:
            waited = time.monotonic_ns()
            if not self.wait_for_slot():
                return
            self.records[r.index].slot_wait_s = (time.monotonic_ns() - waited) / 1e9
            self.submit(r)

    def wait_for_slot(self) -> bool:
        """Take a free slot; False (none taken) once `stop_sending` is set."""
        while not self.slots.acquire(timeout=0.1):
            if self.stop_sending.is_set():
                return False
        return not self.stop_sending.is_set()

    def submit(self, r: Request) -> None:
        """Hand one request to the engine, now. Its arrival: the scheduled time (open loop) or now (closed loop)."""
        if self.stop_sending.is_set():
            return
        if r.measured and not self.window_edges:
            self.window_edge("start")
        now = time.monotonic_ns()
        self.records[r.index].sent(now, now if self.closed else self.start_ns + round(r.send_s * 1e9))
        self.engine.submit(served_request(r, self.load.token_scale))

    def window_edge(self, edge: str) -> None:
        """Tell an engine that asks (`measured_window`, optional) that the measured window opens ("start", just before
        the first measured request is sent) or closes ("end", once each); what it raises propagates (an engine fault)."""
        if edge in self.window_edges or (edge == "end" and "start" not in self.window_edges):
            return
        self.window_edges.append(edge)
        if self.window_hook is not None:
            self.window_hook(edge)

    # collect: the main thread

    def collect(self, deadline: float) -> None:
        """Take the engine's records until every request has ended or `deadline` (time.monotonic) has passed, the
        journal written between takes. Raises what the sender, the sampler or the engine raised."""
        while self.ended < len(self.requests):
            if self.send_error is not None:
                raise self.send_error
            if self.sampler.error:
                raise RuntimeError(f"the engine failed while being sampled: {self.sampler.error}")
            if time.monotonic() >= deadline:
                return
            for raw in self.engine.collect(COLLECT_TIMEOUT_S):
                self.take(raw)
            self.journal.write_due()

    def take(self, raw: object) -> None:
        """One record from the engine: its request ends (progress told, the closed loop's slot freed), once. What
        cannot be taken is a bad_records line: a record naming no request sent is dropped, one with fields at fault
        fails its request."""
        try:
            got = EngineRecord.parse(raw)
        except BadRecord as bad:
            self.bad_records.append(str(bad))
            return
        record = self.records.get(got.index)
        if record is None:
            self.bad_records.append(f"a record for request {got.index!r}, which was never sent")
            return
        if record.status in ENDED:
            return
        self.bad_records.extend(f"request {got.index}: {problem}" for problem in got.problems)
        record.end(got)
        self.ended += 1
        if record.measured:
            self.measured_left -= 1
            if self.measured_left == 0:
                self.window_edge("end")
        self.journal.ended(record)
        if self.closed:
            self.slots.release()
        self.progress(self.ended, len(self.requests))

    # record: the end

    def record(self, failure: BaseException | None) -> dict[str, Any]:
        """The end, records first (a Ctrl-C or SIGTERM is followed by the parent's SIGKILL within 5 s): the unended
        requests marked, requests.parquet, engine.parquet and spans written (SIGTERM deferred meanwhile), the journal
        removed; then the timed-out requests cancelled and the threads joined. Returns the facts of the end."""
        self.stop_sending.set()
        self.sampler.stopped.set()
        if failure is None:  # the window ends where the driver stopped waiting (a failed engine is not asked)
            self.window_edge("end")
        self.mark_unended(failure)
        records = list(self.records.values())
        facts = {
            "start_ns": self.start_ns,
            "bad_records": self.bad_records,
            "wall_s": time.perf_counter() - self.start_perf,
            "end_ns": time.monotonic_ns(),
            "status_counts": _counts(records),
            "measured_finished": sum(1 for r in records if r.measured and r.status == "finished"),
            "engine_sampler_error": self.sampler.error,
        }
        with _sigterm_deferred():
            _write(self.workdir, records, list(self.sampler.rows), self.with_spans)
            self.journal.close()
        if failure is None:
            self.cancel_timed_out()
        self.sender.join(timeout=1)
        self.sampler.join(timeout=1)
        return {**facts, "sender": self.sender_accuracy}  # an open loop stopped early still says how its sends went

    def mark_unended(self, failure: BaseException | None) -> None:
        """Requests sent and not ended: timed_out (the load ran out of time), interrupted (Ctrl-C, SIGTERM) or lost
        (the engine or the driver failed)."""
        interrupted = failure is not None and type(failure).__name__ in INTERRUPTIONS
        unended: RequestStatus = ("interrupted" if interrupted else "lost") if failure is not None else "timed_out"
        progress = getattr(self.engine, "progress", None) if failure is None else None  # a failed engine is not asked
        for record in self.records.values():
            if record.status == "sent":
                record.status = unended
                if callable(progress):
                    self.take_progress(record, progress)

    def take_progress(self, record: RequestRecord, progress: Callable[[int], Any]) -> None:
        """The tokens a timed-out request had received, from an engine that says (`Engine.progress`, optional)."""
        try:
            bad = record.cut_off(progress(record.index))
        except Exception as exc:  # best effort: the request stays timed out without its tokens
            bad = f"request {record.index}: progress raised {type(exc).__name__}: {str(exc)[:200]}"
        if bad:
            self.bad_records.append(bad)

    def cancel_timed_out(self) -> None:
        """Ask the engine to stop the timed-out requests (best effort: an engine that cannot is not an error)."""
        for record in self.records.values():
            if record.status == "timed_out":
                try:
                    self.engine.cancel(record.index)
                except Exception:
                    pass


JOURNAL_EVERY_S = 1.0
"""Ended requests reach the journal at least this often: a child that dies during a load loses at most about this
much of them."""


class RecordJournal:
    """The requests that ended, appended to requests.journal about once a second by the collecting thread (never inside
    an engine's timed work), so that a child that dies mid-load keeps them (measure/journal.py; `recover_requests`).
    Each frame: the rows (`RequestRecord.row`, REQUEST_RECORD_VERSION) of the requests that ended since the last; its
    tag says whether the requests' spans are written from them (1) or by the workload itself (0)."""

    def __init__(self, workdir: Path, with_spans: bool) -> None:
        self.journal = Journal(journal_path(workdir, REQUESTS))
        self.tag = int(with_spans)
        self.pending: list[RequestRecord] = []
        self.last = time.monotonic()

    def ended(self, record: RequestRecord) -> None:
        """`record` ended: it goes into the next frame."""
        self.pending.append(record)

    def write_due(self) -> None:
        """The ended requests as one frame, when JOURNAL_EVERY_S has passed since the last. OSError (a full disk)
        propagates, naming the journal."""
        if self.pending and time.monotonic() - self.last >= JOURNAL_EVERY_S:
            self.journal.append(self.tag, [r.row() for r in self.pending])
            self.pending.clear()
            self.last = time.monotonic()

    def close(self) -> None:
        """Every record is in requests.parquet: the journal goes."""
        self.journal.close(remove=True)


def recover_requests(workdir: Path) -> int:
    """After a child that died during its load: requests.parquet (and, where the driver writes them, the requests'
    spans) from the requests its journal holds; the journal is removed. Returns the requests read back (0: none, or
    the child wrote requests.parquet itself). The requests in flight or not yet sent when it died are not known.
    Raises what reading or writing raised (ValueError, TypeError: a row that is not a request record's)."""
    path = journal_path(workdir, REQUESTS)
    if not path.exists():
        return 0
    frames = read_frames(path.read_bytes())
    records = list({r.index: r for _, frame in frames for r in map(RequestRecord.from_row, frame)}.values())
    if records and not (workdir / f"{REQUESTS}.parquet").exists():
        _write(workdir, records, [], with_spans=bool(frames[0][0]))
    path.unlink()
    return len(records)


@contextmanager
def _sigterm_deferred() -> Iterator[None]:
    """SIGTERM (the parent stopping the child after a Ctrl-C) waits until the records are on disk; the parent
    allows 5 s before SIGKILL. Only the main thread can change a handler: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if received and callable(previous):
            previous(signal.SIGTERM, None)


INTERRUPTIONS = ("KeyboardInterrupt", "Terminated")


def _counts(records: list[RequestRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def _write(workdir: Path, records: list[RequestRecord], engine_rows: list[dict[str, Any]], with_spans: bool) -> None:
    """requests.parquet (by index), engine.parquet (when sampled) and, with_spans, each request's spans as parts."""
    records = sorted(records, key=lambda r: r.index)
    atomic_write_table(workdir / f"{REQUESTS}.parquet", request_table(records))
    if engine_rows:
        atomic_write_table(workdir / f"{ENGINE}.parquet", rows_to_table(engine_rows))
    if not with_spans:
        return
    writer = PartWriter(workdir, SPANS)
    for r in records:
        writer.extend(request_spans(r))
        if writer.full:
            writer.flush()
    writer.flush()


def request_spans(r: RequestRecord) -> list[dict[str, Any]]:
    """The span rows of one request (see the module docstring), in start order; none for a request never sent."""
    if r.arrival_ns is None:
        return []
    arrival, tokens = r.arrival_ns, r.token_ns or []
    error = None if r.status == "finished" else r.status
    end = tokens[-1] if tokens else (r.finished_ns or arrival)
    base = {"iteration": r.index, "warmup": not r.measured, "device_s": None}
    rows = [{**base, "phase": ITERATION, "start_ns": arrival, "end_ns": end, "units": 0.0, "error": error}]
    previous = arrival
    if r.scheduled_ns is not None:
        previous = max(arrival, r.scheduled_ns)
        rows.append({**base, "phase": "queue", "start_ns": arrival, "end_ns": previous, "units": 0.0, "error": None})
    # an engine that reports no scheduling (a server over HTTP): no queue span, and the first token's span runs from the
    # arrival, the server's queueing inside it
    for k, t in enumerate(tokens):
        rows.append({**base, "phase": "prefill" if k == 0 else "decode", "start_ns": previous, "end_ns": t, "units": 1.0, "error": None, "sequences": 1.0})
        previous = t
    for i, row in enumerate(sorted(rows, key=lambda x: x["start_ns"])):
        row["index"] = i
    return rows
