"""Where the user names an output file (`-o` of report and compare), the profiler replaces only what it wrote itself.

`report RUN -o /dev/null` as root once replaced the machine's /dev/null with a page (the atomic rename of
measure/store.py goes over whatever is there), and a page title quoted in someone's notes once made them "the
profiler's". So before anything is written, check_output_file refuses a target that exists and is not a regular file
(a directory, FIFO, device, socket, or a symlink wherever it points), or is a regular file the profiler cannot tell
as its own:
- a page: the generator meta (`<meta name="generator" content="ml-workload-profiler VERSION">`, mark_html adds it) at
  the start of its <head>, after nothing but the doctype, the <html> tag and the charset meta; the text anywhere else
  (a template, notes quoting it) does not count;
- compare's table: JSON that parses as compare's records (a list of objects with compare's columns); an empty list
  only beside a page that carries the marker (compare wrote both);
- a default output (no -o: RUN/report.html, RUN_B/compare.html and .json): any regular file, when its directory is a
  run directory (has run.json): the profiler wrote it there, releases before the marker included.
A missing target needs a writable directory. Each refusal is one line naming the flag and the path.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..files import file_kind
from .store import MAX_JSON_BYTES, json_depth

GENERATOR = "ml-workload-profiler"
"""The profiler's name in the marker of the files it writes where the user names them (report and compare pages)."""
HTML_MARKER = f'<meta name="generator" content="{GENERATOR}'
MARKER_WINDOW = 4096
"""Bytes read from the start of an existing page to find the marker (the first lines of its <head>)."""
_MARKED = re.compile(
    rb'(?:\xef\xbb\xbf)?\s*(?i:<!doctype html>\s*)?(?i:<html(?:\s[^<>]*)?>\s*)?(?i:<head>\s*(?:<meta charset="utf-8">\s*)?)?'
    + re.escape(HTML_MARKER.encode())
    + rb' [^"<>\r\n]{1,64}">'
)
"""A page that starts with the generator meta: after an optional BOM, doctype, <html> tag, <head> and charset meta only."""
COMPARE_COLUMNS = frozenset(("workload", "metric", "a_median", "b_median", "ratio", "ci_low", "ci_high"))
"""The columns every record of compare's table has had (reports/compare.py COLUMNS, and the releases before it)."""
COMPARE_OPTIONAL = frozenset(("basis", "verdict", "why"))
"""The columns compare's table gained later (a record of an older release lacks some)."""
RUN_JSON = "run.json"


@dataclass(frozen=True)
class Recogniser:
    """How a kind of output file is told as the profiler's: `test` on its first `window` bytes; `what` names the
    mark it lacks in a refusal."""

    test: Callable[[bytes], bool]
    window: int
    what: str

    def __call__(self, head: bytes) -> bool:
        return self.test(head)


def generator_meta() -> str:
    """`<meta name="generator" content="ml-workload-profiler VERSION">`: the marker that lets a later run replace the page."""
    from importlib import metadata

    try:
        version = metadata.version(GENERATOR)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f'{HTML_MARKER} {version}">'


def mark_html(page: str) -> str:
    """The page with generator_meta() at the start of its <head> (after its charset, if declared there), once: where
    is_profiler_html looks for it."""
    if is_profiler_html(page[:MARKER_WINDOW].encode("utf-8", "backslashreplace")):
        return page
    for anchor in ('<meta charset="utf-8">', "<head>"):
        at = page.find(anchor, 0, MARKER_WINDOW)
        if at >= 0:
            at += len(anchor)
            return page[:at] + "\n" + generator_meta() + page[at:]
    return generator_meta() + "\n" + page


def _marked_html(head: bytes) -> bool:
    return _MARKED.match(head[:MARKER_WINDOW]) is not None


def _compare_table(data: bytes) -> bool:
    """`data` parses as compare's table: a non-empty JSON list of objects, each with compare's columns (and no others)."""
    if json_depth(data) > 3:
        return False
    try:
        value = json.loads(data.decode("utf-8"))
    except ValueError:
        return False
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(r, dict) and COMPARE_COLUMNS <= r.keys() <= COMPARE_COLUMNS | COMPARE_OPTIONAL for r in value)
    )


is_profiler_html = Recogniser(_marked_html, MARKER_WINDOW, f"no '{HTML_MARKER} ...\">' at the start of its <head>, the marker of the pages the profiler writes")
"""A page the profiler wrote: its generator meta at the start of its <head> (see _MARKED)."""
is_profiler_compare_json = Recogniser(_compare_table, MAX_JSON_BYTES, "not a table compare wrote (a JSON list of records with compare's columns)")
"""compare's table (at most MAX_JSON_BYTES), parsed: a list of records with compare's columns."""


def check_output_file(path: str | Path, ours: Recogniser, flag: str = "-o", page: str | Path | None = None) -> None:
    """UserError (one line, naming `flag` and the path) unless `path` may be written: it does not exist and its
    directory exists and is writable, or it is a regular file (never a symlink, wherever it points) that is the
    profiler's: `ours` recognises its first `ours.window` bytes; or, with `flag` "" (the default output of a command,
    no -o), its directory is a run directory (holds run.json); or it is an empty JSON list and `page`, the page written
    beside it, is a marked page. A directory, FIFO, device or socket is refused. Reads without blocking or following a
    link."""
    path = Path(path)
    where = f"{flag} {path}" if flag else str(path)
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        _check_directory_of(path, where)
        return
    except (OSError, ValueError) as exc:
        raise UserError(f"{where}: cannot be checked ({getattr(exc, 'strerror', None) or exc}); {ANOTHER}") from None
    if not stat.S_ISREG(mode):
        raise UserError(f"{where}: is a {file_kind(mode)}; the profiler replaces only files it wrote: remove it or {ANOTHER}")
    if not (flag == "" and _in_run_directory(path)):
        head = _read_head(path, where, ours.window)
        if not (ours(head) or (page is not None and head.strip() == b"[]" and _is_marked_page(Path(page)))):
            raise UserError(f"{where}: exists and was not written by the profiler ({ours.what}); it is never replaced: remove it or {ANOTHER}")
    _check_directory_of(path, where)


ANOTHER = "give another output file with -o"


def _in_run_directory(path: Path) -> bool:
    """The directory of `path` is a run directory: it holds run.json as a regular file."""
    try:
        return stat.S_ISREG(os.lstat(path.absolute().parent / RUN_JSON).st_mode)
    except (OSError, ValueError):
        return False


def _is_marked_page(page: Path) -> bool:
    """`page` is a regular file (not a symlink) whose head carries the generator marker; False when it cannot be read."""
    try:
        return _marked_html(_read_head(page, str(page), MARKER_WINDOW))
    except UserError:
        return False


def _check_directory_of(path: Path, where: str) -> None:
    """UserError unless the directory `path` would be written into exists, is a directory and is writable."""
    parent = path.absolute().parent
    if not parent.is_dir():
        missing = "does not exist" if not parent.exists() else "is not a directory"
        raise UserError(f"{where}: its directory {parent} {missing}; create it or {ANOTHER}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{where}: its directory {parent} is not writable; {ANOTHER}")


def _read_head(path: Path, where: str, window: int) -> bytes:
    """The first `window` bytes of a regular file: opened without following a link or blocking (a FIFO swapped in
    after the check is refused, not waited on). UserError when it cannot be read or is not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise UserError(f"{where}: exists and cannot be read ({exc.strerror or exc}); {ANOTHER}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UserError(f"{where}: is a {file_kind(mode)}; the profiler replaces only files it wrote: remove it or {ANOTHER}")
        chunks, got = [], 0
        while got < window:
            chunk = os.read(fd, min(window - got, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise UserError(f"{where}: exists and cannot be read ({exc.strerror or exc}); {ANOTHER}") from None
    finally:
        os.close(fd)
