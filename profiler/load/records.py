"""The records of a load run, typed: what an engine says of a request, and what the load driver keeps of it.

Why: an engine's `collect()` is the plugin boundary (profiler/plugin.py: Engine), so what it returns is plain dicts
written by anyone. The load driver (profiler/run/serve.py) validates each one once, as it arrives, into a frozen
`EngineRecord`; what it cannot take becomes a line of the run's `bad_records`, never an exception. Each request of
the schedule is one mutable `RequestRecord` from its scheduling to its end: one row of requests.parquet and of
requests.journal, with a status from a fixed set. Those rows are read back as tables (profiler/tables.py checks
them, profiler/characterize/serving.py reads them), so their columns and parquet types are fixed here
(`request_table`), and an old run directory reads as it always did.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from numbers import Integral
from typing import Any, Literal, cast, get_args

from ..errors import shown
from .arrivals import Request

REQUEST_RECORD_VERSION = 2
"""The schema of a RequestRecord row (requests.parquet and requests.journal): the fields of `RequestRecord`, in its
order, with the parquet types of `request_table`. Version 1: index, measured, input_tokens, output_tokens_requested,
scheduled_send_s, arrival_ns, sent_ns, scheduled_ns, token_ns, finished_ns, status, error, slot_wait_s. Version 2 adds
input_tokens_by (older rows read it as None: the requested length, as the engine was given it). A change to them raises
it, with profiler/tables.py's `requests` spec and a reading of the older rows."""

EndStatus = Literal["finished", "failed"]
RequestStatus = Literal["not_sent", "sent", "finished", "failed", "timed_out", "lost", "interrupted"]
ENDED: tuple[EndStatus, ...] = get_args(EndStatus)
REQUEST_STATUSES: tuple[RequestStatus, ...] = get_args(RequestStatus)
"""not_sent: never handed to the engine; sent: handed, not ended (only while the load runs); finished, failed: as the
engine said; timed_out: not ended by measure.max_seconds (cancelled); lost: not ended when the engine or the driver
failed; interrupted: not ended when Ctrl-C or SIGTERM stopped the load."""


class BadRecord(ValueError):
    """An engine's record that names no request (not a dict, or no integer index); its text is a bad_records line."""


@dataclass(frozen=True, slots=True)
class EngineRecord:
    """One request's end as an engine reported it, validated (`parse`). Times: time.monotonic_ns integers.

    `token_ns`: every output token's time, in the engine's order. `input_tokens`: the prompt's tokens as the engine
    knows them (None: as requested), `input_tokens_by`: how it knows them, in a word (None: not said). `problems`: what
    the engine returned that could not be taken, each in words ("status 'done' (an engine returns ...)"); with any,
    `status` is "failed", `error` says so and the fields at fault hold their empty value (None, no tokens).
    """

    index: int
    status: EndStatus
    error: str | None = None
    scheduled_ns: int | None = None
    token_ns: tuple[int, ...] = ()
    finished_ns: int | None = None
    input_tokens: int | None = None
    input_tokens_by: str | None = None
    problems: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: object) -> EngineRecord:
        """The record of one dict from `Engine.collect`; keys beyond the contract's are ignored. Raises BadRecord when
        `raw` is not a dict or its `index` is not an integer."""
        if not isinstance(raw, dict):
            raise BadRecord(f"a record that is a {type(raw).__name__}, not a dict")
        index = _integer(raw.get("index"))
        if index is None:
            raise BadRecord(f"a record for request {shown(repr(raw.get('index')))}, which was never sent" if "index" in raw else "a record without an index")
        taken: dict[str, Any] = {}
        bad: list[tuple[str, object, str]] = []
        for name, (read, expected) in FIELDS.items():
            try:
                taken[name] = read(raw.get(name))
            except (TypeError, ValueError):
                bad.append((name, raw.get(name), expected))
        if not bad:
            return cls(index=index, **taken)
        return cls(index=index, **_failed(taken, bad))


def _failed(taken: dict[str, Any], bad: list[tuple[str, object, str]]) -> dict[str, Any]:
    """The fields of a record with fields at fault: those taken, the others empty, status failed, the error naming
    what the engine returned."""
    said = "; ".join(f"{name} {shown(repr(value))}" for name, value, _ in bad)
    problems = tuple(f"{name} {shown(repr(value))} ({expected})" for name, value, expected in bad)
    return {**EMPTY, **taken, "status": "failed", "error": f"the engine returned {said}", "problems": problems}


EMPTY: dict[str, Any] = {"scheduled_ns": None, "token_ns": (), "finished_ns": None, "input_tokens": None, "input_tokens_by": None}
"""The value of a field at fault."""


def _integer(value: object) -> int | None:
    """An int (numpy's too, never a bool), else None."""
    return int(value) if isinstance(value, Integral) and not isinstance(value, bool) else None


def _time(value: object) -> int:
    """A time in ns: an integer, or a finite float rounded to the nanosecond. Raises ValueError for anything else."""
    if (integer := _integer(value)) is not None:
        return integer
    if isinstance(value, float) and math.isfinite(value):
        return round(value)
    raise ValueError(value)


def _status(value: object) -> EndStatus:
    if value in ENDED:
        return cast(EndStatus, value)
    raise ValueError(value)


def _error(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(value)


def _optional_time(value: object) -> int | None:
    return None if value is None else _time(value)


def _optional_count(value: object) -> int | None:
    """None, or a count of at least 1 (an int, never a bool). Raises ValueError for anything else."""
    if value is None:
        return None
    if (integer := _integer(value)) is not None and integer >= 1:
        return integer
    raise ValueError(value)


def _optional_word(value: object) -> str | None:
    """None, or a short word (at most 40 characters). Raises ValueError for anything else."""
    if value is None or (isinstance(value, str) and 0 < len(value) <= 40):
        return value
    raise ValueError(value)


def _times(value: object) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise TypeError(value)
    return tuple(_time(t) for t in value)


FIELDS = {
    "status": (_status, "an engine returns 'finished' or 'failed'"),
    "error": (_error, "text or None"),
    "scheduled_ns": (_optional_time, "a time.monotonic_ns integer or None"),
    "token_ns": (_times, "a list of time.monotonic_ns integers"),
    "finished_ns": (_optional_time, "a time.monotonic_ns integer or None"),
    "input_tokens": (_optional_count, "a count of at least 1 or None"),
    "input_tokens_by": (_optional_word, "a word of at most 40 characters or None"),
}
"""The fields of an engine's record beside `index`: how each is read, and what it must be (said in a bad_records line)."""


@dataclass(slots=True)
class RequestRecord:
    """One request of the schedule as the driver saw it: one row of requests.parquet (REQUEST_RECORD_VERSION).

    Times: `*_ns` time.monotonic_ns, None until they happen; `scheduled_send_s` seconds from the load's start;
    `token_ns` None until the request ends, then every token's time (for one that timed out, the tokens the engine had
    delivered when the run stopped, where it says: `cut_off`); `slot_wait_s` (closed loop) the wait for a free
    slot before it was sent. `input_tokens`: the requested prompt length until the engine says how long the prompt it
    sent was (`end`); `input_tokens_by`: how the engine knew that count (an endpoint: server_usage, tokenizer,
    tokenize_route, or unknown: the requested length, approximate; None: the engine did not say, as an in-process
    engine that feeds the requested number of token ids).
    """

    index: int
    measured: bool
    input_tokens: int
    output_tokens_requested: int
    scheduled_send_s: float
    arrival_ns: int | None = None
    sent_ns: int | None = None
    scheduled_ns: int | None = None
    token_ns: list[int] | None = None
    finished_ns: int | None = None
    status: RequestStatus = "not_sent"
    error: str | None = None
    slot_wait_s: float | None = None
    input_tokens_by: str | None = None

    @classmethod
    def of(cls, request: Request) -> RequestRecord:
        """The record of a scheduled request, not sent yet."""
        return cls(request.index, request.measured, request.input_tokens, request.output_tokens, request.send_s)

    def sent(self, sent_ns: int, arrival_ns: int) -> None:
        """Handed to the engine at `sent_ns`; it arrived (as a user would see it) at `arrival_ns`."""
        self.sent_ns, self.arrival_ns, self.status = sent_ns, arrival_ns, "sent"

    def end(self, got: EngineRecord) -> None:
        """Ended as the engine reported; without a finish time it finished with its last token."""
        tokens = list(got.token_ns)
        self.status, self.error, self.scheduled_ns, self.token_ns = got.status, got.error, got.scheduled_ns, tokens
        self.finished_ns = got.finished_ns or (tokens[-1] if tokens else None)
        if got.input_tokens is not None:
            self.input_tokens = got.input_tokens
        self.input_tokens_by = got.input_tokens_by

    def cut_off(self, raw: object) -> str | None:
        """What an engine had of this request when the run stopped waiting for it (`Engine.progress`: a dict with
        `scheduled_ns` and `token_ns` so far): kept on the record, whose status stays as marked (timed_out). Returns a
        bad_records line when `raw` is not such a dict (nothing is taken then); None when taken or when `raw` is None."""
        if raw is None:
            return None
        try:
            if not isinstance(raw, dict):
                raise TypeError(raw)
            scheduled, tokens = _optional_time(raw.get("scheduled_ns")), _times(raw.get("token_ns"))
        except (TypeError, ValueError):
            return f"request {self.index}: progress {shown(repr(raw))[:200]} (an engine's progress is a dict of scheduled_ns and token_ns)"
        self.scheduled_ns, self.token_ns = scheduled, list(tokens)
        return None

    def row(self) -> dict[str, Any]:
        """The record as a row of plain values (builtins only: the journal's unpickler builds nothing else)."""
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RequestRecord:
        """The record of a row `row()` gave. Raises TypeError for other keys, ValueError for a status not in the set."""
        record = cls(**row)
        if record.status not in REQUEST_STATUSES:
            raise ValueError(f"request {record.index}: status {shown(repr(record.status))} is not a request's")
        return record


COLUMNS = tuple(f.name for f in fields(RequestRecord))
"""requests.parquet's columns, in order."""


def request_table(records: list[RequestRecord]) -> Any:
    """requests.parquet's table (a pyarrow.Table): one row per record, in the given order, the columns of COLUMNS.
    The times, tokens, error and slot wait have fixed types; the rest are inferred (int64, bool, double, string)."""
    import pyarrow as pa

    if not records:
        return pa.table({})
    types = {
        "token_ns": pa.list_(pa.int64()),
        "arrival_ns": pa.int64(),
        "sent_ns": pa.int64(),
        "scheduled_ns": pa.int64(),
        "finished_ns": pa.int64(),
        "error": pa.string(),
        "slot_wait_s": pa.float64(),
        "input_tokens_by": pa.string(),
    }
    return pa.table({name: pa.array([getattr(r, name) for r in records], type=types.get(name)) for name in COLUMNS})
