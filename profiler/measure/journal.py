"""How rows leave a child before they are a parquet part: a journal file, appended between iterations.

Why: a child that dies (os._exit, SIGKILL, a segfault, the out-of-memory killer) loses what it holds in memory.
Parquet parts are written about once a second (a part per iteration would cost a file per millisecond-long
iteration), so without a journal up to a second of iterations was lost. Each iteration's rows are instead appended
here as one frame as the iteration ends (outside every timed span: docs/architecture.md), with one `os.write` of
a pickled list: a few microseconds, and in the kernel's page cache the moment it returns, so a process that dies
after it loses nothing of it. When the rows are written as a part the journal is emptied. The parent, once the
child has ended, turns what a journal still holds into a last part (`recover`) and deletes it.

When the profiler itself was killed, nobody read the journals back: `report` reads them with the run's other files
(profiler/rundir.py), so a cut-off run still shows every iteration that ended.

Format: frames of (tag: uint32, length: uint32, pickle); a frame cut short by a death inside `os.write` is ignored.
The tag is the number of the part the rows were going into: a frame whose part exists was written before the child
emptied the journal, and is not taken twice. Pickle, because it is the fastest encoder of a workload's attribute
values (a few microseconds an iteration; JSON takes five times longer). A run directory may come from anywhere, so a
journal is read with an unpickler that resolves no global at all except numpy's scalars and dtypes (`RowUnpickler`,
Python's documented way of restricting pickle): plain containers, numbers and text are built, nothing is imported or
called; a frame holding anything else is named and left out.
"""

from __future__ import annotations

import io
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


ALLOWED_GLOBALS = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype")}
"""The only globals a journal may name: how numpy pickles its scalars (a dtype and the value's bytes)."""


class RowUnpickler(pickle.Unpickler):
    """Builds rows from a pickle without importing or calling anything but numpy's scalar constructors."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"the frame names {module}.{name}, which a journal of rows never holds")


def read_frames(data: bytes, problems: list[str] | None = None, where: str = "journal") -> list[tuple[int, list[dict[str, Any]]]]:
    """The whole frames of a journal's bytes, in order, each a list of row dicts. A last frame cut short (a death inside
    os.write) ends the reading quietly; a frame that is not rows is named in `problems` and the reading stops there."""
    frames, at = [], 0
    while at + HEADER.size <= len(data):
        tag, length = HEADER.unpack_from(data, at)
        body = data[at + HEADER.size : at + HEADER.size + length]
        if len(body) < length:
            break
        try:
            rows = RowUnpickler(io.BytesIO(body)).load()
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise pickle.UnpicklingError(f"a frame holds a {type(rows).__name__}, not a list of rows")
        except Exception as exc:
            if problems is not None:
                problems.append(f"{where}: frame at byte {at} unreadable ({type(exc).__name__}: {str(exc)[:120]}); the frames from there on are left out")
            break
        frames.append((tag, rows))
        at += HEADER.size + length
    return frames


def unwritten_rows(data: bytes, parts: list[Path], problems: list[str] | None = None, where: str = "journal") -> list[dict[str, Any]]:
    """The rows of a journal's frames whose part (its tag) is not among `parts` (the part files of the same table):
    those a part does not hold already."""
    written = {int(p.name.split(".part-")[1].split(".")[0]) for p in parts}
    return [row for tag, frame in read_frames(data, problems, where) if tag not in written for row in frame]


def journal_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{name}{SUFFIX}"
