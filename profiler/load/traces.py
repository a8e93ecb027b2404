"""Read production LLM-serving traces into one table, whatever format they were released in.

Load tests are most honest when they replay the arrivals and request sizes a real service saw, and
the public traces each come in their own format. This module turns any of them into the same
table so that the load generator never needs to know where a trace came from:

- Azure LLM inference traces (Splitwise, ISCA'24; DynamoLLM 2024): CSV with header exactly
  ``TIMESTAMP,ContextTokens,GeneratedTokens``. The 2023 files have naive timestamps with seven
  fractional digits (``2023-11-16 18:15:46.6805900``); the 2024 files are time-zone aware
  (``2024-05-10 00:00:00.009930+00:00``) and rows on a whole second have no fraction
  (``2024-05-10 00:00:01+00:00``). Naive timestamps are read as UTC.
- BurstGPT (arXiv 2401.17644): CSV with ``Timestamp`` (seconds from the first day's midnight),
  ``Session ID``, ``Elapsed time``, ``Model``, ``Request tokens``, ``Response tokens``,
  ``Total tokens``, ``Log Type``; older files lack ``Session ID`` and ``Elapsed time``. Failed
  requests have 0 response tokens; they are kept (``output_tokens == 0`` marks them).
- Mooncake (FAST'25): JSONL, one object per line with ``timestamp`` (ms), ``input_length``,
  ``output_length`` and ``hash_ids`` (ids of the prompt's 512-token prefix blocks).

The format is detected from the file's content (its header or first line), never its extension.
Bad input raises `UserError` with one line naming the file, the line and what to do.

Bounds (a trace can come from anywhere): the path must name a regular file (not a directory, FIFO or
device) of at most 2 GiB, read once with at most that many bytes plus one; token counts are whole
numbers 0 to 10,000,000 (`MAX_TOKENS`, above any model's context); timestamps are finite and a
request arrives within 10 years of the first (Azure dates also within pandas' nanosecond range,
1677-09-22 to 2262-04-11); Mooncake `hash_ids` are int64s, at most one per 512 tokens of the longest
prompt. An error quotes no more of the file than a short value of a recognised column: an unknown
header is described by its number of fields and the columns it lacks, never shown.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from profiler.errors import UserError, one_line
from profiler.files import UnreadableFile, read_bounded

from ..loadconfig import MAX_TOKENS

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
BURSTGPT_COLUMNS = ("Timestamp", "Session ID", "Elapsed time", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")
BURSTGPT_OLD_COLUMNS = ("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")
MOONCAKE_KEYS = ("timestamp", "input_length", "output_length", "hash_ids")
COLUMNS = ("arrival_s", "input_tokens", "output_tokens", "prefix_blocks")

KNOWN_HEADERS = (
    f"Azure CSV '{','.join(AZURE_COLUMNS)}', BurstGPT CSV '{','.join(BURSTGPT_COLUMNS)}' (older files without 'Session ID,Elapsed time'), "
    f"or Mooncake JSONL with one {{{', '.join(repr(k) for k in MOONCAKE_KEYS)}}} object per line"
)

MAX_TRACE_BYTES = 2 * 1024**3
"""The largest trace read (2 GiB, about 45 million Azure rows); a larger one is refused before it is read: cut it."""
MAX_SPAN_S = 10 * 365.25 * 86_400
"""A request arrives at most 10 years after the first: further is a wrong timestamp or wrong units (no run replays it)."""
BLOCK_TOKENS = 512
MAX_BLOCKS = MAX_TOKENS // BLOCK_TOKENS + 1
"""Mooncake hash_ids per line: one per 512-token block of the longest prompt (MAX_TOKENS)."""
INT64 = (-(2**63), 2**63 - 1)
AZURE_RANGE = (pd.Timestamp("1677-09-22", tz="UTC"), pd.Timestamp("2262-04-11", tz="UTC"))
"""Azure dates pandas holds in nanoseconds (its datetime64[ns] range is 1677-09-21 00:12 to 2262-04-11 23:47)."""

_CACHE: OrderedDict[tuple[object, ...], pd.DataFrame] = OrderedDict()
_CACHE_SIZE = 4


def read_trace(path: str | Path, max_bytes: int = MAX_TRACE_BYTES) -> pd.DataFrame:
    """Read an Azure, BurstGPT or Mooncake trace file.

    Returns one row per request, in file order, with columns:
    `arrival_s` (float, seconds since the trace's first request, so the first row is 0.0),
    `input_tokens` (int, prompt tokens), `output_tokens` (int, generated tokens; 0 for BurstGPT's
    failed requests) and `prefix_blocks` (list of int ids of 512-token prompt prefix blocks for
    Mooncake, None for the other formats). `df.attrs["format"]` is "azure", "burstgpt" or "mooncake";
    `df.attrs["path"]` is the file read. max_bytes: the largest file read (bytes).

    The last few tables parsed are kept by the path and a hash of the bytes read, so validation's second
    look at an unchanged trace reads it but does not parse it again; `forget_traces()` drops them.

    Raises `UserError` (one line naming the file and, where it applies, the line) for a missing file,
    a path that is too long or not a regular file, a file above max_bytes, an empty or non-UTF-8 file,
    an unknown header, an unparseable or out-of-range timestamp, timestamps going backwards, token
    counts that are not whole numbers 0..MAX_TOKENS, hash ids that are not int64s, malformed or too
    deeply nested JSON lines.
    """
    name = os.fspath(path)
    shown = _shown_path(name)
    data = _read_file(name, shown, max_bytes)
    key = (shown, hashlib.blake2b(data, digest_size=16).digest())
    cached = _CACHE.get(key)
    if cached is None:
        cached = _parse(shown, _decode(data, shown))
        _CACHE[key] = cached
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    out = _copy(cached)
    out.attrs["path"] = name
    return out


def forget_traces() -> None:
    """Drop the tables `read_trace` keeps (after validation, so a run does not hold them)."""
    _CACHE.clear()


def _copy(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.attrs.update(df.attrs)
    return out


def _shown_path(name: str) -> str:
    """The path as an error shows it: control characters escaped, a long one shortened around its middle."""
    text = one_line(name)
    return text if len(text) <= 200 else f"{text[:100]}...{text[-80:]} ({len(name)} characters)"


def _read_file(name: str, shown: str, max_bytes: int) -> bytes:
    """The bytes of the trace file, read with profiler/files.py's bounds (a regular file of at most max_bytes, a FIFO
    or a device never opened); UserError naming what is wrong otherwise."""
    try:
        return read_bounded(name, max_bytes)
    except FileNotFoundError:
        raise UserError(f"{shown}: no such trace file; give the path of an Azure or BurstGPT CSV or a Mooncake JSONL file") from None
    except UnreadableFile as exc:
        raise UserError(f"{shown}: {exc}; give the path of a trace file (an Azure or BurstGPT CSV or a Mooncake JSONL file; cut a large one)") from None


def _decode(data: bytes, shown: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{shown}: not UTF-8 text (byte {exc.start + 1} is not UTF-8); give a UTF-8 CSV or JSONL trace") from None


def _parse(shown: str, text: str) -> pd.DataFrame:
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise UserError(f"{shown}: the trace file is empty; expected {KNOWN_HEADERS}")
    head = lines[first].strip()
    if head.startswith("{"):
        df, fmt = _read_mooncake(shown, lines), "mooncake"
    else:
        header = tuple(c.strip() for c in head.split(","))
        if header == AZURE_COLUMNS:
            df, fmt = _read_azure(shown, text, first), "azure"
        elif header in (BURSTGPT_COLUMNS, BURSTGPT_OLD_COLUMNS):
            df, fmt = _read_burstgpt(shown, text, first), "burstgpt"
        else:
            raise UserError(f"{shown}: line {first + 1}: {_unknown_header(header)}; expected {KNOWN_HEADERS}")
    if df.empty:
        raise UserError(f"{shown}: the trace has a header but no requests; add at least one request row")
    df.attrs["format"] = fmt
    return df


def _unknown_header(header: tuple[str, ...]) -> str:
    """What is wrong with a first line that is no known header, without quoting it (the file may be anything,
    /etc/shadow included): its number of fields and the columns of the nearest format that it lacks."""
    fields = set(header)
    formats = {"Azure": AZURE_COLUMNS, "BurstGPT": BURSTGPT_COLUMNS, "older BurstGPT": BURSTGPT_OLD_COLUMNS}
    nearest, columns = max(formats.items(), key=lambda item: len(fields & set(item[1])))
    described = f"the first line is not a known trace header ({len(header)} comma-separated field{'s' if len(header) != 1 else ''}"
    if not fields & set(columns):
        return described + ", none of them a column of a known trace)"
    missing = [c for c in columns if c not in fields]
    extra = len([c for c in header if c not in columns])
    if not missing and not extra:
        return described + f"; {nearest}'s columns in another order)"
    if not missing:
        return described + f"; {nearest}'s columns and {extra} other field{'s' if extra != 1 else ''})"
    return described + f"; it lacks {nearest}'s column{'s' if len(missing) != 1 else ''} {', '.join(repr(c) for c in missing)})"


def _read_csv(shown: str, text: str, header_index: int) -> tuple[pd.DataFrame, list[int]]:
    """All fields as strings ('' where a row is short), and each row's 1-based line number in the file (blank rows dropped)."""
    try:
        raw = pd.read_csv(io.StringIO(text), skiprows=header_index, dtype=str, keep_default_na=False, skip_blank_lines=False, skipinitialspace=True)
    except (pd.errors.ParserError, ValueError, OverflowError) as exc:
        raise UserError(f"{shown}: malformed CSV ({_csv_problem(str(exc), header_index)}); give every row the header's number of fields") from None
    if not isinstance(raw.index, pd.RangeIndex):  # pandas took the first column as an index: the first row has a field more
        raise UserError(f"{shown}: malformed CSV (line {header_index + 2} has more fields than the header); give every row the header's number of fields")
    raw.columns = [c.strip() for c in raw.columns]
    raw = raw.fillna("")
    numbers = [header_index + 2 + i for i in range(len(raw))]
    keep = [not all(str(v).strip() == "" for v in row) for row in raw.itertuples(index=False)]
    raw = raw.loc[pd.Series(keep, index=raw.index, dtype=bool)].reset_index(drop=True)
    return raw, [n for n, k in zip(numbers, keep, strict=True) if k]


def _csv_problem(message: str, header_index: int) -> str:
    """pandas' parser error restated from its numbers only (never the file's text)."""
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if fields:
        expected, line, saw = fields.groups()
        return f"line {line} has {saw} fields, the header {expected}"
    quote = re.search(r"EOF inside string starting at row (\d+)", message)
    if quote:
        return f"a quoted field from line {header_index + int(quote.group(1)) + 1} is never closed"
    return "the CSV parser could not split it into rows and fields"


def _unparsed(raw: str) -> str:
    """A field that did not parse, described without quoting it (a trace may be any file: its text is never echoed)."""
    text = raw.strip()
    if text.lower() in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity"):
        return f"'{text}'"  # a word of its own, needed to say what is wrong
    return f"text of {len(text)} character{'s' if len(text) != 1 else ''}"


def _token_problem(value: float, raw: str | None = None) -> str | None:
    """Why `value` (a parsed number; NaN when `raw` did not parse) is not a token count, or None when it is one."""
    if math.isnan(value) and raw is not None and not raw.strip():
        return "is empty"
    if math.isnan(value) and raw is not None:
        return f"is {_unparsed(raw)}, not a number"
    if not math.isfinite(value):
        return f"{value} is not a finite number"
    if value < 0 or value != math.floor(value):
        return f"{value:g} is not a whole number >= 0"
    if value > MAX_TOKENS:
        return f"{value:.4g} is above {MAX_TOKENS:,} tokens, the longest context of any model"
    return None


def _tokens(shown: str, values: pd.Series, lines: list[int], column: str) -> pd.Series:
    """Token counts as int64; one that is not a whole number 0..MAX_TOKENS is an error on its line."""
    numbers = cast(pd.Series, pd.to_numeric(values, errors="coerce")).astype("float64").to_numpy()
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(numbers) | (numbers < 0) | (numbers != np.floor(numbers)) | (numbers > MAX_TOKENS)
    if bad.any():
        i = int(bad.argmax())
        problem = _token_problem(float(numbers[i]), str(values.iloc[i]))
        raise UserError(f"{shown}: line {lines[i]}: {column} {problem}; token counts must be whole numbers 0 to {MAX_TOKENS:,}")
    return pd.Series(numbers.astype("int64"))


def _check_span(shown: str, arrival: np.ndarray, lines: list[int], unit: str) -> None:
    """Every arrival finite and within MAX_SPAN_S of the first (seconds); else an error on the first line beyond."""
    with np.errstate(invalid="ignore"):
        far = ~np.isfinite(arrival) | (np.abs(arrival) > MAX_SPAN_S)
    if far.any():
        i = int(far.argmax())
        raise UserError(
            f"{shown}: line {lines[i]}: timestamp is {arrival[i]:.4g} s from the first request's, more than 10 years; a timestamp is wrong or not in {unit}"
        )


def _check_order(shown: str, arrival: pd.Series, lines: list[int]) -> None:
    back = arrival.diff() < 0
    if back.any():
        i = int(back.to_numpy().argmax())
        raise UserError(
            f"{shown}: line {lines[i]}: timestamp goes backwards ({arrival.iloc[i]:.6f} s after the first request, the line before is at "
            f"{arrival.iloc[i - 1]:.6f} s); sort the trace by timestamp"
        )


def _table(arrival: pd.Series, inputs: pd.Series, outputs: pd.Series, prefixes: list | None = None) -> pd.DataFrame:
    n = len(arrival)
    return pd.DataFrame(
        {
            "arrival_s": arrival.astype("float64").to_numpy(),
            "input_tokens": inputs.astype("int64").to_numpy(),
            "output_tokens": outputs.astype("int64").to_numpy(),
            "prefix_blocks": pd.Series(prefixes if prefixes is not None else [None] * n, dtype=object).to_numpy(),
        },
        columns=list(COLUMNS),
    )


def _azure_stamps(shown: str, texts: pd.Series, lines: list[int]) -> pd.Series:
    """TIMESTAMP as UTC datetimes in nanoseconds; an unparseable date or one outside pandas' nanosecond range is an error on its line."""
    stamps = pd.to_datetime(texts, format="mixed", utc=True, errors="coerce")
    bad = stamps.isna().to_numpy()
    if not bad.any():
        bad = ((stamps < AZURE_RANGE[0]) | (stamps > AZURE_RANGE[1])).to_numpy()
    if bad.any():
        i = int(bad.argmax())
        try:
            year = pd.Timestamp(texts.iloc[i]).year
        except (ValueError, OverflowError):
            year = None
        if year is not None:
            raise UserError(
                f"{shown}: line {lines[i]}: TIMESTAMP in year {year} is outside 1677-09-22 to 2262-04-11, the dates a trace may have (nanoseconds in int64)"
            )
        raise UserError(
            f"{shown}: line {lines[i]}: cannot parse TIMESTAMP ({_unparsed(texts.iloc[i])}); use a date and time such as '2023-11-16 18:15:46.6805900' "
            "or '2024-05-10 00:00:00.009930+00:00'"
        )
    return stamps.astype("datetime64[ns, UTC]")


def _read_azure(shown: str, text: str, header_index: int) -> pd.DataFrame:
    raw, lines = _read_csv(shown, text, header_index)
    stamps = _azure_stamps(shown, raw["TIMESTAMP"].str.strip(), lines)
    if len(stamps):
        micro = stamps.dt.as_unit("us")  # a difference in microseconds cannot overflow across the whole range
        _check_span(shown, (micro - micro.iloc[0]).dt.total_seconds().to_numpy(), lines, "dates")
    arrival = (stamps - stamps.iloc[0]).dt.total_seconds() if len(stamps) else pd.Series([], dtype="float64")
    _check_order(shown, arrival, lines)
    inputs = _tokens(shown, cast(pd.Series, raw["ContextTokens"]), lines, "ContextTokens")
    outputs = _tokens(shown, cast(pd.Series, raw["GeneratedTokens"]), lines, "GeneratedTokens")
    return _table(arrival, inputs, outputs)


def _read_burstgpt(shown: str, text: str, header_index: int) -> pd.DataFrame:
    raw, lines = _read_csv(shown, text, header_index)
    seconds = cast(pd.Series, pd.to_numeric(raw["Timestamp"], errors="coerce")).astype("float64")
    bad = ~np.isfinite(seconds.to_numpy())
    if bad.any():
        i = int(bad.argmax())
        raise UserError(
            f"{shown}: line {lines[i]}: cannot parse Timestamp ({_unparsed(raw['Timestamp'].iloc[i])}); "
            "BurstGPT timestamps are seconds from the first day's midnight, such as '5.0' or '1234.5' (finite)"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        arrival = seconds - seconds.iloc[0] if len(seconds) else seconds
    _check_span(shown, arrival.to_numpy(), lines, "seconds")
    _check_order(shown, arrival, lines)
    inputs = _tokens(shown, cast(pd.Series, raw["Request tokens"]), lines, "Request tokens")
    outputs = _tokens(shown, cast(pd.Series, raw["Response tokens"]), lines, "Response tokens")
    return _table(arrival, inputs, outputs)


def _json_number(value: object) -> float | None:
    """A JSON number as a float; None for anything else (a bool, a string, null, a list) or an int beyond a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _json_kind(value: object) -> str:
    """What a JSON value is, in words (the value itself is not quoted)."""
    if value is None:
        return "null"
    return {bool: "true/false", str: "a string", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _mooncake_object(where: str, line: str) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: malformed JSON ({one_line(exc.msg)} at column {exc.colno}); write one JSON object per line") from None
    except RecursionError:
        raise UserError(f"{where}: JSON nested too deeply to read; a Mooncake line is one flat object") from None
    except ValueError:  # an integer of more than 4300 digits
        raise UserError(f"{where}: a JSON number too long to read; a Mooncake line holds plain numbers") from None
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected a JSON object with {', '.join(MOONCAKE_KEYS)}, found {_json_kind(obj)}; write one object per line")
    missing = [k for k in MOONCAKE_KEYS[:3] if k not in obj]
    if missing:
        raise UserError(f"{where}: missing {', '.join(repr(k) for k in missing)}; every Mooncake line needs timestamp (ms), input_length and output_length")
    return obj


def _mooncake_blocks(where: str, blocks: object) -> list[int] | None:
    if blocks is None:
        return None
    if not isinstance(blocks, list) or not all(isinstance(b, int) and not isinstance(b, bool) for b in blocks):
        raise UserError(f"{where}: hash_ids must be a list of integers (ids of 512-token prefix blocks); fix or drop the field")
    if len(blocks) > MAX_BLOCKS:
        raise UserError(f"{where}: hash_ids has {len(blocks):,} blocks, more than the {MAX_BLOCKS:,} of a {MAX_TOKENS:,}-token prompt; fix or drop the field")
    if any(not INT64[0] <= b <= INT64[1] for b in blocks):
        raise UserError(f"{where}: a hash_ids entry is outside the 64-bit integer range (-2^63 to 2^63-1); fix or drop the field")
    return list(blocks)


def _read_mooncake(shown: str, lines: list[str]) -> pd.DataFrame:
    stamps: list[float] = []
    inputs: list[int] = []
    outputs: list[int] = []
    prefixes: list[list[int] | None] = []
    numbers: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{shown}: line {number}"
        obj = _mooncake_object(where, line)
        stamp = _json_number(obj["timestamp"])
        if stamp is None or not math.isfinite(stamp):
            got = _json_kind(obj["timestamp"]) if stamp is None else f"{stamp}"
            raise UserError(f"{where}: cannot parse timestamp ({got}); Mooncake timestamps are milliseconds, a finite number")
        counts = []
        for key in ("input_length", "output_length"):
            value = _json_number(obj[key])
            problem = f"is {_json_kind(obj[key])}, not a number" if value is None else _token_problem(value)
            if problem:
                raise UserError(f"{where}: {key} {problem}; token counts must be whole numbers 0 to {MAX_TOKENS:,}")
            counts.append(int(obj[key]))
        prefixes.append(_mooncake_blocks(where, obj.get("hash_ids")))
        stamps.append(stamp)
        inputs.append(counts[0])
        outputs.append(counts[1])
        numbers.append(number)
    with np.errstate(over="ignore", invalid="ignore"):
        arrival = (pd.Series(stamps, dtype="float64") - (stamps[0] if stamps else 0.0)) / 1000.0
    _check_span(shown, arrival.to_numpy(), numbers, "milliseconds")
    _check_order(shown, arrival, numbers)
    return _table(arrival, pd.Series(inputs, dtype="int64"), pd.Series(outputs, dtype="int64"), prefixes)
