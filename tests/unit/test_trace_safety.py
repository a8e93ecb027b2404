"""A trace from anywhere is read safely: inf, NaN, overflowing numbers and dates, deep JSON, odd paths (too long,
a FIFO, a device, a directory), a file above the byte bound, token counts and hash ids beyond their bounds are each
one line naming the file and line, from `validate` and `run` alike; and an error never quotes the file beyond a short
value of a recognised column (an unknown header is described, not shown). Real files in the formats of
profiler/load/traces.py, read in-process through the CLI's entry point."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from profiler.errors import UserError
from profiler.load.traces import MAX_BLOCKS, MAX_TRACE_BYTES, forget_traces, read_trace
from tests.conftest import cli_in_process

AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
BURSTGPT = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
SECRET = "s3cr3t-Pa55w0rd-hash"


def azure(*rows: str) -> str:
    return AZURE + "".join(r + "\n" for r in rows)


def burstgpt(*stamps_and_tokens: tuple[str, str]) -> str:
    return BURSTGPT + "".join(f"{t},ChatGPT,{n},5,10,Conversation log\n" for t, n in stamps_and_tokens)


def mooncake(*objects: dict | str) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objects)


def row(t: float | str = 0, i: object = 10, o: object = 5, **more) -> dict:
    return {"timestamp": t, "input_length": i, "output_length": o, **more}


def cli(tmp_path: Path, trace: str, command: str = "validate", **load) -> tuple[int, list[str]]:
    """(exit status, stderr lines) of `command` on a toy_serve suite replaying `trace` (its first request only unless
    `load` says otherwise, so the run's time is never the problem)."""
    suite = tmp_path / "suite.yaml"
    data = {
        "name": "s",
        "measure": {"warmup_iters": 0, "min_iters": 1, "min_seconds": 0, "max_seconds": 5, "count_work": False, "trace_ops": False},
        "workloads": [{"name": "w", "type": "toy_serve", "load": {"pattern": "trace", "trace": trace, "requests": 1, **load}}],
    }
    suite.write_text(yaml.safe_dump(data))
    argv = ["validate", str(suite)] if command == "validate" else ["run", str(suite), "-o", str(tmp_path / "runs"), "--device", "cpu"]
    code, _, err = cli_in_process(*argv)
    return code, [line for line in err.splitlines() if line.strip()]


def write(tmp_path: Path, text: str, name: str = "trace") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def assert_refused(tmp_path: Path, trace: str, *needles: str, command: str = "validate") -> str:
    code, lines = cli(tmp_path, trace, command)
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'suite.yaml'}:"), (code, lines)
    assert "workloads[0].load.trace" in lines[0] and "Traceback" not in lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not (tmp_path / "runs").exists()
    return lines[0]


def assert_accepted(tmp_path: Path, trace: str) -> None:
    code, lines = cli(tmp_path, trace)
    assert code == 0 and not lines, (code, lines)


# (name, a trace just beyond a bound or malformed, needles of its one line, the same trace within the bound)
CASES = [
    ("azure tokens inf", azure("2023-11-16 18:15:46.6805900,inf,5"), ("line 2", "ContextTokens", "finite"), azure("2023-11-16 18:15:46.6805900,7,5")),
    ("azure tokens 1e400", azure("2023-11-16 18:15:46,1e400,5"), ("line 2", "ContextTokens"), None),
    ("azure tokens NaN", azure("2023-11-16 18:15:46,5,NaN"), ("line 2", "GeneratedTokens", "not a number"), None),
    ("azure tokens 2^63-1", azure("2023-11-16 18:15:46,9223372036854775807,5"), ("line 2", "above 10,000,000"), None),
    ("azure tokens 2^70", azure("2023-11-16 18:15:46,1180591620717411303424,5"), ("line 2", "above 10,000,000"), None),
    ("azure tokens 1e7+1", azure("2023-11-16 18:15:46,10000001,5"), ("line 2", "above 10,000,000"), azure("2023-11-16 18:15:46,10000000,5")),
    ("azure year 9999", azure("2023-11-16 18:15:46,7,5", "9999-12-31 23:59:59,7,5"), ("line 3", "outside 1677-09-22 to 2262-04-11"), None),
    ("azure year 1", azure("0001-01-01 00:00:00,7,5", "2023-11-16 18:15:46,7,5"), ("line 2", "outside 1677-09-22"), None),
    ("azure 2262-04-12", azure("2262-04-12 00:00:00,7,5"), ("line 2", "outside"), azure("2262-04-10 00:00:00,7,5", "2262-04-10 00:00:01,7,5")),
    ("azure 1677-09-21", azure("1677-09-21 00:00:00,7,5"), ("line 2", "outside"), azure("1677-09-23 00:00:00,7,5")),
    (
        "azure 11 years",
        azure("2020-01-01 00:00:00,7,5", "2031-01-02 00:00:00,7,5"),
        ("line 3", "more than 10 years"),
        azure("2020-01-01 00:00:00,7,5", "2029-12-01 00:00:00,7,5"),
    ),
    ("burstgpt inf", burstgpt(("0", "7"), ("inf", "7")), ("line 3", "cannot parse Timestamp", "finite"), None),
    ("burstgpt 1e400", burstgpt(("1e400", "7")), ("line 2", "cannot parse Timestamp"), None),
    ("burstgpt 1e300", burstgpt(("0", "7"), ("1e300", "7")), ("line 3", "more than 10 years"), burstgpt(("0", "7"), ("3e8", "7"))),
    ("burstgpt 2^63-1", burstgpt(("0", "7"), ("9223372036854775807", "7")), ("line 3", "more than 10 years"), None),
    ("burstgpt tokens -1", burstgpt(("0", "-1")), ("line 2", "Request tokens", "whole number"), burstgpt(("0", "1"), ("1", "0"))),
    ("mooncake NaN", mooncake(row(), row("NaN")), ("line 2", "timestamp", "finite"), None),
    ("mooncake Infinity tokens", mooncake('{"timestamp": 0, "input_length": Infinity, "output_length": 5}'), ("line 1", "input_length", "finite"), None),
    ("mooncake 1e400", mooncake('{"timestamp": 1e400, "input_length": 1, "output_length": 5}'), ("line 1", "timestamp"), None),
    ("mooncake ts 2^70", mooncake(row(), row(2**70)), ("line 2", "more than 10 years"), mooncake(row(), row(3e11))),
    ("mooncake ts 2^2000", mooncake(row(), row(2**2000)), ("line 2", "timestamp"), None),
    ("mooncake 5000 digits", mooncake(row(), '{"timestamp": 1' + "0" * 5000 + ', "input_length": 1, "output_length": 1}'), ("line 2", "too long"), None),
    ("mooncake tokens 2^70", mooncake(row(i=2**70)), ("line 1", "input_length", "above 10,000,000"), mooncake(row(i=10_000_000))),
    ("mooncake tokens 1.5", mooncake(row(o=1.5)), ("line 1", "output_length", "whole number"), mooncake(row(o=2.0))),
    ("mooncake tokens true", mooncake(row(i=True)), ("line 1", "input_length", "true/false"), None),
    ("hash id 2^63", mooncake(row(hash_ids=[0, 2**63])), ("line 1", "hash_ids", "64-bit"), mooncake(row(hash_ids=[-(2**63), 2**63 - 1]))),
    ("hash id -2^63-1", mooncake(row(hash_ids=[-(2**63) - 1])), ("line 1", "hash_ids", "64-bit"), None),
    (
        "hash ids too many",
        mooncake(row(hash_ids=list(range(MAX_BLOCKS + 1)))),
        ("line 1", "hash_ids", "blocks"),
        mooncake(row(hash_ids=list(range(MAX_BLOCKS)))),
    ),
    ("hash id a float", mooncake(row(hash_ids=[1.5])), ("line 1", "hash_ids"), None),
    (
        "deep JSON",
        mooncake(row(), '{"timestamp": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        ("line 2", "nested too deeply"),
        mooncake(row(), row(1, x=[[[[1]]]])),
    ),
]


@pytest.mark.parametrize(("name", "bad", "needles", "good"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_value_is_one_line_naming_file_and_line_and_its_bound_is_read(tmp_path, name, bad, needles, good):
    trace = write(tmp_path, bad)
    assert_refused(tmp_path, trace, trace, *needles)
    if good is not None:
        assert_accepted(tmp_path, write(tmp_path, good))


def test_run_refuses_the_same_traces_before_anything_runs(tmp_path):
    for _, bad, needles, _ in (CASES[0], CASES[6], CASES[-1]):
        trace = write(tmp_path, bad)
        assert_refused(tmp_path, trace, *needles, command="run")


def test_paths_that_are_not_a_trace_file_are_one_line(tmp_path):
    too_long = str(tmp_path / ("x" * 300))
    line = assert_refused(tmp_path, too_long, "too long")
    assert len(line) < 1200  # the path is shortened around its middle
    assert_refused(tmp_path, str(tmp_path / "a" / ("y" * 5000)), "too long")
    assert_refused(tmp_path, "/dev/zero", "/dev/zero", "character device, not a regular file")
    assert_refused(tmp_path, str(tmp_path), "is a directory")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert_refused(tmp_path, str(fifo), "a FIFO")  # refused without opening it: opening a FIFO would wait for a writer
    assert_refused(tmp_path, str(tmp_path / "nul\0name"), "NUL")
    assert_refused(tmp_path, str(tmp_path / "missing.csv"), "no such trace file")
    link = tmp_path / "zero.csv"
    link.symlink_to("/dev/zero")
    assert_refused(tmp_path, str(link), "character device")


def test_a_trace_above_the_byte_bound_is_refused_without_being_read(tmp_path):
    sparse = tmp_path / "huge.csv"
    with open(sparse, "wb") as f:
        f.truncate(MAX_TRACE_BYTES + 1)  # a sparse file: nothing on disk, nothing read
    assert_refused(tmp_path, str(sparse), "2,147,483,649 bytes, over the 2 GiB limit (2,147,483,648 bytes)")
    text = azure("2023-11-16 18:15:46,7,5")
    path = write(tmp_path, text)
    assert len(read_trace(path, max_bytes=len(text))) == 1
    forget_traces()
    with pytest.raises(UserError, match="over the"):
        read_trace(path, max_bytes=len(text) - 1)


def test_a_file_longer_than_its_stat_says_is_refused_after_bound_plus_one_bytes():
    """/proc/self/status says 0 bytes and holds more: a file that grew after its size was checked is read only to
    max_bytes + 1 bytes, then refused."""
    with pytest.raises(UserError, match="more than 10 bytes"):
        read_trace("/proc/self/status", max_bytes=10)


def test_an_unknown_header_is_described_never_quoted(tmp_path):
    line = assert_refused(tmp_path, write(tmp_path, f"root:$6${SECRET}:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n"), "1 comma-separated field")
    assert SECRET not in line and "$6$" not in line and ":::" not in line
    line = assert_refused(tmp_path, write(tmp_path, f"TIMESTAMP,ContextTokens,{SECRET}\n2023-11-16 18:15:46,7,5\n"), "3 comma-separated fields")
    assert SECRET not in line and "lacks Azure's column 'GeneratedTokens'" in line
    line = assert_refused(tmp_path, write(tmp_path, f'["{SECRET}"]\n'), "not a known trace header")
    assert SECRET not in line


def test_other_errors_never_quote_a_field_of_the_file(tmp_path):
    for text, needle in [
        (azure(f"2023-11-16 18:15:46,7,5,{SECRET}"), "more fields than the header"),
        (azure("2023-11-16 18:15:46,7,5", f"2023-11-16 18:15:47,7,5,{SECRET},x"), "line 3 has 5 fields, the header 3"),
        (azure(f'2023-11-16 18:15:46,"{SECRET}'), "never closed"),
        (mooncake(row(SECRET)), "a string"),
        (mooncake(row(i=SECRET)), "a string"),
        (mooncake(row(hash_ids=SECRET)), "hash_ids"),
        (mooncake({"token": SECRET}), "missing 'timestamp'"),
        (mooncake(f'{{"timestamp": 1, {SECRET}}}'), "malformed JSON"),
    ]:
        line = assert_refused(tmp_path, write(tmp_path, text), needle)
        assert SECRET not in line, line
    (tmp_path / "binary").write_bytes(b"\xff\xfe" + SECRET.encode())
    assert SECRET not in assert_refused(tmp_path, str(tmp_path / "binary"), "not UTF-8")
    for text, needle in [
        (azure(f"2023-11-16 18:15:46,{SECRET},5"), "ContextTokens is text of 20 characters, not a number"),
        (azure(f"{SECRET},7,5"), "cannot parse TIMESTAMP (text of 20 characters)"),
        (burstgpt((SECRET, "7")), "cannot parse Timestamp (text of 20 characters)"),
        (azure("9999-01-01 00:00:00,7,5"), "TIMESTAMP in year 9999 is outside"),
    ]:
        line = assert_refused(tmp_path, write(tmp_path, text), needle)
        assert SECRET not in line, line


def test_a_trace_rewritten_in_place_is_parsed_again_not_served_from_the_kept_table(tmp_path):
    path = write(tmp_path, azure("2023-11-16 18:15:46,7,5"))
    first = read_trace(path)
    first.loc[0, "input_tokens"] = 99  # a caller's change does not reach the kept table
    assert read_trace(path)["input_tokens"].tolist() == [7]
    write(tmp_path, azure("2023-11-16 18:15:46,8,5"))  # the same size, at once: the same inode and likely the same mtime
    assert read_trace(path)["input_tokens"].tolist() == [8]
    forget_traces()
