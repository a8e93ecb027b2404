"""Where the user names an output file (`-o` of report and compare), the profiler replaces only what it wrote itself.

`report RUN -o /dev/null` as root once replaced the machine's /dev/null with a page (the atomic rename of
measure/store.py goes over whatever is there). So before anything is written, check_output_file refuses a target that
exists and is not a regular file (a directory, FIFO, device, socket, or a symlink wherever it points) or is a file
without the profiler's marker: a `<meta name="generator">` in a page's head (mark_html adds it), or compare's table's
own shape. A missing target needs a writable directory. Each refusal is one line naming the flag and the path.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from ..files import file_kind

GENERATOR = "ml-workload-profiler"
"""The profiler's name in the marker of the files it writes where the user names them (report and compare pages)."""
HTML_MARKER = f'<meta name="generator" content="{GENERATOR}'
LEGACY_HTML_MARKERS = ("<title>Profiler report — ", "<title>Profiler A/B comparison</title>")
"""Pages written before the marker existed: the titles of the report and compare templates, in their first lines."""
MARKER_WINDOW = 4096
"""Bytes read from the start of an existing output file to find the marker (it is in the page's <head>)."""


def generator_meta() -> str:
    """`<meta name="generator" content="ml-workload-profiler VERSION">`: the marker that lets a later run replace the page."""
    from importlib import metadata

    try:
        version = metadata.version(GENERATOR)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f'{HTML_MARKER} {version}">'


def mark_html(page: str) -> str:
    """The page with generator_meta() at the start of its <head> (after its charset, if declared there), so within
    MARKER_WINDOW; once."""
    if HTML_MARKER in page[:MARKER_WINDOW]:
        return page
    for anchor in ('<meta charset="utf-8">', "<head>"):
        at = page.find(anchor, 0, MARKER_WINDOW)
        if at >= 0:
            at += len(anchor)
            return page[:at] + "\n" + generator_meta() + page[at:]
    return generator_meta() + "\n" + page


def is_profiler_html(head: bytes) -> bool:
    """The first MARKER_WINDOW bytes of a file are those of a page the profiler wrote (marker, or an older page's title)."""
    text = head[:MARKER_WINDOW].decode("utf-8", errors="replace")
    return HTML_MARKER in text or any(m in text for m in LEGACY_HTML_MARKERS)


def is_profiler_compare_json(head: bytes) -> bool:
    """The first MARKER_WINDOW bytes are those of compare's table (`[` then records whose first keys are "workload" and
    "metric", as reports/compare.py writes them), or an empty table."""
    text = re.sub(rb"\s+", b"", head[:MARKER_WINDOW])
    return text == b"[]" or text.startswith(b'[{"workload":') and b'"metric":' in text


def check_output_file(path: str | Path, ours: Callable[[bytes], bool], flag: str = "-o") -> None:
    """UserError (one line, naming `flag` and the path; flag "" for a default path) unless `path` may be written: it
    does not exist and its directory exists and is writable, or it is a regular file (never a symlink, wherever it
    points) whose first MARKER_WINDOW bytes `ours` recognises as the profiler's own. A directory, FIFO, device or socket
    is refused. Reads at most MARKER_WINDOW bytes, without blocking or following a link."""
    path = Path(path)
    where = f"{flag} {path}" if flag else str(path)
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        _check_directory_of(path, where)
        return
    except OSError as exc:
        raise UserError(f"{where}: cannot be checked ({exc.strerror or exc}); {ANOTHER}") from None
    if not stat.S_ISREG(mode):
        raise UserError(f"{where}: is a {file_kind(mode)}; the profiler replaces only files it wrote: remove it or {ANOTHER}")
    if not ours(_read_head(path, where)):
        raise UserError(f"{where}: exists and was not written by the profiler (no '{GENERATOR}' marker); it is never replaced: remove it or {ANOTHER}")
    _check_directory_of(path, where)


ANOTHER = "give another output file with -o"


def _check_directory_of(path: Path, where: str) -> None:
    """UserError unless the directory `path` would be written into exists, is a directory and is writable."""
    parent = path.absolute().parent
    if not parent.is_dir():
        missing = "does not exist" if not parent.exists() else "is not a directory"
        raise UserError(f"{where}: its directory {parent} {missing}; create it or {ANOTHER}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{where}: its directory {parent} is not writable; {ANOTHER}")


def _read_head(path: Path, where: str) -> bytes:
    """The first MARKER_WINDOW bytes of a regular file: opened without following a link or blocking (a FIFO swapped in
    after the check is refused, not waited on). UserError when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise UserError(f"{where}: exists and cannot be read ({exc.strerror or exc}); {ANOTHER}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UserError(f"{where}: is a {file_kind(mode)}; the profiler replaces only files it wrote: remove it or {ANOTHER}")
        return os.read(fd, MARKER_WINDOW)
    except OSError as exc:
        raise UserError(f"{where}: exists and cannot be read ({exc.strerror or exc}); {ANOTHER}") from None
    finally:
        os.close(fd)
