"""A load run in which no measured request finished is a failure of the system measured, never an ok run: against a
real local HTTP server (tests/openai_server.py) that answers every request with HTTP 500, `profiler run` exits 1 with
one line naming the most common error, the workload is failed in phase `load`, and every request's record stays."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from tests.conftest import cli_in_process
from tests.openai_server import FakeServer

SUITE = """\
name: none-finished
device: cpu
measure: {{max_seconds: 20, sample_hz: 20}}
workloads:
  - name: server
    type: openai_endpoint
    params: {{base_url: "{url}", model: tiny, server: vllm, timeout_s: 5, metrics: false}}
    load: {{pattern: closed, concurrency: 1, requests: 3, sizes: {{input: {{fixed: 4}}, output: {{fixed: 3}}}}}}
"""


def test_a_run_whose_every_request_failed_exits_1_with_the_error_and_keeps_the_records(tmp_path):
    with FakeServer(["http500"]) as server:
        (tmp_path / "suite.yaml").write_text(SUITE.format(url=server.base_url))
        code, out, err = cli_in_process("run", tmp_path / "suite.yaml", "-o", tmp_path / "runs")
    assert code == 1, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "server" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"]["phase"] == "load"
    assert summary["error"]["reason"] == "none of the 3 measured requests sent finished (3 failed); most common error (3): HTTP 500: internal error"
    assert json.loads((run_dir / "server" / "error.json").read_text())["type"] == "NoRequestFinished"
    assert pq.read_table(run_dir / "server" / "requests.parquet").column("status").to_pylist() == ["failed"] * 3
    failed_lines = [line for line in err.splitlines() if line.startswith("failed: server")]
    assert len(failed_lines) == 1 and "most common error (3): HTTP 500: internal error" in failed_lines[0]
