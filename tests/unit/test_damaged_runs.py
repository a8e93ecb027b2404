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
    ("samples not numbers", "samples.parquet", edit_table(lambda df: df.assign(proc_cpu_percent="busy")), "not numbers read as missing"),
    ("samples directory", "samples.parquet", directory, "is a directory"),
    ("samples empty file", "samples.parquet", write(b""), "unreadable"),
    ("samples duplicated", "samples.parquet", edit_table(lambda df: pd.concat([df, df])), "duplicated row(s)"),
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
    value, nonfinite = load_json(path)  # brackets inside strings are not nesting; NaN, Infinity and 1e400 are not numbers
    assert value == {"a": "[[[[{{{{", "b": [[1.5, None], {"c": None}], "d": None} and nonfinite == 3
    assert store.read_json(tmp_path / "missing.json") is None


def test_parquet_is_read_with_a_size_bound(tmp_path, monkeypatch):
    with pytest.raises(UnreadableFile, match="is a character device"):
        read_arrow("/dev/zero")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": pa.array([0] * 100_000, pa.int64())}), path)  # compresses to a few KiB
    monkeypatch.setattr(store, "table_memory_budget", lambda: 500_000)
    with pytest.raises(UnreadableFile, match="its columns decode to .*, over half this machine's memory"):
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
