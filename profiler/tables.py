"""The tables of a run directory, as their writers give them, and the one check every table read goes through.

A run directory may come from anywhere (copied between machines, edited, half-written), and the analysis and the
report index columns by name and rely on their types. So each table (spans, samples, requests, engine) is checked
once, when profiler/rundir.py reads it, against the columns and types its writer gives it (TABLES): a file without
the columns that make it that table (a foreign file) is left out; a column of the wrong type is converted where its
values allow, otherwise read as missing; rows missing a required value, rows whose times no run can give (TimeRule:
a span ending before it starts, a negative clock reading, a request longer than any run) and duplicated rows are left
out; each with one problem line naming the file. Readers downstream (characterize/, reports/) may rely on the types and
on every span and request lasting between 0 and MAX_SPAN_S.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as _pc

from .errors import shown
from .measure.store import ENGINE, REQUESTS, SAMPLES, SPANS

pc: Any = _pc
"""pyarrow.compute, whose kernels (pc.less, pc.sum, ...) are made at import: no type checker sees them."""


@dataclass(frozen=True)
class TableSpec:
    """The columns a table of the run directory has as its writer gives them.

    `required`: columns without which the file is not this table (a foreign file: left out whole); `not_null`: of
    those, the ones every row has a value in (a row without one is left out); `types`: the kind of every known column
    (int, number, bool, text, ints: a list of integers, value: any single value), which readers rely on; `keys`: what identifies a row (rows
    repeating a key are duplicates, left out). Any other column (a plugin's own span attribute) is kept as it is."""

    name: str
    required: tuple[str, ...]
    not_null: tuple[str, ...]
    types: dict[str, str]
    keys: tuple[str, ...]
    patterns: tuple[tuple[Any, str], ...] = ()
    fill: tuple[tuple[str, str | None], ...] = ()
    """Columns a file may lack that readers index, added empty: (name, what that means; None: nothing, the writer may
    leave it out)."""
    primary: str = ""
    """A not-null key column whose values are nearly unique in a real table (drop_duplicates)."""
    times: TimeRule | None = None
    """The rule a row's times must keep (None: no times checked)."""

    def kind_of(self, column: str) -> str | None:
        kind = self.types.get(column)
        if kind is None:
            kind = next((k for pattern, k in self.patterns if pattern.match(column)), None)
        return kind

    def check(self, table: pa.Table, path: Path, problems: list[str]) -> pa.Table | None:
        """`table` with its columns of the expected kinds and its incomplete rows left out (a problem line each);
        None when it lacks a required column."""
        table = table.replace_schema_metadata(None)  # pandas metadata (an index column, dtypes) is not the writer's
        table = table.drop_columns([c for c in table.column_names if c.startswith("__index_level_")])
        missing = [c for c in self.required if c not in table.column_names]
        if missing:
            article = "an" if self.name[0] in "aeiou" else "a"
            problems.append(f"{path}: not {article} {self.name} table (no column {', '.join(map(repr, missing))}); left out")
            return None
        for name in list(table.column_names):
            column = table[name]
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                column, escaped = _utf8(column)
                if escaped:
                    table = table.set_column(table.column_names.index(name), name, column)
                    problems.append(f"{path}: column {shown(name)!r}: {escaped:,} value(s) that are not UTF-8 text read with their bytes escaped")
            kind = self.kind_of(name)
            if kind is None:
                continue
            converted, done = _convert(column, kind)
            if converted is not column:
                table = table.set_column(table.column_names.index(name), name, converted)
            if done is not None:
                kind_ok = converted.type == column.type
                problems.append(f"{path}: column {shown(name)!r}" + ("" if kind_ok else f" is {column.type}, expected {KIND_WORDS[kind]}") + f": {done}")
        for name, why in self.fill:
            if name not in table.column_names:
                if why is not None:
                    problems.append(f"{path}: no column {name!r}; {why}")
                table = table.append_column(name, pa.nulls(table.num_rows, KIND_TYPES[self.types[name]]))
        return self._complete_rows(table, path, problems)

    def _complete_rows(self, table: pa.Table, path: Path, problems: list[str]) -> pa.Table:
        """`table` without the rows missing a value (null, or a float NaN) in a `not_null` column."""
        if not table.num_rows:
            return table
        valid = None
        for c in self.not_null:
            ok = pc.is_valid(table[c])
            if pa.types.is_floating(table[c].type):
                ok = pc.and_(ok, pc.invert(pc.is_nan(table[c])))
            valid = ok if valid is None else pc.and_(valid, ok)
        dropped = table.num_rows - (pc.sum(valid).as_py() or 0) if valid is not None else 0
        if dropped:
            problems.append(f"{path}: {dropped:,} row(s) without a value in {', '.join(self.not_null)} left out")
            table = table.filter(pc.fill_null(valid, False))
        return self._possible_times(table, path, problems)

    def _possible_times(self, table: pa.Table, path: Path, problems: list[str]) -> pa.Table:
        """`table` without the rows whose times break `times` (one problem line when there are any)."""
        if self.times is None or not table.num_rows:
            return table
        bad = self.times.impossible(table)
        if not bad.any():
            return table
        problems.append(f"{path}: {int(bad.sum()):,} row(s) with impossible times left out ({self.times.words})")
        return table.filter(pa.array(~bad))

    def drop_duplicates(self, table: pa.Table, where: Path, problems: list[str]) -> pa.Table:
        """`table` without the rows that repeat an earlier row's key (a problem line when there are any).

        Only rows sharing a value of `primary` (a timestamp or index, nearly unique in a real table) can be duplicates,
        so the full comparison runs on those alone: a million spans cost one sort."""
        keys = [c for c in self.keys if c in table.column_names]
        if self.primary not in table.column_names or table.num_rows < 2:
            return table
        primary = table[self.primary].to_numpy()
        ordered = np.sort(primary)
        repeated = ordered[1:][ordered[1:] == ordered[:-1]]
        if not len(repeated):
            return table
        rows = np.flatnonzero(np.isin(primary, repeated))
        sub = table.take(pa.array(rows)).select(keys)
        duplicated = pd.DataFrame({c: sub[c].to_numpy(zero_copy_only=False) for c in keys}).duplicated().to_numpy()
        if not duplicated.any():
            return table
        keep = np.ones(table.num_rows, dtype=bool)
        keep[rows[duplicated]] = False
        problems.append(f"{where}: {int(duplicated.sum()):,} duplicated row(s) (the same {', '.join(keys)} as an earlier row) left out")
        return table.filter(pa.array(keep))


MAX_SPAN_S = 2 * 86_400
"""The longest a span or a request of a run can last: measure.max_seconds <= 86,400 s plus hang_grace_s <= 3,600 s
(profiler/suite/config.py: past that the child is killed as hung), with room to spare: 2 days."""
MAX_SPAN_NS = MAX_SPAN_S * 10**9
CLOCK_SLACK_NS = 1_000_000
"""How far (1 ms) a request's token or finish time may lie outside its arrival..finished: the driver's arrival is a
scheduled send time rounded to the nanosecond, and an engine may stamp its times from another reading of the same
clock (workloads/llm_serve.py: perf_counter plus an offset); a damaged time is off by far more."""
_NEVER = "time.monotonic_ns is never negative"


@dataclass(frozen=True)
class TimeRule:
    """The times a row of a table must keep: `impossible(table)` marks (a boolean array) the rows that break it;
    `words` says what it is in a problem line."""

    impossible: Callable[[pa.Table], np.ndarray]
    words: str


def _ns(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(the int64 values of column `name`, 0 where missing; where it has a value)."""
    column = table[name]
    if not column.null_count:
        return column.to_numpy(), np.ones(len(column), dtype=bool)
    present = pc.is_valid(column).to_numpy(zero_copy_only=False)
    return pc.fill_null(column, 0).to_numpy(), present


def _impossible_spans(table: pa.Table) -> np.ndarray:
    """A span ending before it starts, starting at a negative time, or longer than MAX_SPAN_NS (in arrow, at C speed:
    a million spans cost milliseconds). The duration of a row that is neither (start >= 0, end >= start) cannot
    overflow; a row that is bad already may wrap, and is bad either way."""
    start, end = table["start_ns"], table["end_ns"]
    bad = pc.or_(pc.or_(pc.less(start, 0), pc.less(end, start)), pc.greater(pc.subtract(end, start), MAX_SPAN_NS))
    return pc.fill_null(bad, False).to_numpy(zero_copy_only=False)


def _impossible_requests(table: pa.Table) -> np.ndarray:
    """A request with a negative time, finished before it arrived or longer than MAX_SPAN_NS after, or a token before
    its arrival or after its finish (each by more than CLOCK_SLACK_NS); a missing time is not checked."""
    arrival, has_arrival = _ns(table, "arrival_ns")
    finished, has_finished = _ns(table, "finished_ns")
    bad = np.zeros(table.num_rows, dtype=bool)
    for name in ("arrival_ns", "sent_ns", "scheduled_ns", "finished_ns"):
        values, present = _ns(table, name)
        bad |= present & (values < 0)
    both = has_arrival & has_finished & ~bad
    with np.errstate(over="ignore"):
        bad |= both & ((finished < arrival - CLOCK_SLACK_NS) | (np.where(both, finished - arrival, 0) > MAX_SPAN_NS))
    tokens = table["token_ns"]
    if tokens.null_count < len(tokens):
        rows = pc.list_parent_indices(tokens).to_numpy()
        times = pc.list_flatten(tokens)
        present = pc.is_valid(times).to_numpy(zero_copy_only=False)
        times = pc.fill_null(times, 0).to_numpy().astype(np.int64, copy=False)
        early = present & ((times < 0) | (has_arrival[rows] & (times < arrival[rows] - CLOCK_SLACK_NS)))
        late = present & has_finished[rows] & (times > finished[rows] + CLOCK_SLACK_NS)
        bad[rows[early | late]] = True
    return bad


def _negative_t(table: pa.Table) -> np.ndarray:
    return pc.fill_null(pc.less(table["t_ns"], 0), False).to_numpy(zero_copy_only=False)


_LONGEST = "the child is stopped after measure.max_seconds (<= 86,400 s) plus hang_grace_s (<= 3,600 s)"
SPAN_TIMES = TimeRule(_impossible_spans, f"end_ns before start_ns, a negative time, or longer than 2 days: {_NEVER}, and {_LONGEST}")
REQUEST_TIMES = TimeRule(
    _impossible_requests,
    f"finished_ns before arrival_ns, a token time outside arrival_ns..finished_ns, a negative time, or finished more than 2 days after "
    f"arrival: {_NEVER}, and {_LONGEST}",
)
SAMPLE_TIMES = TimeRule(_negative_t, f"a negative t_ns: {_NEVER}")

KIND_WORDS = {"int": "integers", "number": "numbers", "bool": "true/false", "text": "text", "ints": "lists of integers", "value": "single values"}
_MEMORY_BYTES = re.compile(r"^memory_\w+_bytes$")

TABLES = {
    SPANS: TableSpec(
        "spans",
        required=("iteration", "warmup", "phase", "start_ns", "end_ns", "units"),
        not_null=("iteration", "warmup", "phase", "start_ns", "end_ns", "units"),
        types={
            "iteration": "int",
            "warmup": "bool",
            "phase": "text",
            "index": "int",
            "start_ns": "int",
            "end_ns": "int",
            "units": "number",
            "device_s": "number",
            "error": "text",
            "repeat": "int",
            "sequences": "number",
            "position": "number",
            "state_bytes": "number",
            "deadline_ns": "int",
            "scheduled_ns": "int",
            "staleness_s": "number",
            "obs_ns": "int",
            "finished": "number",
            "tokens": "number",
            "dropped": "number",
            "request_id": "value",
            "condition": "text",
        },
        keys=("repeat", "iteration", "index", "phase", "start_ns", "end_ns"),
        patterns=((_MEMORY_BYTES, "number"),),
        fill=(("error", "read as no span raised"),),
        primary="start_ns",
        times=SPAN_TIMES,
    ),
    SAMPLES: TableSpec(
        "samples",
        required=("t_ns",),
        not_null=("t_ns",),
        types={"t_ns": "int", "repeat": "int"},
        keys=("repeat", "t_ns"),
        patterns=((re.compile(r"^(?!t_ns$).*"), "number"),),
        primary="t_ns",
        times=SAMPLE_TIMES,
    ),
    REQUESTS: TableSpec(
        "requests",
        required=("index", "measured", "status", "arrival_ns", "sent_ns", "scheduled_ns", "token_ns", "finished_ns"),
        not_null=("index", "measured", "status"),
        types={
            "index": "int",
            "measured": "bool",
            "status": "text",
            "arrival_ns": "int",
            "sent_ns": "int",
            "scheduled_ns": "int",
            "finished_ns": "int",
            "token_ns": "ints",
            "input_tokens": "int",
            "output_tokens_requested": "int",
            "scheduled_send_s": "number",
            "error": "text",
            "slot_wait_s": "number",
            "input_tokens_by": "text",
            "repeat": "int",
        },
        keys=("repeat", "index"),
        primary="index",
        times=REQUEST_TIMES,
    ),
    ENGINE: TableSpec(
        "engine",
        required=("t_ns",),
        not_null=("t_ns",),
        types={
            "t_ns": "int",
            "running": "number",
            "waiting": "number",
            "kv_bytes_used": "number",
            "kv_bytes_total": "number",
            "kv_usage": "number",
            "preempted": "number",
            "repeat": "int",
        },
        keys=("repeat", "t_ns"),
        primary="t_ns",
        times=SAMPLE_TIMES,
        fill=tuple((c, None) for c in ("running", "waiting", "kv_bytes_used", "kv_bytes_total", "kv_usage", "preempted")),  # None where not exposed
    ),
}
"""The tables of a workload's directory, as their writers give them: spans (measure/spans.py, run/serve.py), samples
(measure/sampler.py SAMPLE_SCHEMA: every column but t_ns a number), requests and engine (run/serve.py; an engine's
stats are None, or absent, where it exposes none: plugin.py Engine.engine_stats)."""


def _convert(column: pa.ChunkedArray, kind: str) -> tuple[pa.ChunkedArray, str | None]:
    """(`column` as `kind`, what was done to it in words, None when nothing was: it already is that kind). A float
    column's NaN stays (pandas reads it as missing, like null); an infinity, which no writer gives, is read as missing."""
    t = column.type
    if kind == "value":
        if not pa.types.is_nested(t):
            return column, None
        return pa.chunked_array([pa.nulls(len(column), pa.int64())]), f"{len(column) - column.null_count:,} value(s) that are not single values read as missing"
    if kind == "ints":
        if (pa.types.is_list(t) or pa.types.is_large_list(t)) and (pa.types.is_integer(t.value_type) or pa.types.is_null(t.value_type)):
            return column, None
        return _retyped(column, pa.list_(pa.int64()), kind)
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(column), KIND_TYPES[kind])]), None
    if kind == "text" and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return column, None
    if kind == "bool" and pa.types.is_boolean(t):
        return column, None
    if (kind == "int" and pa.types.is_integer(t)) or (kind == "number" and (pa.types.is_integer(t) or pa.types.is_boolean(t))):
        return column, None
    if pa.types.is_floating(t) and kind in ("int", "number"):
        infinite = pc.sum(pc.is_inf(column)).as_py() or 0
        finite = pc.if_else(pc.is_inf(column), pa.scalar(None, t), column) if infinite else column
        done = f"{infinite:,} infinite value(s) read as missing" if infinite else None
        if kind == "number":
            return finite, done
        nan = pc.sum(pc.is_nan(finite)).as_py() or 0
        whole = pc.if_else(pc.is_nan(finite), pa.scalar(None, t), finite) if nan else finite
        cast = pc.cast(whole, pa.int64(), safe=False)
        return cast, f"read as integers{f' ({infinite + nan:,} not finite: missing)' if infinite + nan else ''}"
    return _retyped(column, KIND_TYPES[kind], kind)


def _utf8(column: pa.ChunkedArray) -> tuple[pa.ChunkedArray, int]:
    """(`column`, a text column, with every value that is not valid UTF-8 decoded with its bytes escaped (`\\xff`), how
    many were). Parquet stores text as bytes a damaged file may hold anything in, and such a value cannot become a
    Python string (a traceback wherever it is read); a valid chunk is checked once, at C speed, and kept as it is."""
    chunks, escaped = [], 0
    for chunk in column.chunks:
        try:
            chunk.validate(full=True)
            chunks.append(chunk)
            continue
        except pa.ArrowInvalid:
            pass
        binary = pa.large_binary() if pa.types.is_large_string(chunk.type) else pa.binary()
        values = []
        for raw in chunk.view(binary).to_pylist():
            if raw is None:
                values.append(None)
                continue
            try:
                values.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                values.append(raw.decode("utf-8", "backslashreplace"))
                escaped += 1
        chunks.append(pa.array(values, type=chunk.type))
    return (pa.chunked_array(chunks, type=column.type), escaped) if escaped else (column, 0)


def _retyped(column: pa.ChunkedArray, target: pa.DataType, kind: str) -> tuple[pa.ChunkedArray, str]:
    converted, lost = _try_cast(column, target)
    return converted, f"{lost:,} value(s) that are not {KIND_WORDS[kind]} read as missing" if lost else f"read as {KIND_WORDS[kind]}"


KIND_TYPES = {"int": pa.int64(), "number": pa.float64(), "bool": pa.bool_(), "text": pa.string(), "ints": pa.list_(pa.int64())}


def _try_cast(column: pa.ChunkedArray, target: pa.DataType) -> tuple[pa.ChunkedArray, int]:
    """`column` cast to `target`; where that fails as a whole, value by value (a value that cannot be is null)."""
    try:
        return pc.cast(column, target), 0
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    values = []
    lost = 0
    for v in column.to_pylist():
        converted = _cast_value(v, target)
        lost += v is not None and converted is None
        values.append(converted)
    return pa.chunked_array([pa.array(values, type=target)]), lost


def _cast_value(v: Any, target: pa.DataType) -> Any:
    try:
        if pa.types.is_list(target):
            return [int(x) for x in v] if isinstance(v, (list, tuple)) and all(isinstance(x, int) and not isinstance(x, bool) for x in v) else None
        if pa.types.is_string(target):
            return v if isinstance(v, str) else None if isinstance(v, (list, dict, bytes)) else str(v)
        if pa.types.is_boolean(target):
            return v if isinstance(v, bool) else {"true": True, "false": False, "1": True, "0": False}.get(str(v).strip().lower())
        number = float(v) if not isinstance(v, (list, dict, bytes, bool)) else None
        if number is None or not np.isfinite(number):
            return None
        return int(number) if pa.types.is_integer(target) else number
    except (TypeError, ValueError, OverflowError):
        return None
