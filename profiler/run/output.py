"""A workload's stdout and stderr: into capped files in its directory, never onto the terminal.

Why: the terminal is the profiler's (progress, the summary, one line per failure); a plugin that prints 100 MB
would flood it and a CI log. The parent makes one pipe per stream and hands the write ends to the child, which puts
them under its file descriptors 1 and 2 before any workload code runs (`redirect_into`), so Python's prints, C
libraries' writes and the interpreter's own fatal-error text all go there. A thread of the parent drains both into
`stdout.log` and `stderr.log`: the first OUTPUT_CAP_BYTES of each stream, then, at its end, a line saying how many
bytes were left out and the last TAIL_BYTES. The parent drains, so what a crashing child wrote before it died is
kept; a file exists only when its stream carried something.
"""

from __future__ import annotations

import io
import os
import selectors
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

STREAMS = ("stdout", "stderr")
OUTPUT_CAP_BYTES = 8 * 2**20
"""The head of each stream kept in its file."""
TAIL_BYTES = 64 * 2**10
"""The end of each stream kept after the cut: where an error usually is."""
READ_BYTES = 64 * 2**10


@dataclass
class StreamRecord:
    """What one stream carried: its file (None when it carried nothing), its bytes, and how many of them were left out."""

    name: str
    path: Path | None
    total_bytes: int
    left_out_bytes: int

    def problem(self) -> str | None:
        """One line when bytes were left out, else None."""
        if not self.left_out_bytes:
            return None
        return (
            f"the workload wrote {self.total_bytes:,} bytes to {self.name}: the first {OUTPUT_CAP_BYTES // 2**20} MiB and the last "
            f"{TAIL_BYTES // 2**10} KiB are in {self.name}.log, {self.left_out_bytes:,} bytes between them were left out"
        )


class _Stream:
    def __init__(self, name: str, path: Path, fd: int) -> None:
        self.name, self.path, self.fd = name, path, fd
        self.file = None
        self.total = 0
        self.tail = bytearray()

    def take(self, data: bytes) -> None:
        room = max(0, OUTPUT_CAP_BYTES - self.total)
        self.total += len(data)
        if room:
            if self.file is None:
                self.file = open(self.path, "ab")  # noqa: SIM115 - closed in finish()
            self.file.write(data[:room])
        if len(data) > room:
            self.tail += data[room:]
            del self.tail[: max(0, len(self.tail) - TAIL_BYTES)]

    def finish(self) -> StreamRecord:
        left_out = max(0, self.total - OUTPUT_CAP_BYTES - len(self.tail))
        if self.file is not None:
            if self.tail:
                self.file.write(f"\n[profiler: {left_out:,} bytes left out here; the last {len(self.tail):,} follow]\n".encode())
                self.file.write(self.tail)
            self.file.close()
        return StreamRecord(self.name, self.path if self.total else None, self.total, left_out)


class OutputCapture:
    """The pipes of one child's stdout and stderr and the thread that drains them into `workdir`."""

    def __init__(self, workdir: Path) -> None:
        self.streams: list[_Stream] = []
        self.child_ends: dict[str, Connection] = {}
        for name in STREAMS:
            read_fd, write_fd = os.pipe()
            self.streams.append(_Stream(name, Path(workdir) / f"{name}.log", read_fd))
            self.child_ends[name] = Connection(write_fd, readable=False)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._drain, name="profiler-output", daemon=True)
        self.records: list[StreamRecord] = []
        self.error: str | None = None

    def started(self) -> None:
        """After the child has started (it holds its own copies of the write ends): close the parent's, drain."""
        for conn in self.child_ends.values():
            conn.close()
        self.thread.start()

    def _drain(self) -> None:
        selector = selectors.DefaultSelector()
        for stream in self.streams:
            selector.register(stream.fd, selectors.EVENT_READ, stream)
        open_streams = len(self.streams)
        try:
            while open_streams:
                events = selector.select(timeout=0.1)
                if not events and self.stop_event.is_set():
                    break  # stopped, and nothing more is waiting (a process left behind may still hold a write end)
                for key, _ in events:
                    data = os.read(key.fd, READ_BYTES)
                    if data:
                        key.data.take(data)
                    else:
                        selector.unregister(key.fd)
                        open_streams -= 1
        except OSError as exc:
            self.error = f"the workload's output could not be kept ({exc.strerror or exc}); the rest of it was dropped"
        finally:
            selector.close()

    def finish(self) -> list[StreamRecord]:
        """Once the child and its group have ended: drain what is left, close the files and pipes."""
        self.stop_event.set()
        if self.thread.ident is not None:  # started
            self.thread.join(timeout=5)
        self.records = []
        for stream in self.streams:
            try:
                self.records.append(stream.finish())
            except OSError as exc:
                self.error = f"{stream.name}.log could not be written ({exc.strerror or exc})"
            os.close(stream.fd)
        return self.records


def redirect_into(ends: dict[str, Connection]) -> None:
    """In the child: file descriptors 1 and 2 become the write ends of the parent's pipes (stdout line-buffered, so
    that a print before a crash is not lost in a buffer)."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        conn = ends[name]
        os.dup2(conn.fileno(), fd)
        conn.close()
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
