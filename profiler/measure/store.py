"""The run directory on disk: layout, atomic writes, and tables streamed in parts.

Layout (see docs/architecture.md):
  runs/<stamp>-<suite>/config.resolved.yaml, env.json, run.json, report.html
  runs/<stamp>-<suite>/<workload>/spans.parquet, samples.parquet, summary.json, error.json

Every file is written under a temporary name and renamed, so a reader never sees half a file.
A rename never goes over anything but a regular file (a directory, FIFO, device or symlink at the
target is refused), and an output file named by the user (`-o` of report and compare) is replaced
only when it is the profiler's own (measure/outputs.py: its generator marker).
Spans and samples are streamed: rows are buffered and written as numbered part files
(`spans.part-00000.parquet`...), each complete on its own, so a crash loses at most the batch in
memory; when the workload ends the parts are merged into one `spans.parquet`.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from ..files import UnreadableFile, file_kind, open_regular, read_bounded, size_text
from .journal import Journal, journal_path, unwritten_rows

SPANS = "spans"
SAMPLES = "samples"
REQUESTS = "requests"
"""requests.parquet of a workload under a load: one row per request (profiler/run/serve.py writes it)."""
ENGINE = "engine"
"""engine.parquet of a workload under a load: the engine's scheduler samples (running, waiting, KV bytes)."""
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # mkstemp makes 0600 files; results are meant to be shared


class NotReplaceableError(FileExistsError):
    """The target of an atomic write exists and is not a regular file (a directory, FIFO, device, socket or symlink):
    the rename would replace it, so nothing is written."""

    def __init__(self, path: str | Path, kind: str) -> None:
        super().__init__(errno.EEXIST, f"is a {kind}, not a regular file; the profiler never replaces one", str(path))


def refuse_non_file(path: str | Path) -> None:
    """NotReplaceableError when `path` exists and is anything but a regular file (not followed: a symlink is refused
    too, wherever it points); nothing when it is missing or a regular file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise NotReplaceableError(path, file_kind(mode))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` under a temporary name in its directory, then rename it over `path`. OSError when the
    directory cannot be written; NotReplaceableError (an OSError) when `path` is a directory, FIFO, device, socket or
    symlink (checked before writing and again just before the rename)."""
    path = Path(path)
    refuse_non_file(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        refuse_non_file(path)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


# ---------------------------------------------------------------- bounded reading
# A run directory may come from anywhere (copied between machines, downloaded from CI), so every file of it is read
# through these: only a regular file is opened (a FIFO would block forever, /dev/zero never ends), never more than a
# bound, and JSON no deeper than a bound (json.loads recurses: 100,000 levels are a RecursionError, or a crash where
# the recursion limit was raised). A refusal is an UnreadableFile whose text says what is wrong, without the path.

MAX_JSON_BYTES = 64 * 2**20
"""The largest JSON file of a run read: a workload's summary.json is tens of KiB (its statistics, fits and facts), and
run.json, env.json and sweeps.json of a suite of thousands of points stay under a few MiB."""
MAX_JSON_DEPTH = 128
"""The deepest nesting of a run's JSON read: a summary nests 5 levels around a suite's params, which the suite reader
bounds at 64 (profiler/suite/yaml_source.py MAX_DEPTH)."""
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""A JSON escape of a UTF-16 surrogate (\\ud800-\\udfff): the only way JSON text decodes to a lone surrogate."""
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class JsonRepairs(NamedTuple):
    """What load_json changed in a file's value so that it can be used and written again: non-finite numbers read as
    None, and lone surrogates read as their escape text."""

    nonfinite: int = 0
    surrogates: int = 0


def load_json(path: str | Path, limit: int = MAX_JSON_BYTES, finite: bool = True) -> tuple[Any, JsonRepairs]:
    """(the value, what was repaired: JsonRepairs) of a run's JSON file, read with read_bounded.

    NaN, Infinity and numbers beyond a float (1e400) are not JSON numbers a run's summaries hold (an unknown value is
    null): with `finite`, each becomes None and is counted, so the caller can say so. A lone surrogate (`"\\udc80"`, an
    escape JSON allows that is no character) cannot be written as UTF-8 to a page, a terminal or a file: every one, in
    a string or a key, becomes its escape text (the six characters `\\udc80`) and is counted. FileNotFoundError when
    missing; UnreadableFile (what is wrong, in words) when refused by a bound, not UTF-8, not JSON or nested deeper than
    MAX_JSON_DEPTH."""
    data = read_bounded(path, limit)
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise UnreadableFile(f"nested {depth:,} levels deep, over the {MAX_JSON_DEPTH}-level limit for a run's JSON")
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:
        raise UnreadableFile(f"not JSON ({str(exc)[:120]})") from None
    value, nonfinite = _finite(value) if finite else (value, 0)
    surrogates = 0
    if _SURROGATE_ESCAPE.search(data):
        value, surrogates = escape_surrogates(value)
    return value, JsonRepairs(nonfinite, surrogates)


def escape_surrogates(value: Any) -> tuple[Any, int]:
    """(`value` with every lone surrogate in its strings, dict keys included, replaced by its escape text `\\udc80`, how
    many there were). Nested lists and dicts are rebuilt iteratively (no recursion), the rest returned as they are."""
    if isinstance(value, str):
        return _escaped(value)
    if not isinstance(value, (dict, list)):
        return value, 0
    count = 0
    root: list[Any] = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        parent, key = stack.pop()
        node = parent[key]
        if isinstance(node, dict):
            rebuilt = {}
            for k, v in node.items():
                k2, n = _escaped(k) if isinstance(k, str) else (k, 0)
                count += n
                rebuilt[k2] = v
            parent[key] = rebuilt
            stack.extend((rebuilt, k) for k, v in rebuilt.items() if isinstance(v, (str, dict, list)))
        elif isinstance(node, list):
            stack.extend((node, i) for i, v in enumerate(node) if isinstance(v, (str, dict, list)))
        else:
            parent[key], n = _escaped(node)
            count += n
    return root[0], count


def _escaped(text: str) -> tuple[str, int]:
    if not _SURROGATE.search(text):
        return text, 0
    return _SURROGATE.subn(lambda m: f"\\u{ord(m.group()):04x}", text)


def json_depth(data: bytes) -> int:
    """How deep the arrays and objects of JSON text `data` nest (string contents skipped), without parsing it."""
    import numpy as np

    brackets = np.frombuffer(_JSON_STRING.sub(b"", data), dtype=np.uint8)
    steps = np.isin(brackets, (ord("["), ord("{"))).astype(np.int64) - np.isin(brackets, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def _finite(value: Any) -> tuple[Any, int]:
    """`value` with every non-finite float replaced by None (in place, iteratively), and how many there were."""
    if isinstance(value, float):
        return (value, 0) if math.isfinite(value) else (None, 1)
    count, stack = 0, [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, v in list(items):
            if isinstance(v, float) and not math.isfinite(v):
                node[key] = None
                count += 1
            elif isinstance(v, (dict, list)):
                stack.append(v)
    return value, count


def read_json(path: str | Path) -> Any:
    """A JSON file the run is writing (child.json, error.json, opmix.json: bounded, as load_json, numbers as written),
    or None when it is missing or unreadable."""
    try:
        return load_json(path, finite=False)[0]
    except (OSError, ValueError):
        return None


def atomic_write_table(path: str | Path, table: pa.Table) -> None:
    """A parquet file written as atomic_write_bytes writes (the same refusals)."""
    path = Path(path)
    refuse_non_file(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        refuse_non_file(path)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def slugify(name: str) -> str:
    """A safe directory name for any user string (the report shows the real name)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return slug[:80] or "workload"


RUN_DIRS_PER_SECOND = 1000
"""Run directories of one suite started within one second under one root (`-2`, `-3`... suffixes) before giving up."""


def new_run_dir(root: str | Path, suite_name: str) -> Path:
    """A new, empty run directory `ROOT/<stamp>-<suite>` (`-2`, `-3`... when that name is taken by anything, a dangling
    symlink included): made with exist_ok=False, so a run never reuses or merges into another directory. ROOT is made
    when missing (a symlink to a directory is used as that directory). OSError when ROOT is not a directory or cannot be
    written."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{slugify(suite_name)}"
    for n in range(1, RUN_DIRS_PER_SECOND + 1):
        path = root / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(errno.EEXIST, f"{RUN_DIRS_PER_SECOND} run directories named {base}[-N] already exist", str(root))


class PartWriter:
    """Buffer rows of one table and write them as numbered, complete parquet part files. With `journal`, each batch
    given to `extend` is also appended to a journal file at once (measure/journal.py), so that a process that dies
    loses none of it; `close` removes the journal once every row is in a part."""

    def __init__(self, directory: str | Path, name: str, max_rows: int = 8192, schema: pa.Schema | None = None, journal: bool = False) -> None:
        self.directory = Path(directory)
        self.schema = schema
        self.name = name
        self.max_rows = max_rows
        self.rows: list[dict[str, Any]] = []
        self.parts_written = len(list(self.directory.glob(f"{name}.part-*.parquet")))
        self.journal = Journal(journal_path(self.directory, name)) if journal else None

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def extend(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)
        if self.journal is not None and rows:
            self.journal.append(self.parts_written, rows)

    def close(self) -> None:
        """Flush, then remove the journal (it holds nothing a part does not)."""
        self.flush()
        if self.journal is not None:
            self.journal.close(remove=True)
            self.journal = None

    @property
    def full(self) -> bool:
        return len(self.rows) >= self.max_rows

    def flush(self) -> None:
        if not self.rows:
            return
        table = rows_to_table(self.rows, self.schema)
        atomic_write_table(self.directory / f"{self.name}.part-{self.parts_written:06d}.parquet", table)
        self.parts_written += 1
        self.rows = []
        if self.journal is not None:
            self.journal.empty()


def recover_journal(directory: Path, name: str, schema: pa.Schema | None = None) -> int:
    """After a child ended: the rows its journal of table `name` still holds (those no part holds) as one more part;
    the journal is removed. Returns the rows recovered (0 when there was no journal or it held nothing new)."""
    path = journal_path(Path(directory), name)
    if not path.exists():
        return 0
    parts = sorted(Path(directory).glob(f"{name}.part-*.parquet"))
    rows = unwritten_rows(path.read_bytes(), parts)
    if rows:
        writer = PartWriter(directory, name, schema=schema)
        writer.parts_written = max((int(p.name.split(".part-")[1].split(".")[0]) for p in parts), default=-1) + 1
        writer.extend(rows)
        writer.flush()
    path.unlink()
    return len(rows)


def rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema | None = None) -> pa.Table:
    """Rows with different keys (span attributes vary by phase) become one table of their union.

    `pa.Table.from_pylist` keeps only the first row's keys, which would drop attributes silently.
    A column whose values mix incompatible types (a user attribute that is sometimes a number,
    sometimes text) is stored as text rather than lost.
    """
    if schema is not None:
        return pa.Table.from_pylist(rows, schema=schema)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    columns = {}
    for key in keys:
        values = [row.get(key) for row in rows]
        try:
            columns[key] = pa.array(values, type=KNOWN_TYPES.get(key))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[key] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    return pa.Table.from_pydict(columns)


# Columns that may be entirely null in a batch (no CUDA, no error) keep their real type, so
# readers get float64 / string columns instead of Python objects.
KNOWN_TYPES = {"device_s": pa.float64(), "error": pa.string(), "position": pa.float64(), "state_bytes": pa.float64()}


TABLE_MEMORY_SHARE = 16
"""The share of memory (1/16) the columns read from one parquet file may decode to: see table_memory_budget."""
UNKNOWN_MEMORY = 16 * 2**30
"""The memory assumed where neither the machine nor its container says (a budget of 1 GiB)."""
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
"""Where a container's memory limit is (cgroup v2, v1): a limit below the machine's memory is the one that counts."""


def memory_available() -> int:
    """The memory this process may use, in bytes: the machine's, or its container's limit where that is lower
    (UNKNOWN_MEMORY where neither is known)."""
    known = []
    try:
        known.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        pass
    for path in CGROUP_LIMITS:
        try:
            text = read_bounded(path, 64).decode("ascii").strip()
        except (OSError, ValueError):
            continue
        if text.isdigit() and int(text) > 0:
            known.append(int(text))
    return min(known) if known else UNKNOWN_MEMORY


def table_memory_budget() -> int:
    """The most bytes the columns read from one parquet file of a run may decode to (as _check_decoded_size counts
    them): 1/TABLE_MEMORY_SHARE of memory_available().

    Why a sixteenth: reading a table costs more than its decoded values. Measured with `report` (on a machine of 23.5
    GiB) on spans.parquet files of 5.7M real spans (0.47 GiB decoded as counted here) and of 10M, 17.5M and 30M
    identical rows (zstd, 0.4 to 1.3 MB on disk; 0.82, 1.43 and 2.46 GiB decoded), the peak RSS was about 3.2x the
    decoded size on top of 0.2 GB (the arrow table, the checks, the pandas frame, the summary): 1.6, 2.8, 4.7 and 7.9
    GB. At a sixteenth one table takes a fifth of the memory, leaving room for another (`compare` reads two runs, a
    report several workloads) under half of it. A real 10-minute run (README: 5.7M spans) is read on a machine of 8 GiB.
    UnreadableFile names the rule."""
    return memory_available() // TABLE_MEMORY_SHARE


def read_arrow(path: str | Path, columns: Any = None) -> pa.Table:
    """A parquet file as an arrow table; `columns` reads only those that exist (a compiled regex
    among them stands for every column whose name it matches).

    Bounded like read_bounded: only a regular file is opened (non-blocking), and one whose file size, or whose columns
    once decoded (from its footer: the uncompressed sizes, at least 8 bytes per value), exceed table_memory_budget()
    is refused with UnreadableFile before anything is decoded. A truncated or foreign file raises pyarrow's error."""
    budget = table_memory_budget()
    with open_regular(path, budget) as f:
        parquet = pq.ParquetFile(pa.BufferReader(_read_into_arrow(f)))
        names = parquet.schema_arrow.names
        if columns is not None:
            wanted = [c for c in columns if isinstance(c, str)]
            patterns = [c for c in columns if not isinstance(c, str)]
            columns = [c for c in wanted if c in names] + [n for n in names if n not in wanted and any(p.match(n) for p in patterns)]
        _check_decoded_size(parquet.metadata, None if columns is None else set(columns), budget)
        return parquet.read(columns=columns)


def _read_into_arrow(f: io.FileIO) -> pa.Buffer:
    """The bytes of an open regular file (its size checked by open_regular) in one arrow buffer, read once: parquet
    read through a Python file object comes as a Python bytes object per column chunk, and a million spans' chunks
    leave tens of MiB in the C heap after they are freed. A file that shrank since its stat gives fewer bytes (then
    not parquet: pyarrow's error); one that grew gives no more than its checked size."""
    buffer = pa.allocate_buffer(os.fstat(f.fileno()).st_size)
    view, got = memoryview(buffer), 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    view.release()
    return buffer if got == buffer.size else buffer.slice(0, got)


def _check_decoded_size(meta: pq.FileMetaData, chosen: set[str] | None, budget: int) -> None:
    """UnreadableFile when the `chosen` columns (None: all) of a parquet file would decode to more than `budget` bytes
    (its footer's word)."""
    decoded = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            if chosen is None or chunk.path_in_schema in chosen or chunk.path_in_schema.split(".")[0] in chosen:
                decoded += max(chunk.total_uncompressed_size, 8 * chunk.num_values)
    if decoded > budget:
        raise UnreadableFile(
            f"its columns decode to {size_text(decoded)}, over the {size_text(budget)} a table may take here (1/{TABLE_MEMORY_SHARE} of the memory: "
            "reading, checking and summarising a table takes about 3x its decoded size); read it on a machine with more memory"
        )


def to_frame(table: pa.Table) -> Any:
    """An arrow table as a DataFrame without holding two copies: arrow buffers are released
    column by column as pandas takes them, and the allocator gives the rest back. The table
    must not be used afterwards."""
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    pa.default_memory_pool().release_unused()
    return frame


def read_frame(path: str | Path, columns: Any = None) -> Any:
    """A parquet file as a DataFrame (see read_arrow and to_frame)."""
    return to_frame(read_arrow(path, columns))


def concat_tables(tables: list[pa.Table]) -> pa.Table:
    """Tables of one stream (parts written ~1 s apart) as one. Columns missing from a part are
    null there, numbers widen (int -> float); a column whose type differs beyond that (a plugin
    attribute that is a number in one batch and text in another) becomes text in all parts,
    as rows_to_table does within a batch."""
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        types: dict[str, set[pa.DataType]] = {}
        for t in tables:
            for f in t.schema:
                if not pa.types.is_null(f.type):
                    types.setdefault(f.name, set()).add(f.type)
        clash = {name for name, ts in types.items() if len(ts) > 1 and not all(pa.types.is_integer(x) or pa.types.is_floating(x) for x in ts)}
        tables = [t.cast(pa.schema([pa.field(f.name, pa.string()) if f.name in clash else f for f in t.schema])) for t in tables]
        return pa.concat_tables(tables, promote_options="permissive")


def merge_parts(directory: str | Path, name: str) -> Path | None:
    """Merge `name.part-*.parquet` into `name.parquet` (atomic) and delete the parts.

    Parts that cannot be read (a crash mid-write cannot leave one, but a full disk can) are
    skipped; their names are returned in the error path by the caller reading the directory.
    """
    directory = Path(directory)
    parts = sorted(directory.glob(f"{name}.part-*.parquet"))
    target = directory / f"{name}.parquet"
    if not parts:
        return target if target.exists() else None
    tables = [pq.read_table(p) for p in parts]
    if target.exists():
        tables.insert(0, pq.read_table(target))
    atomic_write_table(target, concat_tables(tables))
    del tables
    pa.default_memory_pool().release_unused()  # the parts' memory back to the system, not held for the reads that follow
    for p in parts:
        p.unlink()
    return target
