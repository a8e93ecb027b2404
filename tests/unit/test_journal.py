"""The span journal: each batch on disk as it is given, emptied at each part; read back by the run (a dead child) and by
`report` (a run cut off), never twice, and read with an unpickler that runs nothing."""

from __future__ import annotations

import os
import pickle
import struct

from profiler.measure.journal import HEADER, journal_path, read_frames
from profiler.measure.store import SPANS, PartWriter, recover_journal
from profiler.rundir import read_measured


def rows(iteration: int, n: int = 3) -> list[dict]:
    t0 = 10_000 * iteration
    spans = [{"iteration": iteration, "warmup": False, "phase": "step", "index": k + 1, "start_ns": t0 + 10 * k, "end_ns": t0 + 10 * k + 5} for k in range(n)]
    whole = {"iteration": iteration, "warmup": False, "phase": "iteration", "index": 0, "start_ns": 10_000 * iteration, "end_ns": 10_000 * iteration + 100}
    return [{**r, "units": 1.0, "device_s": None, "error": None} for r in [whole, *spans]]


def cut_off_directory(tmp_path):
    """Two iterations written as a part, a third only in the journal: as a child (or a profiler) killed a moment later leaves it."""
    writer = PartWriter(tmp_path, SPANS, journal=True)
    writer.extend(rows(0))
    writer.extend(rows(1))
    writer.flush()
    writer.extend(rows(2))
    return writer


def test_report_reads_the_journal_of_a_cut_off_run_once(tmp_path):
    cut_off_directory(tmp_path)
    problems: list[str] = []
    measured, iterations, total = read_measured(tmp_path / f"{SPANS}.parquet", problems)
    assert sorted(iterations["iteration"]) == [0, 1, 2] and total == 12
    assert any("4 row(s) read from the journal of a run cut off" in p for p in problems)


def test_the_run_recovers_the_journal_into_a_last_part_without_duplicates(tmp_path):
    cut_off_directory(tmp_path)
    assert recover_journal(tmp_path, SPANS) == 4
    assert not journal_path(tmp_path, SPANS).exists()
    measured, iterations, total = read_measured(tmp_path / f"{SPANS}.parquet", [])
    assert sorted(iterations["iteration"]) == [0, 1, 2] and total == 12


def test_a_closed_writer_leaves_no_journal(tmp_path):
    writer = cut_off_directory(tmp_path)
    writer.close()
    assert not journal_path(tmp_path, SPANS).exists()
    assert recover_journal(tmp_path, SPANS) == 0


def test_a_hostile_journal_runs_nothing(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    body = pickle.dumps([{"phase": Evil()}])
    data = HEADER.pack(0, len(body)) + body
    problems: list[str] = []
    assert read_frames(data, problems, "spans.journal") == []
    assert not marker.exists()
    assert "names posix.system" in problems[0] or "names os.system" in problems[0]
    journal_path(tmp_path, SPANS).write_bytes(data)
    problems = []
    measured, _, total = read_measured(tmp_path / f"{SPANS}.parquet", problems)
    assert total == 0 and not marker.exists() and any("unreadable" in p for p in problems)


def test_a_frame_cut_short_ends_the_reading_quietly():
    body = pickle.dumps(rows(0))
    data = HEADER.pack(0, len(body)) + body + struct.pack("<II", 0, 999) + b"cut"
    problems: list[str] = []
    assert [tag for tag, _ in read_frames(data, problems)] == [0] and problems == []
