"""A URL's credentials given on the command line never reach the console: the error line that quotes a `--set` flag
shows them as *** (profiler/errors.py: one_line, which every one-line error goes through)."""

from __future__ import annotations

from tests.conftest import cli_in_process

SUITE = """\
name: masked
device: cpu
workloads:
  - name: server
    type: openai_endpoint
    params: {base_url: "http://127.0.0.1:9/v1", model: tiny}
    load: {pattern: closed, concurrency: 1, requests: 2, sizes: {input: {fixed: 4}, output: {fixed: 2}}}
"""


def test_a_password_in_a_set_url_is_not_printed(tmp_path):
    (tmp_path / "suite.yaml").write_text(SUITE)
    flag = "workloads.0.params.base_url=http://user:sk-SETCANARY-1@127.0.0.1:8000/v1"
    for command in ("validate", "run"):
        code, out, err = (
            cli_in_process(command, tmp_path / "suite.yaml", "--set", flag, "-o", tmp_path / "runs")
            if command == "run"
            else cli_in_process(command, tmp_path / "suite.yaml", "--set", flag)
        )
        assert code == 2 and "SETCANARY" not in out + err, err
        assert "http://***@127.0.0.1:8000/v1" in err and len(err.strip().splitlines()) == 1
