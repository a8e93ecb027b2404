"""The load driver in-process (profiler/run/serve.py: serve) against a stub engine: what an engine returns is validated
once (load/records.py), what it cannot take is a bad_records line, and every request ends in requests.parquet
whatever the engine does (timed out, lost) and reads back the same from the journal."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from profiler.load.records import BadRecord, EngineRecord
from profiler.loadconfig import LoadConfig
from profiler.plugin import ServedRequest
from profiler.run import serve as serve_module
from profiler.run.serve import recover_requests, serve
from profiler.suite.config import MeasureConfig

REQUESTS = 4
OPEN = {"pattern": "constant", "rate": 1000, "requests": REQUESTS, "sizes": {"input": {"fixed": 2}, "output": {"fixed": 3}}}
CLOSED = {"pattern": "closed", "concurrency": 2, "requests": REQUESTS, "sizes": {"input": {"fixed": 2}, "output": {"fixed": 3}}}
SCHEMA = pa.schema(
    [
        ("index", pa.int64()),
        ("measured", pa.bool_()),
        ("input_tokens", pa.int64()),
        ("output_tokens_requested", pa.int64()),
        ("scheduled_send_s", pa.float64()),
        ("arrival_ns", pa.int64()),
        ("sent_ns", pa.int64()),
        ("scheduled_ns", pa.int64()),
        ("token_ns", pa.list_(pa.int64())),
        ("finished_ns", pa.int64()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("slot_wait_s", pa.float64()),
        ("input_tokens_by", pa.string()),
    ]
)
"""requests.parquet as run directories hold it (profiler/tables.py: TABLES["requests"])."""


def finished(request: ServedRequest) -> list[object]:
    now = time.monotonic_ns()
    return [{"index": request.index, "status": "finished", "error": None, "scheduled_ns": now, "token_ns": [now + 1, now + 2, now + 3], "finished_ns": now + 3}]


class StubEngine:
    """An engine that answers each request at the first `collect` after its submission with the records `answer` gives
    (none: it never ends). With `die_after`, it hands that many records once every request is in, then raises."""

    max_positions = None

    def __init__(self, answer: Callable[[ServedRequest], list[object]] = finished, die_after: int | None = None) -> None:
        self.answer = answer
        self.die_after = die_after
        self.lock = threading.Lock()
        self.submitted: list[ServedRequest] = []
        self.answered = 0
        self.cancelled: list[int] = []

    def submit(self, request: ServedRequest) -> None:
        with self.lock:
            self.submitted.append(request)

    def collect(self, timeout_s: float) -> list[object]:
        with self.lock:
            new = self.submitted[self.answered :]
        if self.die_after is not None:
            return self.dying(new, timeout_s)
        self.answered += len(new)
        out = [raw for request in new for raw in self.answer(request)]
        if not out:
            time.sleep(timeout_s)
        return out

    def dying(self, new: list[ServedRequest], timeout_s: float) -> list[object]:
        assert self.die_after is not None
        if self.answered >= self.die_after:
            raise RuntimeError("the stub engine died")
        if len(self.submitted) < REQUESTS:
            time.sleep(timeout_s)
            return []
        handed = new[: self.die_after]
        self.answered += len(handed)
        return [raw for request in handed for raw in self.answer(request)]

    def engine_stats(self) -> dict[str, float | None]:
        return {"running": float(len(self.submitted) - self.answered), "waiting": 0.0, "kv_bytes_used": None, "kv_bytes_total": None, "preempted": None}

    def cancel(self, index: int) -> None:
        self.cancelled.append(index)


def run(tmp_path, engine: StubEngine, load: dict = OPEN, max_seconds: float = 10.0, progress: list | None = None):
    seen = [] if progress is None else progress
    facts = serve(
        engine,
        LoadConfig.model_validate(load),
        None,
        MeasureConfig.model_validate({"max_seconds": max_seconds, "min_seconds": 0, "sample_hz": 100}),
        tmp_path,
        lambda d, t: seen.append((d, t)),
    )
    return facts, pq.read_table(tmp_path / "requests.parquet")


def by_index(table: pa.Table) -> dict[int, dict]:
    return {row["index"]: row for row in table.to_pylist()}


def test_every_request_of_a_stub_engine_is_recorded_with_exact_types(tmp_path):
    progress: list = []
    facts, table = run(tmp_path, StubEngine(), progress=progress)
    assert table.schema.equals(SCHEMA)
    assert table.column("status").to_pylist() == ["finished"] * REQUESTS and facts.status_counts == {"finished": REQUESTS}
    assert progress == [(k, REQUESTS) for k in range(1, REQUESTS + 1)] and facts.bad_records == [] and facts.measured_finished == REQUESTS
    assert (tmp_path / "engine.parquet").exists() and not (tmp_path / "requests.journal").exists()
    assert list(tmp_path.glob("spans.part-*.parquet"))


def test_malformed_records_of_a_stub_engine_become_bad_records_lines(tmp_path):
    def answer(request: ServedRequest) -> list[object]:
        good = finished(request)[0]
        assert isinstance(good, dict)
        if request.index == 1:
            return [{**good, "status": "done"}, {k: v for k, v in good.items() if k != "index"}, "oops"]
        if request.index == 2:
            return [{**good, "token_ns": 5}]
        return [good]

    facts, table = run(tmp_path, StubEngine(answer))
    assert facts.status_counts == {"finished": 2, "failed": 2}
    assert facts.bad_records == [
        "request 1: status 'done' (an engine returns 'finished' or 'failed')",
        "a record without an index",
        "a record that is a str, not a dict",
        "request 2: token_ns 5 (a list of time.monotonic_ns integers)",
    ]
    rows = by_index(table)
    assert rows[1]["status"] == "failed" and rows[1]["error"] == "the engine returned status 'done'" and len(rows[1]["token_ns"]) == 3
    assert rows[2]["status"] == "failed" and rows[2]["error"] == "the engine returned token_ns 5" and rows[2]["token_ns"] == []


def test_a_stub_engine_record_for_a_request_never_sent_is_a_bad_record_and_a_repeat_is_ignored(tmp_path):
    def answer(request: ServedRequest) -> list[object]:
        good = finished(request)[0]
        assert isinstance(good, dict)
        return [good, {**good, "status": "failed"}, {**good, "index": 99}] if request.index == 0 else [good]

    facts, table = run(tmp_path, StubEngine(answer))
    assert facts.bad_records == ["a record for request 99, which was never sent"]
    assert facts.status_counts == {"finished": REQUESTS} and table.num_rows == REQUESTS


def test_requests_a_stub_engine_never_ends_time_out_and_are_cancelled(tmp_path):
    engine = StubEngine(lambda r: finished(r) if r.index < 2 else [])
    facts, table = run(tmp_path, engine, max_seconds=0.5)
    assert facts.status_counts == {"finished": 2, "timed_out": 2}
    assert [row["status"] for row in table.to_pylist()] == ["finished", "finished", "timed_out", "timed_out"]
    assert sorted(engine.cancelled) == [2, 3]


def test_a_timed_out_request_keeps_the_tokens_a_stub_engine_says_it_delivered(tmp_path):
    """Engine.progress (optional): what a request that never ended had received when the run stopped waiting for it is
    kept on its record (status still timed_out); a progress that is no record's shape is a bad_records line."""

    class Progressing(StubEngine):
        def progress(self, index: int) -> object:
            return {"scheduled_ns": 5, "token_ns": [7, 9]} if index == 2 else "garbage"

    engine = Progressing(lambda r: finished(r) if r.index < 2 else [])
    facts, table = run(tmp_path, engine, max_seconds=0.5)
    rows = table.to_pylist()
    assert [r["status"] for r in rows] == ["finished", "finished", "timed_out", "timed_out"]
    assert (rows[2]["scheduled_ns"], rows[2]["token_ns"]) == (5, [7, 9]) and rows[3]["token_ns"] is None
    assert facts.bad_records == ["request 3: progress 'garbage' (an engine's progress is a dict of scheduled_ns and token_ns)"]


def test_a_stub_engine_whose_collect_raises_keeps_the_records_taken_and_the_rest_are_lost(tmp_path):
    engine = StubEngine(die_after=2)
    with pytest.raises(RuntimeError, match="stub engine died"):
        serve(engine, LoadConfig.model_validate(OPEN), None, MeasureConfig.model_validate({"max_seconds": 10.0}), tmp_path, lambda d, t: None)
    table = pq.read_table(tmp_path / "requests.parquet")
    assert table.schema.equals(SCHEMA)
    assert table.column("status").to_pylist() == ["finished", "finished", "lost", "lost"]
    assert engine.cancelled == [] and not (tmp_path / "requests.journal").exists()


@pytest.mark.parametrize("load", [OPEN, CLOSED], ids=["open", "closed"])
def test_the_journal_of_a_stub_engine_load_gives_back_the_same_rows(tmp_path, monkeypatch, load):
    monkeypatch.setattr(serve_module, "JOURNAL_EVERY_S", 0.0)
    monkeypatch.setattr(serve_module.RecordJournal, "close", lambda self: self.journal.close())  # kept, as a dead child leaves it
    engine = StubEngine(lambda r: [{**finished(r)[0], "status": "failed", "error": "stub"}] if r.index == 1 else finished(r))
    facts, written = run(tmp_path, engine, load=load)
    assert facts.status_counts == {"finished": 3, "failed": 1}
    (tmp_path / "requests.parquet").rename(tmp_path / "written.parquet")
    assert recover_requests(tmp_path) == REQUESTS
    recovered = pq.read_table(tmp_path / "requests.parquet")
    assert recovered.schema.equals(written.schema) and recovered.equals(written)
    assert not (tmp_path / "requests.journal").exists()
    if load is CLOSED:
        assert all(w is not None and w >= 0 for w in recovered.column("slot_wait_s").to_pylist())


def test_an_engine_record_is_taken_once_as_typed_fields():
    got = EngineRecord.parse({"index": np.int64(3), "status": "finished", "token_ns": (np.int64(5), 6.0), "scheduled_ns": 4, "extra": "kept out"})
    assert got == EngineRecord(index=3, status="finished", scheduled_ns=4, token_ns=(5, 6))
    assert all(type(t) is int for t in got.token_ns)
    bad = EngineRecord.parse({"index": 1, "status": "finished", "error": 7, "finished_ns": "late"})
    assert bad.status == "failed" and bad.error == "the engine returned error 7; finished_ns 'late'" and len(bad.problems) == 2
    for raw, text in ([1, 2], "a list, not a dict"), ({"index": True}, "request True"), ({"index": "1"}, "request '1'"):
        with pytest.raises(BadRecord, match=text):
            EngineRecord.parse(raw)
