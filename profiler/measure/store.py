"""The run directory on disk: layout, atomic writes, and tables streamed in parts.

Layout (see docs/architecture.md):
  runs/<stamp>-<suite>/config.resolved.yaml, env.json, run.json, report.html
  runs/<stamp>-<suite>/<workload>/spans.parquet, samples.parquet, summary.json, error.json

Every file is written under a temporary name and renamed, so a reader never sees half a file.
Spans and samples are streamed: rows are buffered and written as numbered part files
(`spans.part-00000.parquet`...), each complete on its own, so a crash loses at most the batch in
memory; when the workload ends the parts are merged into one `spans.parquet`.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SPANS = "spans"
SAMPLES = "samples"
REQUESTS = "requests"
"""requests.parquet of a workload under a load: one row per request (profiler/run/serve.py writes it)."""
ENGINE = "engine"
"""engine.parquet of a workload under a load: the engine's scheduler samples (running, waiting, KV bytes)."""
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # mkstemp makes 0600 files; results are meant to be shared


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
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


def read_json(path: str | Path) -> Any:
    """A JSON file of the run directory, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def atomic_write_table(path: str | Path, table: pa.Table) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
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


def new_run_dir(root: str | Path, suite_name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stamp}-{slugify(suite_name)}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


class PartWriter:
    """Buffer rows of one table and write them as numbered, complete parquet part files."""

    def __init__(self, directory: str | Path, name: str, max_rows: int = 8192, schema: pa.Schema | None = None) -> None:
        self.directory = Path(directory)
        self.schema = schema
        self.name = name
        self.max_rows = max_rows
        self.rows: list[dict[str, Any]] = []
        self.parts_written = len(list(self.directory.glob(f"{name}.part-*.parquet")))

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def extend(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)

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


def read_arrow(path: str | Path, columns: Any = None) -> pa.Table:
    """A parquet file as an arrow table; `columns` reads only those that exist (a compiled regex
    among them stands for every column whose name it matches)."""
    if columns is not None:
        names = pq.read_schema(path).names
        wanted = [c for c in columns if isinstance(c, str)]
        patterns = [c for c in columns if not isinstance(c, str)]
        columns = [c for c in wanted if c in names] + [n for n in names if n not in wanted and any(p.match(n) for p in patterns)]
    return pq.read_table(path, columns=columns)


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
    merged = concat_tables(tables)
    atomic_write_table(target, merged)
    for p in parts:
        p.unlink()
    return target
