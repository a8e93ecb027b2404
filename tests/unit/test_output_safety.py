"""`-o` of run, report and compare never replaces what the profiler did not write.

An existing output is replaced only when it is a regular file carrying the profiler's marker (a page's generator
meta at the start of its head; compare's table parsed as one), or, without -o, a regular file where the profiler puts
its default outputs in a run directory (older releases wrote no marker). A FIFO, a symlink (to anywhere), a directory, a
foreign file and a character device (os.devnull, only ever with the refusal expected) are refused in one line, exit 2,
before anything is written. `run -o DIR` makes a new run directory inside DIR (a symlink to a directory included) and
never reuses one; atomic writes refuse to rename over anything but a regular file.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pyarrow as pa
import pytest

from profiler.cli import check_output_root
from profiler.errors import UserError
from profiler.measure import outputs, store
from tests.conftest import ROOT, cli_in_process

GOLDEN = ROOT / "tests" / "data" / "golden-run"
SUITE = """\
name: s
device: cpu
measure: {warmup_iters: 0, min_iters: 1, min_seconds: 0, max_seconds: 5, count_work: false, trace_ops: false}
workloads:
  - {name: a, type: toy}
"""


cli = cli_in_process


def assert_refused(result: tuple[int, str, str], *needles: str) -> None:
    code, out, err = result
    assert code == 2, (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def assert_devnull_intact() -> None:
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode), "os.devnull is no longer a character device"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A copy of the golden run (report writes differences.csv/json into its run directory)."""
    path = tmp_path_factory.mktemp("runs") / "golden-run"
    shutil.copytree(GOLDEN, path)
    return path


@pytest.fixture
def targets(tmp_path) -> dict[str, Path]:
    """Things the profiler did not write: a FIFO, a symlink to a precious file, a directory, a foreign file."""
    precious = tmp_path / "precious.txt"
    precious.write_text("precious\n")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link.html").symlink_to(precious)
    (tmp_path / "dir.html").mkdir()
    (tmp_path / "foreign.html").write_text("<html><head><title>mine</title></head></html>\n")
    return {"FIFO": tmp_path / "fifo", "symlink": tmp_path / "link.html", "directory": tmp_path / "dir.html", "foreign": tmp_path / "foreign.html"}


def unchanged(tmp_path: Path) -> None:
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode)
    assert (tmp_path / "link.html").is_symlink() and (tmp_path / "precious.txt").read_text() == "precious\n"
    assert (tmp_path / "dir.html").is_dir() and not any((tmp_path / "dir.html").iterdir())
    assert (tmp_path / "foreign.html").read_text().startswith("<html><head><title>mine")
    assert not list(tmp_path.glob(".*.tmp"))


WORDS = {"FIFO": "is a FIFO", "symlink": "is a symlink", "directory": "is a directory", "foreign": "was not written by the profiler"}


def test_report_refuses_what_it_did_not_write(run_dir, targets, tmp_path):
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    for kind, target in targets.items():
        assert_refused(cli("report", run_dir, "-o", target), str(target), WORDS[kind])
    assert_refused(cli("report", run_dir, "-o", os.devnull), "is a character device")
    assert_devnull_intact()
    unchanged(tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before  # nothing written, differences.csv included


def test_compare_refuses_what_it_did_not_write_at_either_path(run_dir, targets, tmp_path):
    for kind, target in targets.items():
        assert_refused(cli("compare", run_dir, run_dir, "-o", target), WORDS[kind])
    assert_refused(cli("compare", run_dir, run_dir, "-o", os.devnull), "is a character device")
    assert_devnull_intact()
    (tmp_path / "page.json").write_text('{"mine": true}\n')  # the table beside the page would replace it
    assert_refused(cli("compare", run_dir, run_dir, "-o", tmp_path / "page.html"), "page.json", "was not written by the profiler")
    assert not (tmp_path / "page.html").exists()  # refused before either file is written
    os.mkfifo(tmp_path / "pipe.json")
    assert_refused(cli("compare", run_dir, run_dir, "-o", tmp_path / "pipe.html"), "pipe.json", "is a FIFO")
    assert_refused(cli("compare", run_dir, run_dir, "-o", tmp_path / "table.json"), "the same file")
    unchanged(tmp_path)


def test_own_outputs_are_replaced_run_after_run_relative_and_absolute(run_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("report", run_dir)[0] == 0  # the default RUN_DIR/report.html
    page = (run_dir / "report.html").read_text()
    assert '<meta name="generator" content="ml-workload-profiler' in page[: outputs.MARKER_WINDOW]
    outputs.check_output_file(run_dir / "report.html", outputs.is_profiler_html)  # the next `report RUN` replaces it
    shutil.copy(run_dir / "report.html", tmp_path / "r.html")
    code, out, err = cli("report", run_dir, "-o", "r.html")  # a cwd-relative -o, replacing a page of its own
    assert code == 0 and "report: r.html" in out, err
    assert (tmp_path / "r.html").stat().st_size > 1_000_000
    for _ in range(2):  # the page and its table beside it
        code, out, err = cli("compare", run_dir, run_dir, "-o", "c.html")
        assert code == 0, err
    assert outputs.is_profiler_html((tmp_path / "c.html").read_bytes()) and outputs.is_profiler_compare_json((tmp_path / "c.json").read_bytes())


OLD_REPORT = '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Profiler report — s</title>\n'
OLD_COMPARE = '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Profiler A/B comparison</title>\n'
"""The heads of pages written before the marker existed (the report and compare templates' titles)."""


def test_pages_written_before_the_marker_are_replaced_only_as_a_run_s_default_output(run_dir, tmp_path):
    """Older releases wrote no generator meta: their RUN/report.html, RUN_B/compare.html and compare.json (even `[]`)
    are replaced where the profiler put them (a directory with run.json, no -o); the same files named by -o are not."""
    (run_dir / "report.html").write_text(OLD_REPORT + "x" * 10_000)
    (run_dir / "compare.html").write_text(OLD_COMPARE + "x" * 10_000)
    (run_dir / "compare.json").write_text("[]")
    shutil.copy(run_dir / "report.html", tmp_path / "old.html")
    assert_refused(cli("report", run_dir, "-o", tmp_path / "old.html"), "-o", "was not written by the profiler")
    assert (tmp_path / "old.html").read_text().startswith(OLD_REPORT)
    assert cli("report", run_dir)[0] == 0 and outputs.is_profiler_html((run_dir / "report.html").read_bytes())
    assert cli("compare", run_dir, run_dir)[0] == 0 and outputs.is_profiler_html((run_dir / "compare.html").read_bytes())
    assert outputs.is_profiler_compare_json((run_dir / "compare.json").read_bytes())
    (tmp_path / "no-run").mkdir()
    (tmp_path / "no-run" / "report.html").write_text(OLD_REPORT)  # a default path, but no run directory around it
    with pytest.raises(UserError, match="was not written by the profiler"):
        outputs.check_output_file(tmp_path / "no-run" / "report.html", outputs.is_profiler_html, "")
    (tmp_path / "no-run" / "run.json").symlink_to(run_dir / "run.json")  # a symlinked run.json makes no run directory
    with pytest.raises(UserError, match="was not written by the profiler"):
        outputs.check_output_file(tmp_path / "no-run" / "report.html", outputs.is_profiler_html, "")


def test_the_marker_counts_only_at_the_start_of_the_head(run_dir, tmp_path):
    """A copy of the compare template (its legacy title), notes quoting the title or the whole marker, a page with the
    marker after its title or past the first 4 KiB: refused by -o and left as they were. The marker where mark_html
    puts it, after a BOM or with CRLF line ends, is the profiler's."""
    marker = outputs.generator_meta()
    foreign = {
        "template.html": (ROOT / "reports" / "templates" / "compare.html.j2").read_text(),
        "notes.md": "# notes\n<title>Profiler A/B comparison</title>\n",
        "quoted.md": f"# how the profiler marks pages\n{marker}\n",
        "late.html": OLD_REPORT.replace("</title>\n", f"</title>\n{marker}\n"),
        "far.html": "<head>" + " " * outputs.MARKER_WINDOW + marker,
        "body.html": f"<html><head><title>t</title></head><body>{marker}</body></html>",
    }
    for name, text in foreign.items():
        (tmp_path / name).write_text(text)
        assert_refused(cli("report", run_dir, "-o", tmp_path / name), str(tmp_path / name), "was not written by the profiler")
        assert (tmp_path / name).read_text() == text, name
    ours = {
        "marked.html": outputs.mark_html(OLD_REPORT),
        "bom.html": "\ufeff" + outputs.mark_html(OLD_COMPARE).replace("\n", "\r\n"),
        "bare.html": outputs.mark_html("<p>no head</p>"),
    }
    for name, text in ours.items():
        (tmp_path / name).write_text(text, newline="")
        outputs.check_output_file(tmp_path / name, outputs.is_profiler_html)  # no error
    assert outputs.mark_html(outputs.mark_html("<html><head><title>t</title>")).count(outputs.HTML_MARKER) == 1


def test_compare_s_table_beside_an_explicit_page_is_replaced_only_when_it_parses_as_one(run_dir, tmp_path):
    """`compare A B -o data.html` beside a user's data.json: `[]`, foreign records or records with a foreign column
    are refused (nothing written); compare's own records, of today or of an older release, are replaced; `[]` only
    beside a page that carries the marker (compare wrote both)."""
    record = {"workload": "llm", "metric": "e2e_s", "a_median": 1.0, "b_median": 1.0, "ratio": 1.0, "ci_low": 0.9, "ci_high": 1.1}
    for text in ("[]", '[{"a": 1}]', json.dumps([record | {"mine": 1}]), json.dumps([record, 5]), "[" * 10 + "]" * 10):
        (tmp_path / "data.json").write_text(text)
        assert_refused(cli("compare", run_dir, run_dir, "-o", tmp_path / "data.html"), "data.json", "was not written by the profiler")
        assert (tmp_path / "data.json").read_text() == text and not (tmp_path / "data.html").exists()
    for records in ([record], [record | {"basis": "b", "verdict": "v", "why": None}] * 2000):  # an older release's; a big one
        (tmp_path / "data.json").write_text(json.dumps(records, indent=1))
        outputs.check_output_file(tmp_path / "data.json", outputs.is_profiler_compare_json)  # no error
    from reports.compare import COLUMNS

    assert set(COLUMNS) == outputs.COMPARE_COLUMNS | outputs.COMPARE_OPTIONAL  # the recogniser knows compare's columns
    (tmp_path / "data.json").write_text("[]")
    (tmp_path / "data.html").write_text("<html><head><title>mine</title>")
    with pytest.raises(UserError, match="data.json: exists and was not written by the profiler"):
        outputs.check_output_file(tmp_path / "data.json", outputs.is_profiler_compare_json, page=tmp_path / "data.html")
    (tmp_path / "data.html").write_text(outputs.mark_html("<html><head><title>compare</title>"))
    outputs.check_output_file(tmp_path / "data.json", outputs.is_profiler_compare_json, page=tmp_path / "data.html")  # no error


def test_output_in_a_missing_or_unwritable_directory_is_one_line(run_dir, tmp_path, monkeypatch):
    assert_refused(cli("report", run_dir, "-o", tmp_path / "no" / "such" / "r.html"), "does not exist")
    assert_refused(cli("compare", run_dir, run_dir, "-o", tmp_path / "no" / "c.html"), "does not exist")
    (tmp_path / "file").write_text("")
    assert_refused(cli("report", run_dir, "-o", tmp_path / "file" / "r.html"), "is not a directory")


def test_unwritable_output_directory_is_one_line_mocked_os_access(run_dir, tmp_path, monkeypatch):
    """Mocks os.access (the tests may run as root, which writes anywhere): a directory the user cannot write."""
    monkeypatch.setattr(store.os, "access", lambda *a, **k: False)
    assert_refused(cli("report", run_dir, "-o", tmp_path / "r.html"), "is not writable")
    assert_refused(cli("run", write_suite(tmp_path), "-o", tmp_path / "runs"), "is not writable")
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "runs").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_unwritable_output_directory_is_one_line(run_dir, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert_refused(cli("report", run_dir, "-o", locked / "r.html"), "is not writable")
    assert_refused(cli("run", write_suite(tmp_path), "-o", locked / "runs"), "not writable")


def write_suite(tmp_path: Path) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    return path


def test_run_output_root_must_be_a_directory(tmp_path, targets):
    suite = write_suite(tmp_path)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for target, words in [
        (targets["FIFO"], "is a FIFO, not a directory"),
        (targets["foreign"], "is a regular file, not a directory"),
        (Path(os.devnull), "is a character device, not a directory"),
        (tmp_path / "dangling", "symlink to nothing"),
        (targets["foreign"] / "runs", "is not a directory"),
    ]:
        assert_refused(cli("run", suite, "-o", target, "--device", "cpu"), str(target), words)
    assert_devnull_intact()
    unchanged(tmp_path)
    assert not (tmp_path / "nowhere").exists()


def test_run_output_root_may_be_a_symlink_to_a_directory_and_run_dirs_are_never_reused(tmp_path, monkeypatch):
    """Mocks time.strftime in the store: every run directory gets the same stamp."""
    real = tmp_path / "big-disk"
    real.mkdir()
    (tmp_path / "runs").symlink_to(real)
    check_output_root(tmp_path / "runs")  # accepted: the run directory is made inside, nothing is replaced
    check_output_root(tmp_path / "new" / "deeper")  # made when the run starts
    monkeypatch.setattr(store.time, "strftime", lambda fmt: "20250101-000000")
    first = store.new_run_dir(tmp_path / "runs", "s")
    (first / "run.json").write_text("{}")
    (real / "20250101-000000-s-2").symlink_to(tmp_path / "elsewhere")  # a dangling symlink takes a name too
    second = store.new_run_dir(tmp_path / "runs", "s")
    assert first.name == "20250101-000000-s" and second.name == "20250101-000000-s-3"
    assert first.resolve().parent == real and not any(second.iterdir()) and (first / "run.json").read_text() == "{}"
    assert not (tmp_path / "elsewhere").exists()
    nested = store.new_run_dir(tmp_path / "new" / "deeper", "s")
    assert nested.is_dir()


@pytest.mark.parametrize("write", [lambda p: store.atomic_write_text(p, "x"), lambda p: store.atomic_write_table(p, pa.table({"a": [1]}))])
def test_atomic_writes_never_rename_over_anything_but_a_regular_file(write, targets, tmp_path):
    for kind, target in targets.items():
        if kind == "foreign":
            continue  # a regular file inside a run directory is the profiler's to replace (run.json, every update)
        with pytest.raises(store.NotReplaceableError) as info:
            write(target)
        assert info.value.filename == str(target) and isinstance(info.value, OSError)
    with pytest.raises(store.NotReplaceableError, match="character device"):
        write(os.devnull)
    assert_devnull_intact()
    unchanged(tmp_path)
    write(tmp_path / "plain")
    assert (tmp_path / "plain").is_file()
