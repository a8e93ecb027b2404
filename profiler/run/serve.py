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
- each finished request also becomes spans (its iteration = the request, from arrival to the last
  token; `queue` up to the engine scheduling it; `prefill` up to the first token; one `decode`
  span per later token), so the per-request metrics, phase statistics and differences read a load
  run like any other. Warmup and cooldown requests are stored as warmup spans.

Arrival times: for an open loop a request's arrival is its scheduled send time (a late send is the
generator's error, reported, and counted inside the request's latency as a user would see it);
for a closed loop it is when it was sent (the client waited for a free slot; that wait is
`slot_wait_s`, reported apart, as vLLM reports its --max-concurrency semaphore).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..load.arrivals import Request, capped_sizes, failed_trace_rows, fit_to_positions, gap_stats, schedule
from ..load.sender import send_all
from ..loadconfig import LoadConfig
from ..measure.journal import Journal, journal_path, read_frames
from ..measure.store import ENGINE, REQUESTS, SPANS, PartWriter, atomic_write_table, rows_to_table
from ..plugin import ITERATION, ServedRequest
from ..runmodel import LoadFacts

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


def serve(engine: Any, load: LoadConfig, trace: Any, measure: dict[str, Any], workdir: Path, progress: Any, request_spans: bool = True) -> LoadFacts:
    """Run the load against `engine`; write requests.parquet, engine.parquet and spans; return the run's facts.

    progress(done, total): called as requests end. request_spans: write each request's spans (False when
    the engine records the workload's own spans, as SequentialEngine does). Raises whatever the engine
    raised after writing every record taken so far.
    """
    requests = schedule(load, trace)
    fitted = None
    if getattr(engine, "max_positions", None):
        fitted = fit_to_positions(requests, int(engine.max_positions), load.long_requests)
    records: dict[int, dict[str, Any]] = {
        r.index: {
            "index": r.index,
            "measured": r.measured,
            "input_tokens": r.input_tokens,
            "output_tokens_requested": r.output_tokens,
            "scheduled_send_s": r.send_s,
            "arrival_ns": None,
            "sent_ns": None,
            "scheduled_ns": None,
            "token_ns": None,
            "finished_ns": None,
            "status": "not_sent",
            "error": None,
            "slot_wait_s": None,
        }
        for r in requests
    }
    closed = load.pattern == "closed"
    slots = threading.Semaphore(load.concurrency or 1)
    token_scale = load.token_scale
    stop_sending = threading.Event()
    send_error: list[BaseException] = []
    # one origin for arrivals and sends: time.perf_counter and time.monotonic_ns are both CLOCK_MONOTONIC on Linux
    start_perf = time.perf_counter()
    start_ns = round(start_perf * 1e9)

    def submit(r: Request) -> None:
        if stop_sending.is_set():
            return
        rec = records[r.index]
        now = time.monotonic_ns()
        rec["sent_ns"] = now
        rec["arrival_ns"] = now if closed else start_ns + round(r.send_s * 1e9)
        rec["status"] = "sent"
        engine.submit(served_request(r, token_scale))

    def send() -> None:
        try:
            if closed:
                for r in requests:
                    waited = time.monotonic_ns()
                    while not slots.acquire(timeout=0.1):
                        if stop_sending.is_set():
                            return
                    if stop_sending.is_set():
                        return
                    records[r.index]["slot_wait_s"] = (time.monotonic_ns() - waited) / 1e9
                    submit(r)
            else:
                report = send_all(requests, submit, start=start_perf, stop=stop_sending)
                facts["sender"] = report.accuracy()
        except BaseException as exc:  # an engine that refuses a request: the main thread reports it
            send_error.append(exc)

    facts: dict[str, Any] = {
        "pattern": load.pattern,
        "requests": len(requests),
        "measured_requests": sum(r.measured for r in requests),
        "long_requests": fitted,
        "sizes_capped": capped_sizes(load, len(requests)),
        "prefix_share": prefix_share(requests),
        "start_ns": start_ns,
        "bad_records": [],
        "trace_failed_rows_skipped": failed_trace_rows(load, trace),
    }
    if not closed and len(requests) > 1:
        facts["scheduled_gaps"] = gap_stats([r.send_s for r in requests])
    journal = RecordJournal(workdir, request_spans)
    sampler = _Sampler(engine, float(measure.get("sample_hz", 20.0)))
    sampler.start()
    sender = threading.Thread(target=send, name="load-sender", daemon=True)
    sender.start()
    deadline = time.monotonic() + float(measure["max_seconds"])
    ended = 0
    failure: BaseException | None = None
    try:
        while ended < len(requests):
            if send_error:
                raise send_error[0]
            if sampler.error:
                raise RuntimeError(f"the engine failed while being sampled: {sampler.error}")
            if time.monotonic() >= deadline:
                break
            for rec in engine.collect(COLLECT_TIMEOUT_S):
                index = _index(rec)
                stored = records.get(index) if index is not None else None
                if stored is None:
                    facts["bad_records"].append(f"a record for request {rec.get('index')!r}, which was never sent")
                    continue
                if stored["status"] in ENDED:
                    continue
                status = rec.get("status")
                error = rec.get("error")
                if status not in ENDED:
                    facts["bad_records"].append(f"request {stored['index']}: status {status!r} (an engine returns 'finished' or 'failed')")
                    status, error = "failed", f"the engine returned status {status!r}"
                tokens = [int(t) for t in (rec.get("token_ns") or [])]
                stored.update(
                    status=status,
                    error=error,
                    scheduled_ns=rec.get("scheduled_ns"),
                    token_ns=tokens,
                    finished_ns=rec.get("finished_ns") or (tokens[-1] if tokens else None),
                )
                ended += 1
                journal.ended(stored)
                if closed:
                    slots.release()
                progress(ended, len(requests))
            journal.write_due()
    except BaseException as exc:
        failure = exc
    finally:
        # the records first: a Ctrl-C or SIGTERM is followed by the parent's kill within seconds
        stop_sending.set()
        sampler.stopped.set()
        interrupted = failure is not None and type(failure).__name__ in INTERRUPTIONS
        unfinished = ("interrupted" if interrupted else "lost") if failure is not None else "timed_out"
        for rec in records.values():
            if rec["status"] == "sent":
                rec["status"] = unfinished
        facts["wall_s"] = time.perf_counter() - start_perf
        facts["end_ns"] = time.monotonic_ns()
        facts["status_counts"] = _counts(records.values())
        facts["measured_finished"] = sum(1 for r in records.values() if r["measured"] and r["status"] == "finished")
        facts["engine_sampler_error"] = sampler.error
        with _sigterm_deferred():
            _write(workdir, list(records.values()), list(sampler.rows), request_spans)
            journal.close()
        if failure is None:
            for rec in records.values():
                if rec["status"] == "timed_out":
                    try:
                        engine.cancel(rec["index"])
                    except Exception:
                        pass
        sender.join(timeout=1)
        sampler.join(timeout=1)
    if failure is not None:
        raise failure
    return LoadFacts.model_validate(facts)


JOURNAL_EVERY_S = 1.0
"""Ended requests reach the journal at least this often: a child that dies during a load loses at most about this
much of them."""


class RecordJournal:
    """The requests that ended, appended to requests.journal about once a second by the collecting thread (never inside
    an engine's timed work), so that a child that dies mid-load keeps them (measure/journal.py; `recover_requests`).
    The frame tag says whether the requests' spans are written from them (1) or by the workload itself (0)."""

    def __init__(self, workdir: Path, with_spans: bool) -> None:
        self.journal = Journal(journal_path(workdir, REQUESTS))
        self.tag = int(with_spans)
        self.pending: list[dict[str, Any]] = []
        self.last = time.monotonic()

    def ended(self, record: dict[str, Any]) -> None:
        self.pending.append(record)

    def write_due(self) -> None:
        if self.pending and time.monotonic() - self.last >= JOURNAL_EVERY_S:
            self.journal.append(self.tag, [dict(r) for r in self.pending])
            self.pending.clear()
            self.last = time.monotonic()

    def close(self) -> None:
        """Every record is in requests.parquet: the journal goes."""
        self.journal.close(remove=True)


def recover_requests(workdir: Path) -> int:
    """After a child that died during its load: requests.parquet (and, where the driver writes them, the requests'
    spans) from the requests its journal holds; the journal is removed. Returns the requests read back (0: none, or
    the child wrote requests.parquet itself). The requests in flight or not yet sent when it died are not known."""
    path = journal_path(workdir, REQUESTS)
    if not path.exists():
        return 0
    frames = read_frames(path.read_bytes())
    records = list({r["index"]: r for _, frame in frames for r in frame}.values())
    if records and not (workdir / f"{REQUESTS}.parquet").exists():
        _write(workdir, records, [], with_spans=bool(frames[0][0]))
    path.unlink()
    return len(records) if records else 0


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


ENDED = ("finished", "failed")
INTERRUPTIONS = ("KeyboardInterrupt", "Terminated")


def _index(rec: dict[str, Any]) -> int | None:
    try:
        return int(rec["index"])
    except (KeyError, TypeError, ValueError):
        return None


def _counts(records: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return counts


def _write(workdir: Path, records: list[dict[str, Any]], engine_rows: list[dict[str, Any]], with_spans: bool) -> None:
    import pyarrow as pa

    records.sort(key=lambda r: r["index"])
    columns = {k: [r[k] for r in records] for k in records[0]} if records else {}
    types = {
        "token_ns": pa.list_(pa.int64()),
        "arrival_ns": pa.int64(),
        "sent_ns": pa.int64(),
        "scheduled_ns": pa.int64(),
        "finished_ns": pa.int64(),
        "error": pa.string(),
        "slot_wait_s": pa.float64(),
    }
    table = pa.table({k: pa.array(v, type=types.get(k)) for k, v in columns.items()})
    atomic_write_table(workdir / f"{REQUESTS}.parquet", table)
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


def request_spans(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The spans of one request (see the module docstring); none for a request never sent."""
    if r["arrival_ns"] is None:
        return []
    tokens = r["token_ns"] or []
    error = None if r["status"] == "finished" else r["status"]
    end = tokens[-1] if tokens else (r["finished_ns"] or r["arrival_ns"])
    base = {"iteration": r["index"], "warmup": not r["measured"], "device_s": None}
    rows = [{**base, "phase": ITERATION, "start_ns": r["arrival_ns"], "end_ns": end, "units": 0.0, "error": error}]
    if r["scheduled_ns"] is not None:
        rows.append({**base, "phase": "queue", "start_ns": r["arrival_ns"], "end_ns": max(r["arrival_ns"], r["scheduled_ns"]), "units": 0.0, "error": None})
        previous = max(r["arrival_ns"], r["scheduled_ns"])
        for k, t in enumerate(tokens):
            rows.append({**base, "phase": "prefill" if k == 0 else "decode", "start_ns": previous, "end_ns": t, "units": 1.0, "error": None, "sequences": 1.0})
            previous = t
    for i, row in enumerate(sorted(rows, key=lambda x: x["start_ns"])):
        row["index"] = i
    return rows
