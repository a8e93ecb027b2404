"""A failing workload never takes the suite down, and never loses what was measured before."""

from __future__ import annotations

import pytest

from tests.conftest import run_suite_text

FAULTY = "tests.plugins.faulty:Faulty"

SUITE = f"""\
name: faults
device: cpu
measure: {{warmup_iters: 1, min_iters: 8, min_seconds: 0, max_seconds: 3, hang_grace_s: 1.5, sample_hz: 20}}
workloads:
  - {{name: raise-setup, type: "{FAULTY}", params: {{fail_in: setup}}}}
  - {{name: raise-run, type: "{FAULTY}", params: {{fail_in: run_once, ok_iters: 3}}}}
  - {{name: raise-teardown, type: "{FAULTY}", params: {{fail_in: teardown, ok_iters: 1}}}}
  - {{name: oom, type: "{FAULTY}", params: {{mode: oom, ok_iters: 2}}}}
  - {{name: killed, type: "{FAULTY}", params: {{mode: kill, ok_iters: 4, step_s: 0.1}}}}
  - {{name: hang, type: "{FAULTY}", params: {{mode: hang, ok_iters: 2}}}}
  - {{name: "<script>alert(1)</script>", type: toy, params: {{steps: 3}}}}
"""


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory):
    return run_suite_text(tmp_path_factory.mktemp("faults"), SUITE, timeout=240, expect_ok=False)


def test_suite_goes_on_and_exits_1_with_one_line_per_failure(fault_run):
    result, run = fault_run
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    failed_lines = [line for line in result.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failed_lines) == 6 and any("raise-setup: failed in setup" in line for line in failed_lines)
    statuses = {name: w.status for name, w in run.workloads.items()}
    assert statuses == {
        "raise-setup": "failed",
        "raise-run": "failed",
        "raise-teardown": "failed",
        "oom": "failed",
        "killed": "failed",
        "hang": "failed",
        "<script>alert(1)</script>": "ok",
    }


@pytest.mark.parametrize(
    "name, phase, reason",
    [
        ("raise-setup", "setup", "RuntimeError: planted failure"),
        ("raise-run", "measure", "RuntimeError: planted failure"),
        ("raise-teardown", "teardown", "RuntimeError: planted failure"),
        ("oom", "measure", "out of memory"),
        ("killed", "measure", "killed by SIGKILL"),
        ("hang", "measure", "hung: no progress for 4 s in phase 'measure' (limit: max_seconds + hang_grace_s; the last span ended"),
    ],
)
def test_failure_records_phase_reason_traceback(fault_run, name, phase, reason):
    _, run = fault_run
    w = run.workloads[name]
    assert w.error.phase == phase
    assert reason in w.error.reason
    assert w.summary.error.reason == w.error.reason
    if name not in ("killed", "hang"):
        assert "Traceback" in w.error.traceback and "_fault" in w.error.traceback


@pytest.mark.parametrize("name, min_ok_iterations", [("raise-run", 3), ("raise-teardown", 8), ("oom", 2), ("killed", 3), ("hang", 2)])
def test_spans_before_the_fault_are_kept(fault_run, name, min_ok_iterations):
    _, run = fault_run
    spans = run.workloads[name].spans
    done = spans.query("phase == 'iteration' and error.isna()", engine="python")
    assert len(done) >= min_ok_iterations


def test_report_shows_failures_and_escapes_names(fault_run):
    _, run = fault_run
    page = (run.path / "report.html").read_text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "failed in phase <code>setup</code>" in page
    assert "killed by SIGKILL" in page


def test_a_bug_in_the_parents_analysis_is_a_stated_problem_not_a_lost_suite(tmp_path, monkeypatch, capsys):
    """The parent runs in this process (the child is spawned fresh, unaffected): the work analysis
    is made to raise, and the suite still finishes, the workload keeps its latency summary, and the
    problem is stated where the report shows it."""
    import profiler.characterize.summary
    from profiler import load_run
    from profiler.cli import main

    def broken(*args, **kwargs):
        raise KeyError("planted analysis bug")

    monkeypatch.setattr(profiler.characterize.summary, "work_by_phase", broken)
    (tmp_path / "suite.yaml").write_text(
        "name: bug\ndevice: cpu\nmeasure: {warmup_iters: 0, min_iters: 3, min_seconds: 0, max_seconds: 20, trace_ops: false}\n"
        "workloads:\n  - {name: toy, type: toy, params: {steps: 3}}\n  - {name: second, type: toy, params: {steps: 2}}\n"
    )
    assert main(["run", str(tmp_path / "suite.yaml"), "-o", str(tmp_path / "runs")]) == 0
    assert "Traceback" not in capsys.readouterr().err
    run = load_run(next((tmp_path / "runs").iterdir()))
    for w in run.workloads.values():
        assert w.summary.status == "ok" and w.summary.metrics.e2e_s.count == 3
        assert any("work analysis failed" in p and "planted analysis bug" in p for p in w.summary.problems)
        assert "its analysis failed" in w.summary.unavailable["work"]
    assert "planted analysis bug" in (run.path / "report.html").read_text()


def test_a_profiler_bug_between_workloads_marks_the_run_failed_reports_and_exits_1(tmp_path, monkeypatch, capsys):
    """An exception outside the guarded analysis (here: the second workload's finish step) must not
    leave run.json saying `complete`: the run is `failed` with the reason and traceback, the
    workloads measured before are reported, and the terminal gets one line, exit 1."""
    import profiler.run.runner
    from profiler import load_run
    from profiler.cli import main

    real_finish = profiler.run.runner.finish_workload
    calls = []

    def finish_then_break(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("planted runner bug")
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(profiler.run.runner, "finish_workload", finish_then_break)
    (tmp_path / "suite.yaml").write_text(
        "name: bug\ndevice: cpu\nmeasure: {warmup_iters: 0, min_iters: 2, min_seconds: 0, max_seconds: 20, count_work: false, trace_ops: false}\n"
        "workloads:\n  - {name: first, type: toy, params: {steps: 3}}\n  - {name: second, type: toy}\n  - {name: third, type: toy}\n"
    )
    assert main(["run", str(tmp_path / "suite.yaml"), "-o", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "planted runner bug" in err and len([x for x in err.splitlines() if x.startswith("error:")]) == 1
    run = load_run(next((tmp_path / "runs").iterdir()))
    assert run.info.status == "failed" and "planted runner bug" in run.info.error.reason and "Traceback" in run.info.error.traceback
    assert [e.status for e in run.info.workloads] == ["ok", "not finished", "pending"]
    assert run.workloads["first"].summary.status == "ok"
    page = (run.path / "report.html").read_text()
    assert "planted runner bug" in page and "<b>failed</b>" in page
