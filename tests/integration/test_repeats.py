"""`run --repeats N`: the suite runs N times with workloads interleaved, each repeat in its own
directory, pooled beside them, read back by load_run, and compared between repeats."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from profiler.runmodel import Verdict
from reports.characteristics import Value
from reports.differences import between_repeats
from tests.conftest import assert_one_line_error, run_cli, run_suite_text

SUITE = """\
name: repeats
device: cpu
seed: 5
baseline: slow
measure: {warmup_iters: 1, min_iters: 5, min_seconds: 0.2, max_seconds: 30, sample_hz: 50, count_work: false, trace_ops: false}
workloads:
  - name: slow
    type: toy
    params: {first_s: 0.02, step_s: 0.004, steps: 3}
  - name: fast
    type: toy
    params: {first_s: 0.01, step_s: 0.002, steps: 3}
"""


@pytest.fixture(scope="module")
def repeated(tmp_path_factory):
    return run_suite_text(tmp_path_factory.mktemp("repeats"), SUITE, "--repeats", "3")


def test_layout_interleaving_and_pooled_rows(repeated):
    _, run = repeated
    assert run.info.status == "complete"
    starts = []
    for name in ("slow", "fast"):
        w = run.workloads[name]
        assert [r.repeat for r in w.summary.repeats] == [1, 2, 3] and all(r.status == "ok" for r in w.summary.repeats)
        parts = [pq.read_table(w.path / f"repeat-{k}" / "spans.parquet").to_pandas() for k in (1, 2, 3)]
        pooled = pq.read_table(w.path / "spans.parquet").to_pandas()
        assert len(pooled) == sum(len(p) for p in parts) and sorted(pooled["repeat"].unique()) == [1, 2, 3]
        # iterations stay unique across repeats, so per-request metrics never merge two repeats' requests
        assert pooled.groupby("iteration")["repeat"].nunique().max() == 1
        assert w.summary.metrics.e2e_s.count == sum(r.summary.metrics.e2e_s.count for r in w.repeats)
        assert [r.name for r in w.repeats] == [f"{name} (repeat {k})" for k in (1, 2, 3)]
        starts.append([p["start_ns"].min() for p in parts])
    slow, fast = starts
    # interleaved: slow 1, fast 1, slow 2, fast 2, slow 3, fast 3
    assert slow[0] < fast[0] < slow[1] < fast[1] < slow[2] < fast[2]


def test_differences_use_the_variation_between_repeats(repeated):
    _, run = repeated
    import pandas as pd

    table = pd.read_csv(run.path / "differences.csv")
    e2e = table.loc[(table["workload"] == "fast") & (table["characteristic"] == "latency_e2e")].iloc[0]
    assert "between repeats: 3 vs 3" in e2e["basis"]
    if any(w.summary.contention.contended for w in run.workloads.values()):  # a busy machine: no claim, and the reason
        assert e2e["verdict"] == "inconclusive" and "contention" in e2e["why_unavailable"]
    else:
        assert e2e["ratio"] == pytest.approx(0.5, rel=0.15)  # 10+2*2 ms against 20+2*4 ms of busy waiting
        assert e2e["verdict"] == "lower"


def test_between_repeats_is_welch_on_log_values():
    ws = [Value(v) for v in (1.0, 1.1, 0.9)]
    bs = [Value(v) for v in (2.0, 2.2, 1.8)]
    c = between_repeats(ws, bs)
    assert c.ratio == pytest.approx(0.5) and c.verdict == Verdict.LOWER
    logs = np.log([1.0, 1.1, 0.9])
    half = 2.776 * np.sqrt(2 * logs.var(ddof=1) / 3)  # equal variances: df = 4, t(0.975, 4) = 2.776
    assert c.ci95 == pytest.approx((0.5 * np.exp(-half), 0.5 * np.exp(half)), rel=1e-3)
    wide = between_repeats([Value(v) for v in (1.0, 3.0)], [Value(v) for v in (1.0, 2.5)])
    assert wide.verdict == Verdict.INCONCLUSIVE and "too wide" in wide.why
    one = between_repeats([Value(1.0)], bs)
    assert one.verdict == Verdict.INCONCLUSIVE and "too few repeats" in one.why


def test_repeats_must_be_a_positive_count(write_suite):
    suite = write_suite(SUITE)
    assert_one_line_error(run_cli("run", suite, "--repeats", "0"), "repeats")


def test_ctrl_c_during_repeats_keeps_what_was_measured(tmp_path):
    """Interrupted in the middle of repeat 1: its measured iterations are pooled and reported, the repeats that never ran
    are named, the run is marked interrupted."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from profiler import load_run
    from tests.conftest import ROOT

    (tmp_path / "suite.yaml").write_text(SUITE.replace("min_seconds: 0.2", "min_seconds: 60").replace("max_seconds: 30", "max_seconds: 120"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "profiler", "run", str(tmp_path / "suite.yaml"), "-o", str(tmp_path / "runs"), "--repeats", "3"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list((tmp_path / "runs").glob("*/slow/repeat-1/spans.part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    slow = load_run(run_dir).workloads["slow"]
    assert slow.summary.metrics.e2e_s is not None and slow.summary.metrics.e2e_s.count >= 1
    assert any("repeat 1 of 3: interrupted" in p and "kept" in p for p in slow.summary.problems), slow.summary.problems
    assert any("only 1 of 3 repeats ran" in p for p in slow.summary.problems)
    assert (run_dir / "report.html").is_file()
