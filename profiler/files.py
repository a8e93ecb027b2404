"""Reading a file that may come from anywhere: only a regular file, never more than a bound, never blocking.

Suites arrive in pull requests, traces are downloaded, run directories are copied between machines. The suite reader
(suite/yaml_source.py), the trace reader (load/traces.py) and the run-directory reader (measure/store.py, rundir.py)
all read through `read_bounded` or `open_regular`, so each refuses the same things the same way: a FIFO (opening one
for reading waits for a writer), a device (/dev/zero never ends), a directory, a file over its bound, a path too long
or with a NUL byte. The path is checked by stat before it is opened (a device is never opened) and again by fstat on
the open descriptor (a path swapped in between is caught); it is opened non-blocking. A refusal is an
`UnreadableFile` whose text says what is wrong in words, without the path: the caller names the file and what to do.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


class UnreadableFile(ValueError):
    """A file refused by a bound, or one that is not a regular file or cannot be opened; str() says what is wrong (the
    caller names the file)."""


def file_kind(mode: int) -> str:
    """What an (l)stat mode is, in words: regular file, directory, symlink, FIFO, character device, block device, socket."""
    kinds = [
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ]
    return next((word for test, word in kinds if test(mode)), "special file")


def size_text(n: int) -> str:
    """A byte count for people: 2 GiB, 64 MiB, 1,000 bytes."""
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB" if n >= 2**20 else f"{n:,} bytes"


def open_regular(path: str | Path, limit: int) -> io.FileIO:
    """The regular file at `path`, opened for reading (binary, unbuffered; close it). FileNotFoundError when it is
    missing; UnreadableFile when it is not a regular file, is larger than `limit` bytes, or cannot be opened."""
    _check(_stat(path), limit)
    try:
        fd = os.open(path, _FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnreadableFile(os_problem(exc)) from None
    try:
        _check(os.fstat(fd), limit)
    except BaseException:
        os.close(fd)
        raise
    return io.FileIO(fd, "rb")


def read_bounded(path: str | Path, limit: int) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them (one more is read to tell a file that grew
    since its stat). FileNotFoundError when it is missing; UnreadableFile otherwise (see open_regular), also when
    reading fails."""
    with open_regular(path, limit) as f:
        chunks, got = [], 0
        try:
            while got <= limit:
                chunk = f.read(min(limit + 1 - got, 1 << 24))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except OSError as exc:
            raise UnreadableFile(os_problem(exc)) from None
    if got > limit:
        raise UnreadableFile(f"more than {limit:,} bytes (it grew since it was checked), over the {size_text(limit)} limit for this file")
    return b"".join(chunks)


def os_problem(exc: OSError) -> str:
    """Why a path could not be opened or read, in words."""
    words = {
        errno.ENAMETOOLONG: "the path is too long (a file name may have 255 bytes, a path 4096)",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOTDIR: "a folder on the path is a file",
        errno.ELOOP: "too many levels of symbolic links",
        errno.EISDIR: "is a directory, not a regular file",
    }
    return words.get(exc.errno or 0, f"cannot be read ({exc.strerror or type(exc).__name__})")


def _stat(path: str | Path) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise
    except ValueError:  # an embedded NUL byte
        raise UnreadableFile("the path contains a NUL character") from None
    except OSError as exc:
        raise UnreadableFile(os_problem(exc)) from None


def _check(st: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFile(f"is a {file_kind(st.st_mode)}, not a regular file")
    if st.st_size > limit:
        raise UnreadableFile(f"{st.st_size:,} bytes, over the {size_text(limit)} limit ({limit:,} bytes) for this file")
