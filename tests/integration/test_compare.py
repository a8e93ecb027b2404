"""`compare --fail-if` as a CI guard, on copies of the golden run (tests/data is never written):
a typo is an error before anything is written, a condition fails on its 95% interval and not on
its point estimate, a guarded workload with nothing to compare in B fails, and differing
settings are stated. The command runs in-process (as `python -m profiler` would, through
cli.main) except once, in a subprocess, to see what a CI log sees."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT, assert_one_line_error, run_cli

GOLDEN = ROOT / "tests" / "data" / "golden-run"


def copy(tmp_path: Path, name: str) -> Path:
    run_dir = tmp_path / name
    shutil.copytree(GOLDEN, run_dir)
    return run_dir


@pytest.fixture
def compare(capsys):
    """`python -m profiler compare ARGS` in-process: a CompletedProcess with its exit status, stdout and stderr."""
    from profiler.cli import main

    def _compare(*args) -> subprocess.CompletedProcess:
        argv = ["compare", *map(str, args)]
        code = main(argv)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out, err)

    return _compare


@pytest.fixture
def runs(tmp_path) -> tuple[Path, Path, Path]:
    """(A, B, the page's path): two copies of the golden run."""
    return copy(tmp_path, "a"), copy(tmp_path, "b"), tmp_path / "ab.html"


def slow_down(run_dir: Path, workload: str, factor: float) -> None:
    """Stretch every span of `workload` by `factor` around its first start: every latency x factor."""
    path = run_dir / workload / "spans.parquet"
    table = pq.read_table(path)
    df = table.to_pandas()
    t0 = int(df["start_ns"].min())
    for col in ("start_ns", "end_ns"):
        df[col] = (t0 + (df[col] - t0) * factor).round().astype("int64")
    pq.write_table(pa.Table.from_pandas(df, schema=table.schema, preserve_index=False), path)


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "condition, needles",
    [
        ("e2e>1.10", ["unknown metric 'e2e'", "did you mean 'e2e_s'", "metrics in both runs: e2e_s, ttft_s, tpot_s, itl_s, output_units_per_s"]),
        ("nosuch:e2e_s>1.10", ["unknown workload 'nosuch'", "workloads in both runs: llm, mamba, diffusion, vla"]),
        ("phase:denoise_stp>1.1", ["unknown phase 'denoise_stp'", "did you mean 'denoise_step'", "phases in both runs: decode_step, prefill, denoise_step"]),
        ("diffusion:phase:denoise_stp>1.1", ["unknown phase 'denoise_stp'", "phases of diffusion in both runs: denoise_step, text_encode, vae_decode"]),
    ],
)
def test_an_unknown_name_is_an_error_before_anything_is_written(runs, compare, condition, needles):
    a, b, out = runs
    assert_one_line_error(compare(a, b, "-o", out, "--fail-if", "llm:e2e_s>1.5", "--fail-if", condition), f"--fail-if '{condition}'", *needles)
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_a_typo_exits_2_in_a_ci_log(runs):
    a, b, out = runs
    line = assert_one_line_error(run_cli("compare", a, b, "-o", out, "--fail-if", "e2e>1.10"), "unknown metric 'e2e'")
    assert line.startswith("error: --fail-if 'e2e>1.10': ") and not out.exists()


def test_a_condition_fails_on_its_interval_not_its_point_estimate(runs, compare):
    a, b, out = runs
    slow_down(b, "llm", 1.12)  # B/A 1.12, interval about [1.05, 1.20]: includes 1.10
    straddles = compare(a, b, "-o", out, "--fail-if", "llm:e2e_s>1.10")
    assert straddles.returncode == 0, straddles.stderr
    line = next(x for x in straddles.stdout.splitlines() if x.startswith("passed llm:e2e_s>1.10"))
    assert "B/A 1.120 [" in line and line.endswith("not shown to cross 1.1 (the interval includes it)"), line
    assert "rule: 'METRIC>T' fails only when the whole 95% interval of B/A lies above T (its lower bound exceeds T)" in straddles.stdout
    page = out.read_text()
    assert "not shown to cross" in page and "its lower bound exceeds T" in page

    slow_down(b, "llm", 1.5 / 1.12)  # now B/A 1.5: the whole interval lies above 1.10
    crossed = compare(a, b, "-o", out, "--fail-if", "llm:e2e_s>1.10", "--fail-if", "e2e_s<0.5")
    assert crossed.returncode == 1
    failed = [x for x in crossed.stderr.splitlines() if x.strip()]
    assert len(failed) == 1 and failed[0].startswith("FAILED llm:e2e_s>1.10: llm e2e_s B/A 1.500 ["), failed
    assert failed[0].endswith("crossed (the whole interval lies above 1.1)")
    assert "passed e2e_s<0.5: llm e2e_s B/A 1.500" in crossed.stdout  # the '<' side: not crossed
    assert "Failed conditions" in out.read_text()


def test_a_guarded_workload_missing_from_b_fails(runs, compare):
    a, b, out = runs
    edit_json(b / "run.json", lambda info: info.update(workloads=[w for w in info["workloads"] if w["name"] != "llm"]))
    shutil.rmtree(b / "llm")
    result = compare(a, b, "-o", out, "--fail-if", "llm:e2e_s>1.10", "--fail-if", "mamba:e2e_s>1.5")
    assert result.returncode == 1
    assert result.stderr.strip() == "FAILED llm:e2e_s>1.10: llm: cannot be checked: missing from B"
    assert "passed mamba:e2e_s>1.5" in result.stdout and "note: llm: only in A" in result.stdout
    unprefixed = compare(a, b, "-o", out, "--fail-if", "e2e_s>1.5")  # guards every workload of A
    assert unprefixed.returncode == 1 and unprefixed.stderr.strip() == "FAILED e2e_s>1.5: llm: cannot be checked: missing from B"


def test_a_guarded_workload_failed_in_b_without_samples_fails(runs, compare):
    a, b, out = runs

    def failed_in_setup(summary):
        summary.update(status="failed", error={"phase": "setup", "reason": "RuntimeError: planted"})

    edit_json(b / "llm" / "summary.json", failed_in_setup)
    (b / "llm" / "spans.parquet").unlink()
    result = compare(a, b, "-o", out, "--fail-if", "llm:tpot_s>1.10")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "FAILED llm:tpot_s>1.10: llm: cannot be checked: failed in B with no measured samples (in phase 'setup': RuntimeError: planted)"
    )
    assert "note: the runs differ: llm: status differs: A ok, B failed (a ratio across different settings is not a regression)" in result.stdout


def test_differing_settings_are_stated(runs, compare):
    a, b, out = runs
    edit_json(b / "run.json", lambda info: info.update(device="cuda:0", status="interrupted", schema_version=2))
    edit_json(b / "llm" / "summary.json", lambda s: s["params"].update(batch_size=4))
    result = compare(a, b, "-o", out)
    assert result.returncode == 0, result.stderr
    notes = [x for x in result.stdout.splitlines() if x.startswith("note: the runs differ: ")]
    assert [n.removeprefix("note: the runs differ: ").removesuffix(" (a ratio across different settings is not a regression)") for n in notes] == [
        "device differs: A cpu, B cuda:0",
        "run status differs: A complete, B interrupted",
        "llm: parameters differ: batch_size 1 → 4",
    ]
    page = out.read_text()
    assert "The runs differ" in page and "batch_size 1 → 4" in page and "device differs: A cpu, B cuda:0" in page
