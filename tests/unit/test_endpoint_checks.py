"""The endpoint workload's checks and edges (issue 27, a tester's findings against `transformers serve`), each on a
hand-made case against the local test server (tests/openai_server.py): the generic profile needs no [DONE]; setup and
`validate --probe` send one tiny streamed request with the run's body; the API key never leaves in an error text;
server_pid is checked; setup's errors are plain RuntimeErrors; an explicit metrics_url must be readable; a request cut
off by the load's end keeps the tokens it had."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from profiler.loadconfig import LoadConfig
from profiler.run.serve import serve
from profiler.suite.config import MeasureConfig
from tests.conftest import cli_in_process
from tests.openai_server import FakeServer, setup_context
from workloads.endpoint_check import STREAM_CHECK_TOKENS, redact_key
from workloads.endpoint_stream import SERVERS, Answer, Chunk, http_error_text, outcome
from workloads.openai_endpoint import OpenAIEndpoint

CONFIGS = Path(__file__).parents[2] / "configs"
KEY = "sk-echoed-test-key-91c2"
SUITE = """\
name: s
measure: {{max_seconds: 10, sample_hz: 20}}
workloads:
  - name: ep
    type: openai_endpoint
    params: {{base_url: "{url}", model: tiny{extra}}}
    load: {{pattern: closed, concurrency: 1, requests: {requests}, sizes: {{input: {{fixed: 2}}, output: {{fixed: 3}}}}}}
"""


def params(url: str, **extra) -> OpenAIEndpoint.Params:
    return OpenAIEndpoint.Params.model_validate({"base_url": url, "model": "tiny", **extra})


def cli(tmp_path: Path, command: str, url: str, extra: str = "", requests: int = 1, *flags: str) -> tuple[int, str, str]:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(url=url, extra=extra, requests=requests))
    return cli_in_process(command, suite, *flags)


def refused(tmp_path: Path, command: str, url: str, extra: str = "", requests: int = 1, *flags: str) -> str:
    """The one line of a command that exits 2."""
    code, _, err = cli(tmp_path, command, url, extra, requests, *flags)
    return one_line(code, err)


def one_line(code: int, err: str, status: int = 2) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == status and len(lines) == 1, (code, err)
    return lines[0]


def served(tmp_path: Path, engine: OpenAIEndpoint, requests: int, max_seconds: float, output: int = 3) -> list[dict]:
    """A closed loop of `requests` through the load driver in this process; requests.parquet's rows."""
    engine.setup(setup_context(tmp_path))
    load = {"pattern": "closed", "concurrency": 1, "requests": requests, "sizes": {"input": {"fixed": 2}, "output": {"fixed": output}}}
    measure = MeasureConfig.model_validate({"max_seconds": max_seconds, "min_seconds": 0, "sample_hz": 20})
    try:
        serve(engine, LoadConfig.model_validate(load), None, measure, tmp_path, lambda d, t: None)
    finally:
        engine.teardown()
    return pq.read_table(tmp_path / "requests.parquet").to_pylist()


def set_up(engine: OpenAIEndpoint, tmp_path: Path) -> Any:
    """Set `engine` up and tear it down: the setup context, with the facts it declared."""
    c = setup_context(tmp_path)
    try:
        engine.setup(c)
    finally:
        engine.teardown()
    return c


def setup_error(engine: OpenAIEndpoint, tmp_path: Path) -> str:
    """setup's error: a plain RuntimeError (no class of ours in its text), one line."""
    try:
        with pytest.raises(RuntimeError) as raised:
            engine.setup(setup_context(tmp_path))
    finally:
        engine.teardown()
    assert type(raised.value) is RuntimeError and "\n" not in str(raised.value)
    assert not str(raised.value).startswith(("ServerProblem", "ValueError"))
    return str(raised.value)


# 1. generic: OpenAI's API only, no [DONE] required


def test_a_stream_ended_after_its_finish_reason_is_complete_for_generic_and_failed_for_vllm():
    answer = Answer([Chunk(1, "a", None, None, True), Chunk(2, "b", None, None, True), Chunk(3, "", "length", 2, True)])
    assert outcome(answer, 2, SERVERS["generic"]) == ("finished", None)
    assert outcome(answer, 2, SERVERS["vllm"]) == ("failed", "the stream ended without [DONE] after 2 tokens")
    no_finish = Answer([Chunk(1, "a", None, None, True)])
    assert outcome(no_finish, 1, SERVERS["generic"])[0] == "failed"  # no finish_reason: cut short, whatever the profile
    assert "nothing assumed beyond it" in SERVERS["generic"].source


def test_both_configs_ship_the_generic_profile():
    for name in ("endpoint.yaml", "serving_compare.yaml"):
        (first, *_) = yaml.safe_load((CONFIGS / name).read_text())["workloads"]
        assert first["params"]["server"] == "generic", name


@pytest.mark.parametrize(("mode", "sends_done"), [("ok", False), ("eof", True), ("ok", True)])
def test_generic_finishes_streams_with_and_without_done(tmp_path, mode, sends_done):
    """transformers serve's stream (finish chunk, then the chunked end), a connection closed after the finish chunk
    (no chunked encoding), and vLLM's [DONE]: each a finished request of its 3 tokens."""
    with FakeServer([mode], sends_done=sends_done) as server:
        rows = served(tmp_path, OpenAIEndpoint(params(server.base_url, server="generic", metrics=False)), 2, max_seconds=10)
    assert [(r["status"], len(r["token_ns"])) for r in rows] == [("finished", 3)] * 2


# 2. setup and validate --probe: one tiny streamed request with the run's body


def test_the_probe_streams_one_request_with_the_runs_body(tmp_path):
    with FakeServer() as server:
        code, out, err = cli(tmp_path, "validate", server.base_url, ", server: vllm", 1, "--probe")
    assert code == 0, err
    assert "served (listed by" in out and "streamed 2 token(s)" in out and "data: [DONE]" in out and "warmed the server up" in out
    (body,) = server.checks
    assert body["max_tokens"] == STREAM_CHECK_TOKENS and body["ignore_eos"] is True and body["stream_options"]["continuous_usage_stats"] is True
    assert server.bodies == []


@pytest.mark.parametrize(
    ("kwargs", "extra", "suffix", "needle"),
    [
        (
            {"reject_fields": ("ignore_eos", "min_tokens")},
            ", server: vllm",
            "",
            "refused the field(s) ignore_eos, min_tokens that server: vllm sends (HTTP 422",
        ),
        ({"sends_done": False}, ", server: vllm", "", "without data: [DONE], which server: vllm expects: set server: generic"),
        ({}, "", "without /v1", "answered HTTP 404: does base_url end with /v1?"),
        ({"check_mode": "nodone"}, "", "", "did not end complete: the stream ended without [DONE] after 2 tokens"),
    ],
)
def test_a_check_request_that_fails_is_one_line_at_probe_and_setup(tmp_path, kwargs, extra, suffix, needle):
    with FakeServer(**kwargs) as server:
        url = server.base_url.removesuffix("/v1") if suffix else server.base_url
        line = refused(tmp_path, "validate", url, extra, 1, "--probe")
        assert needle in line, line
        p = yaml.safe_load("{" + extra.lstrip(", ") + "}") or {}
        assert needle in setup_error(OpenAIEndpoint(params(url, **p)), tmp_path)
    assert server.bodies == []


def test_setup_declares_the_check_request_as_a_warm_up(tmp_path):
    with FakeServer(sends_done=False) as server:
        c = set_up(OpenAIEndpoint(params(server.base_url)), tmp_path)
    assert "streamed 2 token(s)" in c.facts["check_request"] and "warms the server up" in c.facts["check_request"]
    assert "no [DONE]" in c.facts["check_request"]


# 3. the API key never leaves in an error text


def test_a_key_the_server_echoes_is_redacted_at_probe_and_setup(tmp_path, monkeypatch):
    """(In a run: test_openai_endpoint.py's profiler run, whose server echoes the key in 401 bodies during the load.)"""
    monkeypatch.setenv("EP_ECHO_KEY", KEY)
    with FakeServer(check_mode="echo_key") as server:
        line = refused(tmp_path, "validate", server.base_url, ", api_key_env: EP_ECHO_KEY", 1, "--probe")
        assert "Incorrect API key provided: ***" in line and KEY not in line
        assert KEY not in setup_error(OpenAIEndpoint(params(server.base_url, api_key_env="EP_ECHO_KEY")), tmp_path)
    assert all(h.get("Authorization") == f"Bearer {KEY}" for h in server.headers)


def test_a_key_cut_inside_an_error_text_is_redacted_too():
    key = "sk-" + "x1y2z3" * 40  # 243 characters: the body's first line is cut to 200 inside it
    said = http_error_text(401, f'{{"error": {{"message": "Incorrect API key provided: {key}"}}}}'.encode())
    assert said.startswith("HTTP 401: ") and key[:100] in said
    assert redact_key(said, key) == 'HTTP 401: {"error": {"message": "Incorrect API key provided: ***'
    assert redact_key("a b", "") == "a b" and redact_key("sk-x1 and sk-x1y2z", key) == "sk-x1 and ***"


# 4. server_pid


def test_a_server_pid_that_does_not_exist_is_one_line_at_validate(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    line = refused(tmp_path, "validate", "http://127.0.0.1:9/v1", f", server_pid: {gone.pid}")
    assert f"server_pid: no process {gone.pid} on this machine: give the running server's pid" in line


def test_an_ancestor_as_server_pid_is_named_as_such_not_the_profiler_itself():
    pid, how = OpenAIEndpoint.local_server(params("http://10.0.0.1/v1", server_pid=os.getppid()))
    assert pid is None and "is an ancestor (" in how and "of this workload's process" in how and "child" not in how
    pid, how = OpenAIEndpoint.local_server(params("http://10.0.0.1/v1", server_pid=os.getpid()))
    assert pid is None and "is this workload's own process" in how


def test_a_server_pid_that_does_not_listen_on_the_port_is_said_and_warned(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with FakeServer() as server:  # listens in this (pytest's) process
            c = set_up(OpenAIEndpoint(params(server.base_url, server_pid=other.pid, metrics=False)), tmp_path)
            port = server.base_url.split(":")[2].split("/")[0]
    finally:
        other.kill()
        other.wait()
    said = f"server_pid {other.pid}'s process tree does not listen on base_url's port {port} (pid {os.getpid()} does): check server_pid"
    assert said in c.facts["local_server"] and c.server is not None and c.server.pid == other.pid
    assert any(said in w for w in c.warnings)


def test_a_server_pid_gone_by_setup_is_one_plain_line(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    with FakeServer() as server:
        p = params(server.base_url, server_pid=proc.pid, metrics=False)
        proc.kill()
        proc.wait()
        line = setup_error(OpenAIEndpoint(p), tmp_path)
    assert line.startswith(f"the local server's process {proc.pid} cannot be read: NoSuchProcess (server_pid): is the server still running?"), line


# 6. metrics_url given explicitly


def test_an_explicit_metrics_url_that_cannot_be_read_is_an_error_the_default_a_fact(tmp_path):
    with FakeServer() as server:  # no /metrics: 404
        url = server.base_url.removesuffix("/v1") + "/metrics"
        line = refused(tmp_path, "validate", server.base_url, f', metrics_url: "{url}"', 1, "--probe")
        assert f"metrics_url {url}: HTTP 404" in line and "set metrics: false" in line
        assert f"metrics_url {url}: HTTP 404" in setup_error(OpenAIEndpoint(params(server.base_url, metrics_url=url)), tmp_path)
        c = set_up(OpenAIEndpoint(params(server.base_url)), tmp_path)
    assert "no metrics" in c.facts["engine_samples"]


# 7. a request cut off by the load's end keeps the tokens it had


def test_a_stalled_request_cut_off_by_the_load_keeps_its_first_token(tmp_path):
    """One chunk, then the server stalls past the load's max_seconds (1 s): the driver marks it timed_out and asks
    Engine.progress: its one token (the chunk's arrival) is kept; scheduled_ns stays None."""
    with FakeServer(["stall"], hang_s=3.0) as server:
        engine = OpenAIEndpoint(params(server.base_url, timeout_s=10))
        (row,) = served(tmp_path, engine, 1, max_seconds=1, output=4)
    assert row["status"] == "timed_out" and len(row["token_ns"]) == 1 and row["scheduled_ns"] is None
    assert engine.progress(0) is None  # no longer open


# 8. model not set: the one model the server lists (configs/endpoint.yaml is then one line from any server)


def test_without_model_the_one_model_the_server_lists_is_used_and_several_are_one_line(tmp_path):
    with FakeServer(models=("served-name",)) as server:
        c = set_up(OpenAIEndpoint(OpenAIEndpoint.Params.model_validate({"base_url": server.base_url})), tmp_path)
    assert c.facts["model"] == "served-name" and c.facts["model_check"].startswith("the one model the server lists (model not set")
    assert [b["model"] for b in server.checks] == ["served-name"]
    with FakeServer(models=("a", "b")) as server:
        line = setup_error(OpenAIEndpoint(OpenAIEndpoint.Params.model_validate({"base_url": server.base_url})), tmp_path / "two")
        (tmp_path / "suite.yaml").write_text(SUITE.format(url=server.base_url, extra="", requests=1).replace(", model: tiny", ""))
        code, _, err = cli_in_process("validate", tmp_path / "suite.yaml", "--probe")
    assert "model is not set and the server at" in line and "serves 2 models: a, b: set model to one of them" in line
    assert code == 2 and "serves 2 models: a, b: set model to one of them" in err
