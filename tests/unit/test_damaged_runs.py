"""Damaged run directories: `report` and `compare` name every damaged file and what is wrong with it, report the rest,
and never print a traceback; a directory that is no run at all is one `error:` line, exit 2.

A generator of damages (DAMAGES: JSON of the wrong type or depth, FIFOs, directories and 2 GB files in place of files,
parquet tables that are foreign, truncated, duplicated, NaN or of the wrong types, entries leading outside the run) is
applied to copies of the golden runs (tests/data/golden-run, and golden-run-v1 for the old schema). Damages to
different files share one copy, so a handful of reports cover them all; each must be named on a `warning:` line of
`report` (the file and the words of its problem), and those in files `compare` reads on a `note: run A|B:` line.
The bounds themselves (measure/store.py: read_bounded, load_json, read_arrow) are tested directly, without a report.
"""

from __future__ import annotations

import faulthandler
import html
import json
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from profiler.files import UnreadableFile, read_bounded
from profiler.measure import store
from profiler.measure.store import load_json, read_arrow
from profiler.rundir import load_run
from tests.conftest import ROOT, cli_in_process

GOLDEN = ROOT / "tests" / "data" / "golden-run"
GOLDEN_V1 = ROOT / "tests" / "data" / "golden-run-v1"
WORKLOADS = ("llm", "mamba", "diffusion", "vla", "script_alert_1_script", "broken")
DEEP = 100_000


HANG_S = 60
"""A generous bound on one test (each takes a second or two): a read that blocks (a FIFO opened without O_NONBLOCK)
fails the test instead of hanging CI."""


@pytest.fixture(autouse=True)
def hang_detector():
    """SIGALRM after HANG_S fails a test blocked in Python; one blocked inside a C call that retries on EINTR (pyarrow
    opening a FIFO) never sees it, so after twice that faulthandler prints every thread's stack and ends the process."""

    def hung(signum, frame):
        raise TimeoutError(f"the test ran past {HANG_S} s: a read of the damaged run blocked")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(HANG_S)
    faulthandler.dump_traceback_later(2 * HANG_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def cli(*argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of profiler.cli.main in this process (signal handlers restored after)."""
    code, out, err = cli_in_process(*argv)
    assert "Traceback" not in err + out
    return code, out, err


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for stale in ("report.html", "differences.csv", "differences.json"):
        (dst / stale).unlink(missing_ok=True)
    return dst


# ---------------------------------------------------------------- the damages


def write(text: str | bytes) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        path.unlink(missing_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())

    return apply


def fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def directory(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.mkdir()


def huge(path: Path) -> None:
    """A 2 GB file (sparse: it costs no disk), which a reader without a bound would try to hold."""
    with open(path, "ab") as f:
        f.truncate(2 * 2**30)


def edit_json(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return apply


def edit_table(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        change(pd.read_parquet(path)).to_parquet(path)

    return apply


def copy_from(name: str) -> Callable[[Path], None]:
    """The file replaced by another table of the same workload (a foreign file)."""

    def apply(path: Path) -> None:
        shutil.copyfile(path.parent / name, path)

    return apply


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-200])


def nan_every_third(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(df: pd.DataFrame) -> pd.DataFrame:
        values = df[column].astype(float) if df[column].dtype != object else df[column]
        return df.assign(**{column: values.where(df.index % 3 != 0)})

    return change


def every_third(column: str, value: Callable[[pd.DataFrame], object]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Every third row's `column` replaced by `value(df)` (a column or a constant): the other rows stay readable."""

    def change(df: pd.DataFrame) -> pd.DataFrame:
        replaced = pd.Series(value(df), index=df.index) if not isinstance(value(df), pd.Series) else value(df)
        return df.assign(**{column: df[column].where(pd.RangeIndex(len(df)) % 3 != 0, replaced)})

    return change


def not_utf8(path: Path, column: str) -> None:
    """Every third value of text column `column` replaced by bytes that are not UTF-8 (a parquet string is bytes)."""
    table = pq.read_table(path)
    raw = [b"\xff\xfe" if i % 3 == 0 else v.encode() for i, v in enumerate(table[column].to_pylist())]
    binary = pa.array(raw, pa.binary())
    table = table.set_column(table.column_names.index(column), column, pa.Array.from_buffers(pa.string(), len(binary), binary.buffers()))
    pq.write_table(table, path)


def nans(data: object) -> object:
    """Every number of a JSON value made NaN (written as the non-JSON constant NaN)."""
    if isinstance(data, dict):
        return {k: nans(v) for k, v in data.items()}
    if isinstance(data, list):
        return [nans(v) for v in data]
    return float("nan") if isinstance(data, float) else data


@dataclass(frozen=True)
class Damage:
    """One damaged file of a run: `file` relative to the run directory, what is done to it, and the words of its
    problem line (which also names the file; `named` when the line names another file, e.g. run.json's entry)."""

    id: str
    file: str
    apply: Callable[[Path], None]
    says: str
    named: str | None = None


JSON_SHAPES: list[tuple[str, Callable[[Path], None], str]] = [
    ("a list", write("[1, 2]"), "a JSON list where an object is expected"),
    ("a string", write('"text"'), "a JSON string where an object is expected"),
    ("null", write("null"), "a JSON null where an object is expected"),
    ("NaN", write("NaN"), "a JSON null where an object is expected"),
    ("deep", write("[" * DEEP + "]" * DEEP), "nested 100,000 levels deep"),
    ("deep objects", write('{"a": ' * DEEP + "1" + "}" * DEEP), "nested 100,000 levels deep"),
    ("a FIFO", fifo, "is a FIFO, not a regular file"),
    ("a directory", directory, "is a directory, not a regular file"),
    ("2 GB", huge, "over the 64 MiB limit"),
    ("not UTF-8", write(b"\xff\xfe{}"), "not UTF-8"),
    ("not JSON", write("{"), "not JSON"),
]
TABLE_DAMAGES: list[tuple[str, str, Callable[[Path], None], str]] = [
    ("spans without phase", "spans.parquet", edit_table(lambda df: df.drop(columns=["phase"])), "not a spans table (no column 'phase')"),
    ("spans that are samples", "spans.parquet", copy_from("samples.parquet"), "not a spans table"),
    ("spans duplicated", "spans.parquet", edit_table(lambda df: pd.concat([df, df])), "duplicated row(s)"),
    ("spans NaN rows", "spans.parquet", edit_table(nan_every_third("start_ns")), "row(s) without a value"),
    ("spans start_ns text", "spans.parquet", edit_table(lambda df: df.assign(start_ns=df["start_ns"].astype(str))), "column 'start_ns' is"),
    ("spans warmup words", "spans.parquet", edit_table(lambda df: df.assign(warmup=["maybe"] * len(df))), "not true/false read as missing"),
    ("spans phase lists", "spans.parquet", edit_table(lambda df: df.assign(phase=[[1, 2]] * len(df))), "column 'phase' is list"),
    ("spans truncated", "spans.parquet", truncate, "unreadable (ArrowInvalid"),
    ("spans FIFO", "spans.parquet", fifo, "is a FIFO, not a regular file"),
    (
        "spans ending before they start",
        "spans.parquet",
        edit_table(every_third("end_ns", lambda df: df["start_ns"] - 1)),
        "row(s) with impossible times left out",
    ),
    ("spans ending at 2**63-1", "spans.parquet", edit_table(every_third("end_ns", lambda df: 2**63 - 1)), "row(s) with impossible times left out"),
    ("spans starting at -2**62", "spans.parquet", edit_table(every_third("start_ns", lambda df: -(2**62))), "row(s) with impossible times left out"),
    ("spans not UTF-8", "spans.parquet", lambda p: not_utf8(p, "phase"), "value(s) that are not UTF-8 text read with their bytes escaped"),
    ("samples not numbers", "samples.parquet", edit_table(lambda df: df.assign(proc_cpu_percent="busy")), "not numbers read as missing"),
    ("samples directory", "samples.parquet", directory, "is a directory"),
    ("samples empty file", "samples.parquet", write(b""), "unreadable"),
    ("samples duplicated", "samples.parquet", edit_table(lambda df: pd.concat([df, df])), "duplicated row(s)"),
    ("samples before the clock began", "samples.parquet", edit_table(lambda df: df.assign(t_ns=-df["t_ns"])), "a negative t_ns"),
    ("requests that are spans", "requests.parquet", copy_from("spans.parquet"), "not a requests table"),
    ("engine that is spans", "engine.parquet", copy_from("spans.parquet"), "not an engine table"),
]
SUMMARY_DAMAGES: list[tuple[str, Callable[[Path], None], str]] = [
    ("numbers as text", edit_json(lambda d: d.update(seed="seven")), "seed: Input should be a valid integer"),
    ("phases a string", edit_json(lambda d: d.update(phases="x")), "read without 'phases'"),
    ("NaN numbers", lambda p: p.write_text(json.dumps(nans(json.loads(p.read_text())))), "not finite numbers (NaN, Infinity) read as missing"),
    ("repeats outside", edit_json(lambda d: d.update(repeats=[{"repeat": 1, "dir": "/etc", "status": "ok"}])), "repeats.0.dir: '/etc' is an absolute path"),
    ("repeats up", edit_json(lambda d: d.update(repeats=[{"repeat": 1, "dir": "../mamba", "status": "ok"}])), "steps up ('..')"),
]
RUN_FILES = ("env.json", "calibration.json", "sweeps.json")


def damages() -> list[Damage]:
    """Every damage, each to a file of its own where they share a copy (see batches)."""
    out = []
    for shape, apply, says in JSON_SHAPES:
        out.append(Damage(f"summary.json {shape}", "summary.json", apply, says))
        out.append(Damage(f"error.json {shape}", "error.json", apply, says))
        out.append(Damage(f"run file {shape}", "RUN", apply, says))
    out += [Damage(f"summary {name}", "summary.json", apply, says) for name, apply, says in SUMMARY_DAMAGES]
    out += [Damage(name, file, apply, says) for name, file, apply, says in TABLE_DAMAGES]
    out += [
        Damage("env.json of wrong types", "env.json", edit_json(lambda d: d.update(gpus="none", packages=[1])), "gpus is a JSON string, expected a list"),
        Damage("config alias bomb", "config.resolved.yaml", write("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + _bomb(7)), "aliases"),
        Damage("config a list", "config.resolved.yaml", write("- 1\n- 2\n"), "a YAML list where a mapping is expected"),
    ]
    return out


def _bomb(levels: int) -> str:
    names = "abcdefghij"
    return "".join(f"{names[i + 1]}: &{names[i + 1]} [{', '.join(['*' + names[i]] * 10)}]\n" for i in range(levels))


def batches(all_damages: list[Damage]) -> list[list[tuple[Damage, str]]]:
    """The damages placed on files of a copy, each file damaged once per copy: (damage, file relative to the run)."""
    placed: list[list[tuple[Damage, str]]] = []
    for d in all_damages:
        for batch in [*placed, []]:
            used = {f for _, f in batch}
            file = _free_file(d, used)
            if file is not None:
                if not batch:
                    placed.append(batch)
                batch.append((d, file))
                break
    return placed


def _free_file(d: Damage, used: set[str]) -> str | None:
    if d.file == "RUN":
        candidates = list(RUN_FILES)
    elif "/" in d.file or d.file in (*RUN_FILES, "config.resolved.yaml"):
        candidates = [d.file]
    else:
        candidates = [f"{w}/{d.file}" for w in WORKLOADS]
    return next((c for c in candidates if c not in used), None)


DAMAGES = damages()
BATCHES = batches(DAMAGES)


def apply_batch(run_dir: Path, batch: list[tuple[Damage, str]]) -> None:
    for d, file in batch:
        path = run_dir / file
        if d.file in ("requests.parquet", "engine.parquet"):  # the golden run has no load: the foreign file is added
            shutil.copyfile(path.parent / "samples.parquet", path)
        if d.file == "error.json" and not path.exists():
            path.write_text(json.dumps({"phase": "measure", "reason": "planted"}))
        d.apply(path)


def read_by_compare(file: str) -> bool:
    """compare reads run.json, env.json, config.resolved.yaml, summaries, error.json and spans (not samples, requests,
    engine, calibration or sweeps)."""
    return not file.endswith(("samples.parquet", "requests.parquet", "engine.parquet", "calibration.json", "sweeps.json"))


def assert_named(text: str, run_dir: Path, batch: list[tuple[Damage, str]], prefix: str) -> None:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    for d, file in batch:
        where = str(run_dir / (d.named or file))
        assert any(where in line and d.says in line for line in lines), f"{d.id} ({file}) not named as '{d.says}':\n" + "\n".join(lines)


def test_the_generator_covers_every_damage_in_a_few_copies():
    placed = [d for batch in BATCHES for d, _ in batch]
    assert sorted(d.id for d in placed) == sorted(d.id for d in DAMAGES)
    assert len(BATCHES) <= 5  # a report each: the damages share copies


@pytest.mark.parametrize("k", range(len(BATCHES)))
def test_report_and_compare_name_every_damaged_file_and_report_the_rest(tmp_path, k):
    batch = BATCHES[k]
    run_dir = copy_run(GOLDEN, tmp_path / "run")
    apply_batch(run_dir, batch)
    code, out, err = cli("report", run_dir, "-o", tmp_path / "report.html")
    assert code == 0, err
    assert_named(err, run_dir, batch, "warning: ")
    assert "could not be built" not in err  # the damage is stopped where the run is read, not in a section
    untouched = [w for w in WORKLOADS if not any(f.startswith(f"{w}/") for _, f in batch)]
    page = (tmp_path / "report.html").read_text()
    assert all(f"w-{WORKLOADS.index(w)}-" in page for w in untouched)  # the rest of the run is reported
    a_or_b = ("A", (run_dir, GOLDEN)) if k % 2 else ("B", (GOLDEN, run_dir))
    code, out, err = cli("compare", *a_or_b[1], "-o", tmp_path / "compare.html")
    assert code == 0, err
    read = [(d, f) for d, f in batch if read_by_compare(f)]
    assert_named(out, run_dir, read, f"note: run {a_or_b[0]}: ")
    page = html.unescape((tmp_path / "compare.html").read_text())
    assert all(f'<div class="warn wrap">run {a_or_b[0]}: {run_dir / f}:' in page for d, f in read)  # on the page too


def test_the_old_schema_names_its_damages_too(tmp_path):
    """golden-run-v1 goes through migrate.py: damaged summaries (which its migration reads) and tables."""
    chosen = ("summary.json a list", "summary.json deep", "summary phases", "summary NaN", "spans duplicated", "run file a FIFO")
    picked = [d for d in DAMAGES if d.id.startswith(chosen)]
    migration = write(json.dumps({"name": "x", "metrics": [1], "phases": {"x": 1}}))
    batch = batches([*picked, Damage("a summary its migration cannot read", "summary.json", migration, "unreadable as a schema-1 summary")])
    assert len(batch) == 1
    run_dir = copy_run(GOLDEN_V1, tmp_path / "run")
    apply_batch(run_dir, batch[0])
    code, out, err = cli("report", run_dir, "-o", tmp_path / "report.html")
    assert code == 0, err
    assert_named(err, run_dir, batch[0], "warning: ")
    assert "could not be built" not in err


# ---------------------------------------------------------------- entries leading outside the run


def test_entries_never_lead_reads_outside_the_run(tmp_path):
    """run.json dirs that are absolute, go up, or are symlinks out, and files symlinked out: each workload is
    reported unreadable with the reason, and nothing outside is read (the outside copies are valid: read, they
    would give data)."""
    outside = copy_run(GOLDEN, tmp_path / "outside")
    run_dir = copy_run(GOLDEN, tmp_path / "run")
    info = json.loads((run_dir / "run.json").read_text())
    entries = {e["name"]: e for e in info["workloads"]}
    entries["llm"]["dir"] = str(outside / "llm")
    entries["mamba"]["dir"] = "../outside/mamba"
    (run_dir / "run.json").write_text(json.dumps(info))
    shutil.rmtree(run_dir / "diffusion")
    (run_dir / "diffusion").symlink_to(outside / "diffusion")
    (run_dir / "vla" / "summary.json").unlink()
    (run_dir / "vla" / "summary.json").symlink_to(outside / "vla" / "summary.json")
    (run_dir / "broken" / "spans.parquet").unlink()
    (run_dir / "broken" / "spans.parquet").symlink_to(outside / "broken" / "spans.parquet")
    (run_dir / "script_alert_1_script" / "samples.parquet").unlink()
    (run_dir / "script_alert_1_script" / "samples.parquet").symlink_to("/dev/zero")
    run = load_run(run_dir)
    for name in ("llm", "mamba", "diffusion"):
        w = run.workloads[name]
        assert not w.readable and w.measured.empty and w.samples.empty and w.summary.plugin == "unknown"
    assert run.workloads["vla"].summary.plugin == "unknown" and not run.workloads["vla"].measured.empty  # its own spans are inside
    assert run.workloads["broken"].measured.empty and run.workloads["<script>alert(1)</script>"].samples.empty
    problems = "\n".join(run.all_problems())
    assert f"{run_dir / 'run.json'}: workloads[0] (llm): dir: '{str(outside / 'llm')[:60]}" in problems and "' is an absolute path" in problems
    assert "workloads[1] (mamba): dir: '../outside/mamba' steps up ('..')" in problems
    assert "workloads[2].dir 'diffusion': leads outside the run directory (a symlink); the workload is not read" in problems
    for f in ("vla/summary.json", "broken/spans.parquet", "script_alert_1_script/samples.parquet"):
        assert f"{run_dir / f}: leads outside the run directory (a symlink); not followed" in problems
    code, out, err = cli("report", run_dir, "-o", tmp_path / "report.html")
    assert code == 0 and err.count("leads outside the run directory") == 4 and "workloads[0] (llm)" in err
    code, out, err = cli("compare", GOLDEN, run_dir, "-o", tmp_path / "compare.html")
    assert code == 0 and "note: run B: " in out and "note: llm: not compared: B has no measured samples" in out


def test_a_symlink_inside_the_run_is_followed(tmp_path):
    run_dir = copy_run(GOLDEN, tmp_path / "run")
    (run_dir / "llm").rename(run_dir / "llm-real")
    (run_dir / "llm").symlink_to("llm-real")
    run = load_run(run_dir)
    assert run.workloads["llm"].readable and not run.workloads["llm"].measured.empty and run.all_problems() == []


def test_a_run_without_run_json_names_an_outside_directory_and_skips_it(tmp_path):
    run_dir = copy_run(GOLDEN, tmp_path / "run")
    (run_dir / "run.json").unlink()
    outside = copy_run(GOLDEN / "llm", tmp_path / "elsewhere")
    (run_dir / "zz").symlink_to(outside)
    run = load_run(run_dir)
    assert "zz" not in run.workloads and "llm" in run.workloads
    assert f"{run_dir / 'zz'}: leads outside the run directory (a symlink); not followed" in run.all_problems()


# ---------------------------------------------------------------- not a run at all: one line, exit 2


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda d: ((d / "run.json").unlink(), (d / "env.json").unlink()), "no run.json or env.json"),
        (lambda d: (d / "run.json").write_text(json.dumps({"schema_version": "2"})), "schema version '2'"),
        (lambda d: (d / "run.json").write_text(json.dumps({"schema_version": True})), "schema version True"),
        (lambda d: (d / "run.json").write_text(json.dumps({"schema_version": "x" * 10_000})), "schema version 'xxxxxxxx"),
    ],
)
def test_a_directory_that_is_no_run_is_one_line_exit_2(tmp_path, edit, says):
    run_dir = copy_run(GOLDEN, tmp_path / "run")
    edit(run_dir)
    code, out, err = cli("report", run_dir, "-o", tmp_path / "r.html")
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and says in err and len(err) < 600


# ---------------------------------------------------------------- the bounds themselves


def test_json_is_read_with_a_size_and_a_nesting_bound(tmp_path):
    with pytest.raises(UnreadableFile, match="is a character device"):
        read_bounded("/dev/zero", 100)
    path = tmp_path / "f.json"
    huge(path)
    with pytest.raises(UnreadableFile, match="2,147,483,648 bytes, over the 64 MiB limit"):
        load_json(path)
    path.unlink()
    os.mkfifo(path)  # opened non-blocking: refused at once, never waits for a writer
    with pytest.raises(UnreadableFile, match="FIFO"):
        load_json(path)
    path.unlink()
    path.write_text("[" * DEEP + "]" * DEEP)
    with pytest.raises(UnreadableFile, match="nested 100,000 levels deep, over the 128-level limit"):
        load_json(path)
    path.write_text(json.dumps({"a": "[[[[{{{{", "b": [[1.5, float("nan")], {"c": float("inf")}], "d": 1e400}).replace("Infinity", "1e400"))
    value, repairs = load_json(path)  # brackets inside strings are not nesting; NaN, Infinity and 1e400 are not numbers
    assert value == {"a": "[[[[{{{{", "b": [[1.5, None], {"c": None}], "d": None} and repairs == (3, 0)
    assert store.read_json(tmp_path / "missing.json") is None


def test_parquet_is_read_with_a_size_bound(tmp_path, monkeypatch):
    with pytest.raises(UnreadableFile, match="is a character device"):
        read_arrow("/dev/zero")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": pa.array([0] * 100_000, pa.int64())}), path)  # compresses to a few KiB
    monkeypatch.setattr(store, "memory_available", lambda: 16 * 500_000)
    with pytest.raises(UnreadableFile, match=r"its columns decode to .*, over the 500,000 bytes a table may take here \(1/16 of the memory"):
        read_arrow(path)
    assert read_arrow(path, ["y"]).num_columns == 0  # only the columns read count


def test_table_checks_keep_what_a_real_run_writes(tmp_path):
    """The golden runs read without a single problem: the checks only speak of damage."""
    for golden in (GOLDEN, GOLDEN_V1):
        run = load_run(golden)
        for w in run.workloads.values():
            _ = w.measured, w.spans, w.samples, w.requests, w.engine, w.repeats
        _ = run.calibration, run.sweeps
        assert run.all_problems() == []
        assert {str(t) for t in run.workloads["llm"].spans.dtypes[["iteration", "start_ns", "end_ns"]]} == {"int64"}


def test_request_records_are_checked_where_they_are_read(tmp_path):
    """A requests.parquet as run/serve.py writes it, damaged: a repeated index, token times that are not lists, a row
    without its `measured`: each named, the rest kept, the types the serving figures rely on."""
    from profiler.rundir import WorkloadRun
    from profiler.runmodel import Status, WorkloadSummary

    n = 6
    table = pa.table(
        {
            "index": pa.array([0, 1, 2, 3, 3, 4], pa.int64()),
            "measured": pa.array([True, True, None, True, True, True]),
            "status": ["finished"] * n,
            "arrival_ns": pa.array([10, 20, 30, 40, 40, 50], pa.int64()),
            "sent_ns": pa.array([10, 20, 30, 40, 40, 50], pa.int64()),
            "scheduled_ns": pa.array([11, 21, 31, 41, 41, 51], pa.int64()),
            "token_ns": ["[12, 13]"] * n,
            "finished_ns": pa.array([13, 23, 33, 43, 43, 53], pa.int64()),
        }
    )
    pq.write_table(table, tmp_path / "requests.parquet")
    pq.write_table(pa.table({"t_ns": pa.array([1, 2], pa.int64()), "running": ["two", "3"]}), tmp_path / "engine.parquet")
    summary = WorkloadSummary(name="w", type="t", plugin="p", status=Status.OK, device="cpu", seed=0)
    w = WorkloadRun("w", tmp_path, summary, None)
    r, e = w.requests, w.engine
    assert r["index"].tolist() == [0, 1, 3, 4] and r["token_ns"].isna().all() and r["measured"].dtype == bool
    assert e["running"].tolist()[1] == 3.0 and pd.isna(e["running"].tolist()[0]) and "kv_bytes_used" in e  # absent: not exposed
    said = "\n".join(w.problems)
    assert "column 'token_ns' is string, expected lists of integers: 6 value(s) that are not lists of integers read as missing" in said
    assert "1 row(s) without a value in index, measured, status left out" in said
    assert "1 duplicated row(s) (the same index as an earlier row) left out" in said
    assert "column 'running' is string, expected numbers: 1 value(s) that are not numbers read as missing" in said


def test_a_foreign_part_file_is_left_out_and_the_other_parts_read(tmp_path):
    run_dir = copy_run(GOLDEN, tmp_path / "run")
    spans = run_dir / "llm" / "spans.parquet"
    spans.rename(run_dir / "llm" / "spans.part-000000.parquet")
    shutil.copyfile(run_dir / "llm" / "samples.parquet", run_dir / "llm" / "spans.part-000001.parquet")
    w = load_run(run_dir).workloads["llm"]
    assert len(w.measured) == len(load_run(GOLDEN).workloads["llm"].measured)
    columns = "'iteration', 'warmup', 'phase', 'start_ns', 'end_ns', 'units'"
    assert w.problems == [f"{run_dir / 'llm' / 'spans.part-000001.parquet'}: not a spans table (no column {columns}); left out"]


def test_a_damaged_run_json_is_named_and_its_workloads_found_by_their_directories(tmp_path):
    """run.json of every damaged shape: named, and the workloads read from the directories that hold a summary."""
    for k, (shape, apply, says) in enumerate(JSON_SHAPES):
        run_dir = copy_run(GOLDEN, tmp_path / f"run-{k}")
        apply(run_dir / "run.json")
        run = load_run(run_dir)
        assert any(p.startswith(f"{run_dir / 'run.json'}: ") and says in p for p in run.all_problems()), (shape, run.all_problems())
        assert set(run.workloads) == set(WORKLOADS) and not run.workloads["llm"].measured.empty, shape
    code, out, err = cli("report", run_dir, "-o", tmp_path / "report.html")  # the last shape, through the command
    assert code == 0 and f"warning: {run_dir / 'run.json'}: unreadable (not JSON" in err


# ---------------------------------------------------------------- names no OS can take, text no codec can write


def set_entry(run_dir: Path, name: str, **fields: object) -> None:
    info = json.loads((run_dir / "run.json").read_text())
    next(e for e in info["workloads"] if e["name"] == name).update(fields)
    (run_dir / "run.json").write_text(json.dumps(info))


def test_dir_entries_no_os_can_name_are_refused_and_the_rest_reported(tmp_path):
    """A workload `dir` of a 256-byte name or a 6,000-byte path, and a repeat's dir of 300 bytes: each refused by name
    (runmodel.inside_dir), the rest of the run reported by report and by compare either way round, exit 0."""
    run_dir = copy_run(GOLDEN, tmp_path / "run")
    set_entry(run_dir, "mamba", dir="D" * 256)
    set_entry(run_dir, "diffusion", dir="/".join(["x"] * 3000))
    edit_json(lambda d: d.update(repeats=[{"repeat": 1, "dir": "R" * 300, "status": "ok"}]))(run_dir / "vla" / "summary.json")
    code, out, err = cli("report", run_dir, "-o", tmp_path / "r.html")
    assert code == 0, err
    assert "workloads[1] (mamba): dir: 'DDDD" in err and "holds a name of 256 bytes, over the 255 a file system takes" in err
    assert "workloads[2] (diffusion): dir: 'x/x/x" in err and "is 5,999 bytes long, over the 1,024" in err
    assert f"{run_dir / 'vla' / 'summary.json'}: repeats.0.dir: " in err and "holds a name of 300 bytes" in err
    assert "w-0-" in (tmp_path / "r.html").read_text()  # llm, untouched, is reported
    for pair, side in (((GOLDEN, run_dir), "B"), ((run_dir, GOLDEN), "A")):
        code, out, err = cli("compare", *pair, "-o", tmp_path / f"c{side}.html")
        assert code == 0 and f"note: run {side}: {run_dir / 'run.json'}: workloads[1] (mamba)" in out, err
        assert "llm e2e_s" in out


def test_inside_dir_refuses_what_no_os_can_name():
    from profiler.runmodel import inside_dir

    for value, says in [("D" * 256, "a name of 256 bytes"), ("é" * 128, "a name of 256 bytes"), ("a/" * 600, "over the 1,024"), ("\ud800x", "lone surrogate")]:
        with pytest.raises(ValueError, match=says):
            inside_dir(value)
    assert inside_dir("D" * 255) == "D" * 255 and inside_dir("rate/load.rate-2/repeat-1") == "rate/load.rate-2/repeat-1"


def test_os_errors_listing_or_resolving_a_run_stay_inside_the_reader_mocked_glob_and_realpath(tmp_path, monkeypatch):
    """Mocks Path.glob and os.path.realpath to raise OSError (a path the OS refuses, an I/O error): each is a problem
    line naming the path, never an exception out of the reader."""
    import errno
    import pathlib

    run_dir = copy_run(GOLDEN, tmp_path / "run")
    (run_dir / "llm" / "spans.parquet").rename(run_dir / "llm" / "spans.part-000000.parquet")  # read by listing its parts
    monkeypatch.setattr(pathlib.Path, "glob", lambda self, pattern: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error")))
    w = load_run(run_dir).workloads["llm"]
    assert w.measured.empty and w.spans.empty
    assert f"{run_dir / 'llm'}: cannot be listed (cannot be read (Input/output error)); its spans are not read" in w.problems
    monkeypatch.undo()
    real = os.path.realpath
    monkeypatch.setattr(os.path, "realpath", lambda p: (_ for _ in ()).throw(OSError(errno.ENAMETOOLONG, "x")) if "mamba" in str(p) else real(p))
    run = load_run(run_dir)
    assert not run.workloads["mamba"].readable and not run.workloads["vla"].measured.empty
    assert "workloads[1].dir 'mamba': cannot be resolved (the path is too long" in "\n".join(run.all_problems())


def test_lone_surrogates_are_shown_escaped_everywhere(tmp_path):
    r"""A lone surrogate (the JSON escape \udc80) in run.json's entries, a summary's strings and keys, env.json and the
    resolved config: read as its escape text with a warning per file; the page, the terminal, differences.csv/json and
    compare's table carry it escaped; no traceback."""
    run_dir = copy_run(GOLDEN, tmp_path / "run")
    text = (run_dir / "run.json").read_text()
    text = text.replace('"dir": "mamba"', '"dir": "\\udc80toy"', 1).replace('"name": "vla"', '"name": "v\\udc81la"', 1)
    (run_dir / "run.json").write_text(text)
    summary = json.loads((run_dir / "llm" / "summary.json").read_text())
    summary["declaration"]["output_unit"] = "SURROGATE"
    summary["unavailable"] = {"KEY": "SURROGATE"}
    (run_dir / "llm" / "summary.json").write_text(json.dumps(summary).replace("SURROGATE", "tok\\udc82").replace("KEY", "k\\udfff"))
    (run_dir / "env.json").write_text((run_dir / "env.json").read_text().replace('"hostname": "', '"hostname": "\\ud800', 1))
    config = run_dir / "config.resolved.yaml"
    config.write_text(config.read_text().replace("\nname: golden\n", '\nname: "golden\\udc83"\n', 1))
    code, out, err = cli("report", run_dir, "-o", tmp_path / "r.html")
    assert code == 0, err
    for f in ("run.json", "llm/summary.json", "env.json", "config.resolved.yaml"):
        assert f"warning: {run_dir / f}: " in err and "lone surrogate(s)" in err, f
    page = (tmp_path / "r.html").read_text(encoding="utf-8")  # strict UTF-8: nothing unencodable was written
    assert "v\\udc81la" in page and "tok\\udc82" in page
    assert "v\\udc81la" in (run_dir / "differences.csv").read_text(encoding="utf-8")
    code, out, err = cli("compare", run_dir, run_dir, "-o", tmp_path / "c.html")  # the run against itself: vla compared
    assert code == 0, err
    assert "v\\udc81la e2e_s" in out and "v\\udc81la" in (tmp_path / "c.html").read_text(encoding="utf-8")
    assert any(r["workload"] == "v\\udc81la" for r in json.loads((tmp_path / "c.json").read_text(encoding="utf-8")))


def test_a_directory_name_that_is_not_utf8_is_shown_escaped(tmp_path):
    """A run without run.json whose workload directory's name is not UTF-8: found, its name shown escaped."""
    run_dir = copy_run(GOLDEN, tmp_path / "run")
    (run_dir / "run.json").unlink()
    os.rename(run_dir / "mamba", os.path.join(os.fsencode(run_dir), b"m\xffmba"))
    run = load_run(run_dir)
    assert "m\\udcffmba" in run.workloads and not run.workloads["m\\udcffmba"].measured.empty
    code, out, err = cli("report", run_dir, "-o", tmp_path / "r.html")
    assert code == 0 and "m\\udcffmba: a directory name that is not UTF-8" in err and "m\\udcffmba" in (tmp_path / "r.html").read_text()


# ---------------------------------------------------------------- times no run can give


def test_impossible_span_times_leave_compare_s_ratios_sane(tmp_path):
    """Spans ending before they start, ending at 2**63-1, starting at -2**62 (every third row): left out with a line,
    and compare's ratios are those of the rows left (the golden run against itself: near 1), not -246 or 2e12."""
    run_dir = copy_run(GOLDEN, tmp_path / "run")
    damage = {"llm": ("end_ns", lambda df: df["start_ns"] - 5), "mamba": ("end_ns", lambda df: 2**63 - 1), "diffusion": ("start_ns", lambda df: -(2**62))}
    for name, (column, value) in damage.items():
        edit_table(every_third(column, value))(run_dir / name / "spans.parquet")
    code, out, err = cli("compare", GOLDEN, run_dir, "-o", tmp_path / "c.html")
    assert code == 0, err
    for name in damage:
        assert f"note: run B: {run_dir / name / 'spans.parquet'}: " in out and "row(s) with impossible times left out" in out
    ratios = [float(line.split("B/A ")[1].split()[0]) for line in out.splitlines() if " B/A " in line]
    assert ratios and all(0.5 < r < 2 for r in ratios), out


def test_impossible_request_and_engine_times_are_left_out(tmp_path):
    """requests.parquet rows finished before arriving, with a token outside arrival..finished (beyond the 1 ms slack),
    lasting 2**62 ns, or arriving at a negative time; an engine sample at a negative t_ns: left out, one line each;
    a request within the slack, and a not-sent request without times, kept."""
    from profiler.rundir import WorkloadRun
    from profiler.runmodel import Status, WorkloadSummary

    ms = 1_000_000
    rows = [  # (arrival, finished, tokens): kept, kept (a token 0.5 ms early), then each damage
        (10 * ms, 20 * ms, [12 * ms, 20 * ms]),
        (10 * ms, 20 * ms, [int(9.5 * ms), 20 * ms]),
        (10 * ms, 5 * ms, [5 * ms]),
        (10 * ms, 20 * ms, [8 * ms, 20 * ms]),
        (10 * ms, 20 * ms, [12 * ms, 25 * ms]),
        (10 * ms, 2**62, [12 * ms]),
        (-ms, 20 * ms, [12 * ms]),
        (None, None, None),
    ]
    n = len(rows)
    table = pa.table(
        {
            "index": pa.array(range(n), pa.int64()),
            "measured": [True] * n,
            "status": ["finished"] * (n - 1) + ["not_sent"],
            "arrival_ns": pa.array([r[0] for r in rows], pa.int64()),
            "sent_ns": pa.array([r[0] for r in rows], pa.int64()),
            "scheduled_ns": pa.array([None] * n, pa.int64()),
            "token_ns": pa.array([r[2] for r in rows], pa.list_(pa.int64())),
            "finished_ns": pa.array([r[1] for r in rows], pa.int64()),
        }
    )
    pq.write_table(table, tmp_path / "requests.parquet")
    pq.write_table(pa.table({"t_ns": pa.array([-5, 1, 2], pa.int64()), "running": [1.0, 2.0, 3.0]}), tmp_path / "engine.parquet")
    summary = WorkloadSummary(name="w", type="t", plugin="p", status=Status.OK, device="cpu", seed=0)
    w = WorkloadRun("w", tmp_path, summary, None)
    assert w.requests["index"].tolist() == [0, 1, 7] and w.engine["t_ns"].tolist() == [1, 2]
    said = "\n".join(w.problems)
    assert f"{tmp_path / 'requests.parquet'}: 5 row(s) with impossible times left out (finished_ns before arrival_ns" in said
    assert f"{tmp_path / 'engine.parquet'}: 1 row(s) with impossible times left out (a negative t_ns" in said


# ---------------------------------------------------------------- the decoded-size bound


def test_the_table_budget_is_a_sixteenth_of_the_memory_a_container_may_use_mocked_sysconf_and_cgroup(monkeypatch, tmp_path):
    """Mocks os.sysconf (a 64 GiB machine) and the cgroup limit files (a 4 GiB container)."""
    monkeypatch.setattr(store.os, "sysconf", lambda name: {"SC_PHYS_PAGES": 16 * 2**20, "SC_PAGE_SIZE": 4096}[name])
    monkeypatch.setattr(store, "CGROUP_LIMITS", (str(tmp_path / "none"),))
    assert store.table_memory_budget() == 4 * 2**30  # 64 GiB / 16
    (tmp_path / "memory.max").write_text("4294967296\n")
    (tmp_path / "v1").write_text("9223372036854771712\n")  # cgroup v1's "no limit"
    monkeypatch.setattr(store, "CGROUP_LIMITS", (str(tmp_path / "memory.max"), str(tmp_path / "v1")))
    assert store.table_memory_budget() == 2**28  # 4 GiB / 16
    (tmp_path / "memory.max").write_text("max\n")
    assert store.table_memory_budget() == 4 * 2**30


def test_a_table_over_the_budget_is_one_problem_line(tmp_path, monkeypatch):
    """Mocks memory_available (a small machine): spans that compress well (the golden llm's, 200 identical copies, as
    a hostile file of 30M identical rows) but decode past the budget are refused with one line naming the file and the rule."""
    run_dir = copy_run(GOLDEN, tmp_path / "run")
    path = run_dir / "llm" / "spans.parquet"
    spans = pq.read_table(path).to_pandas()
    pq.write_table(pa.Table.from_pandas(pd.concat([spans] * 200), preserve_index=False), path, compression="zstd")
    assert path.stat().st_size < 100_000
    monkeypatch.setattr(store, "memory_available", lambda: 16 * 100_000)
    w = load_run(run_dir).workloads["llm"]
    assert w.measured.empty
    said = [p for p in w.problems if str(path) in p]
    assert (
        len(said) == 1 and said[0].startswith(f"{path}: unreadable (its columns decode to ") and "over the 100,000 bytes a table may take here (1/16" in said[0]
    )


def test_differences_that_cannot_be_written_into_the_run_are_one_warning(tmp_path):
    """differences.csv a directory in the run (as in a hostile copy): the report is written to -o all the same, with a
    warning naming the file, instead of an error blaming the page."""
    run_dir = copy_run(GOLDEN, tmp_path / "run")
    (run_dir / "differences.csv").mkdir()
    code, out, err = cli("report", run_dir, "-o", tmp_path / "r.html")
    assert code == 0 and (tmp_path / "r.html").exists(), err
    assert f"warning: {run_dir / 'differences.csv'} and .json: not written (is a directory, not a regular file" in err
