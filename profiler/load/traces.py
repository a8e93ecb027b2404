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
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pandas as pd

from profiler.errors import UserError, one_line

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
BURSTGPT_COLUMNS = ("Timestamp", "Session ID", "Elapsed time", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")
BURSTGPT_OLD_COLUMNS = ("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")
MOONCAKE_KEYS = ("timestamp", "input_length", "output_length", "hash_ids")
COLUMNS = ("arrival_s", "input_tokens", "output_tokens", "prefix_blocks")

KNOWN_HEADERS = (
    f"Azure CSV '{','.join(AZURE_COLUMNS)}', BurstGPT CSV '{','.join(BURSTGPT_COLUMNS)}' (older files without 'Session ID,Elapsed time'), "
    f"or Mooncake JSONL with one {{{', '.join(repr(k) for k in MOONCAKE_KEYS)}}} object per line"
)


def read_trace(path: str | Path) -> pd.DataFrame:
    """Read an Azure, BurstGPT or Mooncake trace file.

    Returns one row per request, in file order, with columns:
    `arrival_s` (float, seconds since the trace's first request, so the first row is 0.0),
    `input_tokens` (int, prompt tokens), `output_tokens` (int, generated tokens; 0 for BurstGPT's
    failed requests) and `prefix_blocks` (list of int ids of 512-token prompt prefix blocks for
    Mooncake, None for the other formats). `df.attrs["format"]` is "azure", "burstgpt" or "mooncake";
    `df.attrs["path"]` is the file read.

    Raises `UserError` (one line naming the file and, where it applies, the line) for a missing or
    empty file, an unknown header, an unparseable timestamp, timestamps going backwards, negative
    or non-integer token counts and malformed JSON lines.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such trace file; give the path of an Azure or BurstGPT CSV or a Mooncake JSONL file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the trace ({one_line(exc)}); give a UTF-8 text file") from None
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise UserError(f"{path}: the trace file is empty; expected {KNOWN_HEADERS}")
    head = lines[first].strip()
    if head.startswith("{"):
        df = _read_mooncake(path, lines)
        fmt = "mooncake"
    else:
        header = tuple(c.strip() for c in head.split(","))
        if header == AZURE_COLUMNS:
            df, fmt = _read_azure(path, text, first), "azure"
        elif header in (BURSTGPT_COLUMNS, BURSTGPT_OLD_COLUMNS):
            df, fmt = _read_burstgpt(path, text, first), "burstgpt"
        else:
            raise UserError(f"{path}: line {first + 1}: unknown trace header '{one_line(head[:200])}'; expected {KNOWN_HEADERS}")
    if df.empty:
        raise UserError(f"{path}: the trace has a header but no requests; add at least one request row")
    df.attrs["format"] = fmt
    df.attrs["path"] = str(path)
    return df


def _read_csv(path: Path, text: str, header_index: int) -> tuple[pd.DataFrame, list[int]]:
    """All fields as strings, and each row's 1-based line number in the file (blank rows dropped)."""
    try:
        raw = pd.read_csv(io.StringIO(text), skiprows=header_index, dtype=str, keep_default_na=False, skip_blank_lines=False, skipinitialspace=True)
    except pd.errors.ParserError as exc:
        raise UserError(f"{path}: malformed CSV ({one_line(str(exc).strip())}); give every row the header's number of fields") from None
    raw.columns = [c.strip() for c in raw.columns]
    numbers = [header_index + 2 + i for i in range(len(raw))]
    keep = [not all(str(v).strip() == "" for v in row) for row in raw.itertuples(index=False)]
    raw = raw.loc[pd.Series(keep, index=raw.index, dtype=bool)].reset_index(drop=True)
    return raw, [n for n, k in zip(numbers, keep, strict=True) if k]


def _tokens(path: Path, values: pd.Series, lines: list[int], column: str) -> pd.Series:
    """Token counts as int64; a negative, fractional or non-numeric one is an error on its line."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers < 0) | (numbers != numbers.round())
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise UserError(
            f"{path}: line {lines[i]}: {column} '{one_line(str(values.iloc[i])[:50])}' is not a token count; token counts must be whole numbers >= 0"
        )
    return numbers.astype("int64")


def _check_order(path: Path, arrival: pd.Series, lines: list[int]) -> None:
    back = arrival.diff() < 0
    if back.any():
        i = int(back.to_numpy().argmax())
        raise UserError(
            f"{path}: line {lines[i]}: timestamp goes backwards ({arrival.iloc[i]:.6f} s after the first request, the line before is at "
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


def _read_azure(path: Path, text: str, header_index: int) -> pd.DataFrame:
    raw, lines = _read_csv(path, text, header_index)
    stamps = pd.to_datetime(raw["TIMESTAMP"].str.strip(), format="mixed", utc=True, errors="coerce")
    if stamps.isna().any():
        i = int(stamps.isna().to_numpy().argmax())
        raise UserError(
            f"{path}: line {lines[i]}: cannot parse TIMESTAMP '{one_line(raw['TIMESTAMP'].iloc[i][:60])}'; "
            "use a date and time such as '2023-11-16 18:15:46.6805900' or '2024-05-10 00:00:00.009930+00:00'"
        )
    stamps = stamps.astype("datetime64[ns, UTC]")
    arrival = (stamps - stamps.iloc[0]).dt.total_seconds() if len(stamps) else pd.Series([], dtype="float64")
    _check_order(path, arrival, lines)
    inputs = _tokens(path, raw["ContextTokens"], lines, "ContextTokens")
    outputs = _tokens(path, raw["GeneratedTokens"], lines, "GeneratedTokens")
    return _table(arrival, inputs, outputs)


def _read_burstgpt(path: Path, text: str, header_index: int) -> pd.DataFrame:
    raw, lines = _read_csv(path, text, header_index)
    seconds = pd.to_numeric(raw["Timestamp"], errors="coerce")
    bad = seconds.isna() | seconds.abs().eq(math.inf)
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise UserError(
            f"{path}: line {lines[i]}: cannot parse Timestamp '{one_line(raw['Timestamp'].iloc[i][:60])}'; "
            "BurstGPT timestamps are seconds from the first day's midnight, such as '5.0' or '1234.5'"
        )
    arrival = seconds - seconds.iloc[0] if len(seconds) else seconds
    _check_order(path, arrival, lines)
    inputs = _tokens(path, raw["Request tokens"], lines, "Request tokens")
    outputs = _tokens(path, raw["Response tokens"], lines, "Response tokens")
    return _table(arrival, inputs, outputs)


def _read_mooncake(path: Path, lines: list[str]) -> pd.DataFrame:
    stamps: list[float] = []
    inputs: list[int] = []
    outputs: list[int] = []
    prefixes: list[list[int] | None] = []
    numbers: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: malformed JSON ({one_line(exc.msg)} at column {exc.colno}); write one JSON object per line") from None
        if not isinstance(obj, dict):
            raise UserError(f"{where}: expected a JSON object with {', '.join(MOONCAKE_KEYS)}; write one object per line")
        missing = [k for k in MOONCAKE_KEYS[:3] if k not in obj]
        if missing:
            raise UserError(f"{where}: missing {', '.join(repr(k) for k in missing)}; every Mooncake line needs timestamp (ms), input_length and output_length")
        stamp = obj["timestamp"]
        if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or not math.isfinite(stamp):
            raise UserError(f"{where}: cannot parse timestamp {one_line(json.dumps(stamp)[:60])}; Mooncake timestamps are milliseconds, a number")
        for key in ("input_length", "output_length"):
            value = obj[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0 or value != int(value):
                raise UserError(f"{where}: {key} {one_line(json.dumps(value)[:50])} is not a token count; token counts must be whole numbers >= 0")
        blocks = obj.get("hash_ids")
        if blocks is not None and not (isinstance(blocks, list) and all(isinstance(b, int) and not isinstance(b, bool) for b in blocks)):
            raise UserError(f"{where}: hash_ids must be a list of integers (ids of 512-token prefix blocks); fix or drop the field")
        stamps.append(float(stamp))
        inputs.append(int(obj["input_length"]))
        outputs.append(int(obj["output_length"]))
        prefixes.append(list(blocks) if blocks is not None else None)
        numbers.append(number)
    arrival = (pd.Series(stamps, dtype="float64") - (stamps[0] if stamps else 0.0)) / 1000.0
    _check_order(path, arrival, numbers)
    return _table(arrival, pd.Series(inputs, dtype="int64"), pd.Series(outputs, dtype="int64"), prefixes)
