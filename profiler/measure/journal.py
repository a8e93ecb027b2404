"""How rows leave a child before they are a parquet part: a journal file, appended between iterations.

Why: a child that dies (os._exit, SIGKILL, a segfault, the out-of-memory killer) loses what it holds in memory.
Parquet parts are written about once a second (a part per iteration would cost a file per millisecond-long
iteration), so without a journal up to a second of iterations was lost. Each iteration's rows are instead appended
here as one frame as the iteration ends (outside every timed span: docs/architecture.md), with one `os.write` of
a pickled list: a few microseconds, and in the kernel's page cache the moment it returns, so a process that dies
after it loses nothing of it. When the rows are written as a part the journal is emptied. The parent, once the
child has ended, turns what a journal still holds into a last part (`recover`) and deletes it.

Format: frames of (tag: uint32, length: uint32, pickle); a frame cut short by a death inside `os.write` is ignored.
The tag is the number of the part the rows were going into: a frame whose part exists was written before the child
emptied the journal, and is not taken twice. Pickle, because span attributes are whatever a workload set; a journal
is only ever read by the `run` that created its directory, right after its child ended (never by `report`, which
never reads one), so nothing it holds runs outside the code the suite named.
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path
from typing import Any

HEADER = struct.Struct("<II")
SUFFIX = ".journal"


class Journal:
    """An append-only file of frames, emptied after each part is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)

    def append(self, tag: int, rows: list[dict[str, Any]]) -> None:
        """One frame of `rows` for part `tag`. OSError (a full disk) propagates: the caller names the write."""
        data = pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            os.write(self.fd, HEADER.pack(tag, len(data)) + data)
        except OSError as exc:  # named: a full disk says which write failed
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None

    def empty(self) -> None:
        os.ftruncate(self.fd, 0)

    def close(self, remove: bool = False) -> None:
        os.close(self.fd)
        if remove:
            self.path.unlink(missing_ok=True)


def read_frames(path: Path) -> list[tuple[int, list[dict[str, Any]]]]:
    """The whole frames of a journal, in order; a last frame cut short is left out."""
    data = path.read_bytes()
    frames, at = [], 0
    while at + HEADER.size <= len(data):
        tag, length = HEADER.unpack_from(data, at)
        body = data[at + HEADER.size : at + HEADER.size + length]
        if len(body) < length:
            break
        try:
            frames.append((tag, pickle.loads(body)))
        except Exception:  # a frame cut inside: what follows cannot be framed either
            break
        at += HEADER.size + length
    return frames


def journal_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{name}{SUFFIX}"
