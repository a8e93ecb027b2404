"""`compare --fail-if` as a CI guard, on copies of the golden run (tests/data is never written):
a typo or a threshold that is not a positive ratio is an error before anything is written, a
condition fails on its 95% interval and not on its point estimate, a guarded workload with
nothing to compare in B fails, one measured under contention is inconclusive (reported, not
failed), differing settings are stated, and two runs made with `--repeats` are compared between
repeats (one tiny toy suite, run once and copied). The command runs in-process (as `python -m
profiler` would, through cli.main) except once, in a subprocess, to see what a CI log sees."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import t as student_t

from tests.conftest import ROOT, assert_one_line_error, run_cli, run_suite_text

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
    stretch(run_dir / workload / "spans.parquet", factor)


def stretch(path: Path, factor: float) -> None:
    """Stretch every span of a spans.parquet by `factor` around its first start."""
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


@pytest.mark.parametrize("condition", ["e2e_s>0", "llm:e2e_s<-1", "phase:prefill>0.0"])
def test_a_threshold_must_be_a_positive_ratio(runs, compare, condition):
    a, b, out = runs
    line = assert_one_line_error(compare(a, b, "-o", out, "--fail-if", condition), f"--fail-if '{condition}': threshold ", "is not a positive ratio")
    assert "B/A is always above 0" in line and "give a ratio above 0, e.g. " in line
    assert not out.exists() and not out.with_suffix(".json").exists()


CONTENDED = "contended: other processes used 1.00 of its 2 cores (median)"


def contend(run_dir: Path, workload: str) -> None:
    edit_json(run_dir / workload / "summary.json", lambda s: s["contention"].update(contended=True, summary=CONTENDED))


def test_a_workload_measured_under_contention_is_inconclusive_and_does_not_fail(runs, compare):
    a, b, out = runs
    slow_down(b, "llm", 1.5)  # would cross 1.10 if its timings could be trusted
    contend(b, "llm")
    result = compare(a, b, "-o", out, "--fail-if", "llm:e2e_s>1.10", "--fail-if", "mamba:e2e_s>1.5")
    assert result.returncode == 0, result.stderr
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert lines == [f"inconclusive llm:e2e_s>1.10: llm: measured under contention in B ({CONTENDED})"], lines
    assert "passed mamba:e2e_s>1.5: mamba e2e_s B/A 1.000" in result.stdout and "passed llm:" not in result.stdout
    assert "a guarded workload measured under contention in A or B is 'inconclusive'" in result.stdout  # the rule
    table = pd.read_json(out.with_suffix(".json"))
    llm, others = table[table["workload"] == "llm"], table[table["workload"] != "llm"]
    assert len(llm) > 1 and (llm["verdict"] == "inconclusive").all(), llm
    assert (llm["why"] == f"measured under contention in B ({CONTENDED})").all()
    assert llm.loc[llm["metric"] == "e2e_s", "ratio"].iloc[0] == pytest.approx(1.5, rel=1e-3)  # the ratio is still shown
    assert not (others["verdict"] == "inconclusive").any() and others["why"].isna().all()
    assert (table["basis"] == "iterations (bootstrap)").all()  # the golden run has no repeats
    page = out.read_text()
    condition_row = '<td class="l">llm:e2e_s&gt;1.10</td><td class="l">llm</td><td>1.50× ['
    assert condition_row in page and '<td class="l v-inconclusive">inconclusive: measured under contention in B (contended: ' in page
    assert "Failed conditions" not in page and '<th class="l">basis</th>' in page

    # A contended too, and another condition that crosses: that one still fails the command
    contend(a, "llm")
    slow_down(b, "mamba", 2.0)
    both = compare(a, b, "-o", out, "--fail-if", "e2e_s>1.10")
    assert both.returncode == 1
    lines = [x for x in both.stderr.splitlines() if x.strip()]
    assert lines[0] == f"inconclusive e2e_s>1.10: llm: measured under contention in A and B (A: {CONTENDED}; B: {CONTENDED})"
    assert any(x.startswith("FAILED e2e_s>1.10: mamba e2e_s B/A 2.000") for x in lines[1:]), lines


SUITE = """\
name: compare-repeats
device: cpu
seed: 5
measure: {warmup_iters: 1, min_iters: 5, min_seconds: 0.1, max_seconds: 30, sample_hz: 50, count_work: false, trace_ops: false}
workloads:
  - name: toy
    type: toy
    params: {first_s: 0.004, step_s: 0.001, steps: 2}
"""


@pytest.fixture(scope="module")
def repeated(tmp_path_factory) -> Path:
    """A run of one tiny toy workload made with --repeats 2 (read-only: copy it)."""
    _, run = run_suite_text(tmp_path_factory.mktemp("compare-repeats"), SUITE, "--repeats", "2")
    assert [r.status for r in run.workloads["toy"].summary.repeats] == ["ok", "ok"]
    return run.path


def repeat_e2e_medians(run_dir: Path) -> list[float]:
    """Each repeat's median E2E, by hand: the median duration of its measured iteration spans."""
    from profiler import load_run

    out = []
    for r in load_run(run_dir).workloads["toy"].repeats:
        it = r.measured[r.measured["phase"] == "iteration"]
        out.append(float(np.median((it["end_ns"] - it["start_ns"]) / 1e9)))
    return out


def test_runs_with_repeats_are_compared_between_repeats(repeated, tmp_path, compare):
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "ab.html"
    shutil.copytree(repeated, a)
    shutil.copytree(repeated, b)
    for k, factor in ((1, 1.2), (2, 1.5)):  # B's repeats slower by different factors: a spread between repeats
        stretch(b / "toy" / f"repeat-{k}" / "spans.parquet", factor)
    stretch(b / "toy" / "spans.parquet", 1.35)
    result = compare(a, b, "-o", out, "--fail-if", "toy:e2e_s>100")
    assert result.returncode == 0, result.stderr
    table = pd.read_json(out.with_suffix(".json"))
    assert (table["basis"] == "between repeats: 2 vs 2").all(), table[["metric", "basis"]]
    e2e = table[table["metric"] == "e2e_s"].iloc[0]
    # by hand: the ratio of the geometric means of the repeats' medians, Welch t on their logs
    la, lb = np.log(repeat_e2e_medians(a)), np.log(repeat_e2e_medians(b))
    va, vb = la.var(ddof=1) / 2, lb.var(ddof=1) / 2
    df = (va + vb) ** 2 / (va**2 + vb**2)  # n - 1 = 1 on each side
    d, half = lb.mean() - la.mean(), student_t.ppf(0.975, df) * np.sqrt(va + vb)
    assert e2e["ratio"] == pytest.approx(np.exp(d), rel=1e-9)
    assert (e2e["ci_low"], e2e["ci_high"]) == pytest.approx((np.exp(d - half), np.exp(d + half)), rel=1e-9)
    assert e2e["ratio"] == pytest.approx(np.sqrt(1.2 * 1.5), rel=0.01)  # the stretches, up to rounding to whole ns
    contended = any(load_summary(run, "toy")["contention"]["contended"] for run in (a, b))
    assert e2e["verdict"] == ("inconclusive" if contended else "higher" if e2e["ci_low"] > 1 else "no difference")
    page = out.read_text()
    assert "between repeats: 2 vs 2" in page and "geometric" in page

    # one completed repeat in B: no between-repeat interval, the iterations' bootstrap instead
    edit_json(b / "toy" / "summary.json", lambda s: s.update(repeats=s["repeats"][:1]))
    one = compare(a, b, "-o", out)
    assert one.returncode == 0, one.stderr
    assert (pd.read_json(out.with_suffix(".json"))["basis"] == "iterations (bootstrap)").all()


def load_summary(run_dir: Path, workload: str) -> dict:
    return json.loads((run_dir / workload / "summary.json").read_text())
