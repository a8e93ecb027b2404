"""read_measured (the runner's and the report's lean read) agrees with the pandas rule."""

from __future__ import annotations

from profiler.characterize.analysis import MEASURED_COLUMNS, measured_spans
from profiler.measure.store import SPANS, PartWriter, merge_parts, read_frame
from profiler.rundir import WorkloadRun, read_measured


def _write(directory, merged: bool):
    w = PartWriter(directory, SPANS)
    for it in range(6):
        rows = [
            {
                "iteration": it,
                "warmup": it == 0,
                "phase": "step",
                "index": k + 1,
                "start_ns": 10 * k,
                "end_ns": 10 * k + 5,
                "units": 1.0,
                "error": "RuntimeError: boom" if (it == 3 and k == 2) else None,
                "position": float(k),
            }
            for k in range(4)
        ]
        rows.append(
            {"iteration": it, "warmup": it == 0, "phase": "iteration", "index": 0, "start_ns": 0, "end_ns": 40, "units": 0.0, "error": None, "position": None}
        )
        w.extend(rows)
        w.flush()  # one part per iteration: the failed iteration's error is in its own part
    if merged:
        merge_parts(directory, SPANS)


def test_read_measured_from_parts_and_merged_file_matches_the_pandas_rule(tmp_path):
    for merged in (False, True):
        d = tmp_path / f"merged-{merged}"
        d.mkdir()
        _write(d, merged)
        measured, iterations, total = read_measured(d / f"{SPANS}.parquet")
        assert total == 30
        assert sorted(measured["iteration"].unique()) == [1, 2, 4, 5]  # warmup 0 and failed 3 dropped
        assert list(iterations["iteration"]) == [0, 1, 2, 3, 4, 5]  # iteration spans keep warmup and failures
        if merged:
            want = measured_spans(read_frame(d / f"{SPANS}.parquet", MEASURED_COLUMNS))
            assert measured.reset_index(drop=True).equals(want.reset_index(drop=True))
        run = WorkloadRun("w", d, {}, None)
        assert len(run.measured) == len(measured) and len(run.iterations) == 6


def test_an_unreadable_part_is_named_once(tmp_path):
    _write(tmp_path, merged=False)
    bad = tmp_path / f"{SPANS}.part-00099.parquet"
    bad.write_bytes(b"PAR1 not parquet")
    run = WorkloadRun("w", tmp_path, {}, None)
    assert len(run.measured) == 20 and len(run.spans) == 30  # both reads happen; the rest is kept
    assert len(run.problems) == 1 and str(bad) in run.problems[0]


def test_a_deleted_span_table_is_named_not_silently_empty(tmp_path):
    import shutil

    from profiler import load_run
    from tests.conftest import ROOT

    run_dir = tmp_path / "run"
    shutil.copytree(ROOT / "tests" / "data" / "golden-run", run_dir)
    (run_dir / "llm" / "spans.parquet").unlink()
    run = load_run(run_dir)
    assert run.workloads["llm"].measured.empty
    assert any("llm/spans.parquet: missing" in p and "spans were recorded" in p for p in run.all_problems())
    assert not run.workloads["mamba"].measured.empty


def test_a_run_json_without_what_every_profiler_writes_is_named_not_read_as_running_silently(tmp_path):
    import json
    import shutil

    from profiler.rundir import load_run
    from tests.conftest import ROOT

    run_dir = tmp_path / "run"
    shutil.copytree(ROOT / "tests" / "data" / "golden-run", run_dir)
    (run_dir / "run.json").write_text(json.dumps({"schema_version": 2}))
    problems = load_run(run_dir).problems
    for key in ("suite", "device", "status"):
        assert any(f"run.json: no '{key}' (every run.json has one)" in p for p in problems), key
