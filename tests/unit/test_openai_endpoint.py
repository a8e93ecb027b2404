"""The endpoint workload (workloads/openai_endpoint.py) against a real HTTP server on 127.0.0.1 (tests/openai_server.py):
the real client, through the load driver in-process (profiler/run/serve.py: serve) and one `profiler run`. Each fault
is a failed request with its error text; a chunk of k tokens is k tokens; TTFT from the first content; the key is
written nowhere."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from profiler.loadconfig import LoadConfig
from profiler.run.serve import serve
from profiler.suite.config import MeasureConfig
from tests.conftest import cli_in_process
from tests.openai_server import QUEUE_S, WORDS, FakeServer, setup_context
from workloads.endpoint_stream import SERVERS, Answer, Chunk, SseLines, StreamFault, count_tokens, outcome, token_times
from workloads.openai_endpoint import OpenAIEndpoint, redact_url


def params(fake: FakeServer, **extra) -> OpenAIEndpoint.Params:
    return OpenAIEndpoint.Params.model_validate({"base_url": fake.base_url, "model": "tiny", **extra})


def served(tmp_path: Path, engine: OpenAIEndpoint, requests: int, output: int = 6, concurrency: int = 1) -> tuple[dict, dict]:
    """Run a closed loop of `requests` through the driver; (rows by index, the engine's declared facts)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    ctx = setup_context(tmp_path)
    engine.setup(ctx)
    load = {"pattern": "closed", "concurrency": concurrency, "requests": requests, "sizes": {"input": {"fixed": 4}, "output": {"fixed": output}}}
    try:
        serve(
            engine,
            LoadConfig.model_validate(load),
            None,
            MeasureConfig.model_validate({"max_seconds": 20, "min_seconds": 0, "sample_hz": 20}),
            tmp_path,
            lambda d, t: None,
        )
        ctx.declare(**engine.served_facts())  # as the child does after the load (run/child.py: served_facts)
    finally:
        engine.teardown()
    rows = {row["index"]: row for row in pq.read_table(tmp_path / "requests.parquet").to_pylist()}
    return rows, ctx.facts


# the pieces, on hand-made cases


def test_sse_framing_joins_data_lines_and_skips_comments():
    sse = SseLines()
    assert sse.line(": keep-alive", 1) is None and sse.line('data: {"a":', 2) is None and sse.line("event: x", 3) is None
    assert sse.line("data: 1}", 4) is None
    assert sse.line("", 5) == ('{"a":\n1}', 2)
    assert sse.line("", 6) is None


def test_a_role_only_chunk_is_no_token_and_per_chunk_usage_counts_multi_token_chunks():
    role = Chunk(10, "", None, 0, True)
    three = Chunk(20, "a b c", None, 3, True)
    one = Chunk(30, "d", None, 4, True)
    finish = Chunk(31, "", "length", 4, True)
    counts = count_tokens([role, three, one, finish], None)
    assert counts == [(0, "usage"), (3, "usage"), (1, "usage"), (0, "usage")]
    assert token_times([role, three, one, finish], counts) == [20, 20, 20, 30]  # TTFT from the first content; 3 equal times


def test_a_final_usage_is_not_a_chunks_count_and_the_tokenizer_counts_text():
    chunks = [Chunk(10, "", None, None, True), Chunk(20, "a b", None, None, True), Chunk(30, "", "stop", 2, True)]
    assert count_tokens(chunks, None) == [(0, "one_per_chunk"), (1, "one_per_chunk"), (0, "one_per_chunk")]
    assert count_tokens(chunks, lambda text: len(text.split())) == [(0, "one_per_chunk"), (2, "tokenizer"), (0, "one_per_chunk")]


def test_events_that_break_a_request_say_why():
    with pytest.raises(StreamFault, match="malformed stream event"):
        Chunk.parse("{not json", 1, "chat/completions")
    with pytest.raises(StreamFault, match="the server sent an error event: boom"):
        Chunk.parse('{"error": {"message": "boom"}}', 1, "completions")
    assert Chunk.parse('{"choices": [{"text": "hi", "finish_reason": null}]}', 5, "completions") == Chunk(5, "hi", None, None, True)


def test_the_end_of_a_stream_decides_its_status():
    done = Answer(chunks=[Chunk(1, "a", "stop", None, True)], done=True)
    assert outcome(done, 1, SERVERS["vllm"]) == ("finished", None)
    undone = Answer(chunks=[Chunk(1, "a", "stop", None, True)])
    assert outcome(undone, 1, SERVERS["vllm"])[0] == "failed"  # vLLM sends [DONE]: its absence is a fault
    assert outcome(undone, 1, SERVERS["transformers-serve"]) == ("finished", None)  # transformers serve never sends it
    assert (
        outcome(Answer(chunks=[Chunk(1, "a", "abort", None, True)], done=True), 1, SERVERS["vllm"])[1]
        == "the server ended it with finish_reason 'abort' after 1 tokens"
    )


def test_credentials_never_enter_the_params_and_validate_says_so_in_one_line(tmp_path):
    assert redact_url("https://user:secret@host:8443/v1") == "https://***@host:8443/v1"
    cases = [
        ("base_url: 'https://u:secret@h/v1'", "credentials in the URL"),
        ("base_url: 'http://h/v1?api-key=secret'", "no query"),
        ("base_url: 'ftp://h/v1'", "http://host:port/v1"),
        ("base_url: 'http://h/v1', api_key_env: 'sk-secret 1'", "NAME of an environment variable"),
    ]
    for i, (given, needle) in enumerate(cases):
        suite = tmp_path / f"s{i}.yaml"
        load = "{pattern: closed, concurrency: 1, requests: 1, sizes: {input: {fixed: 2}, output: {fixed: 2}}}"
        suite.write_text(f"name: s\nworkloads:\n  - name: e\n    type: openai_endpoint\n    params: {{{given}, model: m}}\n    load: {load}\n")
        code, out, err = cli_in_process("validate", suite)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and needle in lines[0] and "secret" not in out + err, (code, err)


# through the load driver, against the test server

FAULTS = ["ok", "multi", "early", "http500", "http429", "reset", "malformed", "error_event", "nodone", "hang"]


def test_each_fault_is_a_failed_request_and_the_run_goes_on(tmp_path):
    with FakeServer(FAULTS, hang_s=1.5) as server:
        rows, facts = served(tmp_path, OpenAIEndpoint(params(server, server="vllm", timeout_s=0.5)), len(FAULTS))
    by = {mode: rows[i] for i, mode in enumerate(FAULTS)}
    assert [by[m]["status"] for m in ("ok", "multi", "early")] == ["finished"] * 3
    assert len(by["ok"]["token_ns"]) == 6 and by["ok"]["scheduled_ns"] is None  # the role-only chunk is no token; queueing unseen
    multi = by["multi"]["token_ns"]
    assert len(multi) == 6 and multi[0] == multi[1] == multi[2] < multi[3] == multi[4] == multi[5]  # two chunks of 3 tokens
    assert len(by["early"]["token_ns"]) == 3  # stopped early: its real length
    errors = {m: by[m]["error"] for m in FAULTS[3:]}
    assert errors["http500"] == "HTTP 500: internal error"
    assert errors["http429"].startswith("HTTP 429 (rate limited): {")
    assert errors["reset"].startswith("the connection broke mid-stream after")
    assert errors["malformed"].startswith("malformed stream event")
    assert errors["error_event"] == "the server sent an error event: boom"
    assert errors["nodone"] == "the stream ended without [DONE] after 6 tokens"
    assert errors["hang"].startswith("client timeout")
    assert all(by[m]["status"] == "failed" for m in FAULTS[3:])
    stream = facts["stream"]
    assert stream["stopped_early"] == 1 and stream["usage_mismatches"] == 0 and stream["tokens_by_method"]["one_per_chunk"] == 0
    body = server.bodies[0]
    assert body["max_tokens"] == 6 and body["ignore_eos"] is True and body["min_tokens"] == 6 and body["stream_options"]["continuous_usage_stats"]


def test_without_usage_or_tokenizer_a_chunk_is_one_token_and_the_final_usage_shows_the_mismatch(tmp_path):
    with FakeServer(["multi", "ok"]) as server:
        rows, facts = served(tmp_path, OpenAIEndpoint(params(server, server="generic")), 2)
    assert len(rows[0]["token_ns"]) == 2 and len(rows[1]["token_ns"]) == 6
    assert facts["stream"]["usage_checked"] == 2 and facts["stream"]["usage_mismatches"] == 1
    assert "ignore_eos" not in server.bodies[0] and "continuous_usage_stats" not in server.bodies[0]["stream_options"]


def word_tokenizer(path: Path) -> Path:
    """A word-level fast tokenizer over the test server's words and the prompts' (built here, never downloaded)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from workloads.openai_endpoint import WORDS as PROMPT_WORDS

    vocab = {w: i for i, w in enumerate(["[UNK]", *sorted(set(WORDS) | set(PROMPT_WORDS))])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(path)
    return path


def test_a_local_tokenizer_counts_each_chunks_tokens_and_makes_exact_prompts(tmp_path):
    tokenizer = word_tokenizer(tmp_path / "tok")
    with FakeServer(["multi"]) as server:
        rows, facts = served(tmp_path, OpenAIEndpoint(params(server, api="completions", tokenizer=str(tokenizer))), 2)
    assert [len(r["token_ns"]) for r in rows.values()] == [6, 6]
    assert facts["stream"]["tokens_by_method"]["tokenizer"] == 12 and facts["stream"]["usage_mismatches"] == 0
    assert len(server.bodies[0]["prompt"].split()) == 4  # exactly 4 tokens by the local tokenizer (no special tokens)
    # the test server counts a BOS the local tokenizer lacks: its usage (5) is the recorded count, the difference tallied
    assert [(r["input_tokens"], r["input_tokens_by"]) for r in rows.values()] == [(5, "server_usage")] * 2
    assert facts["stream"]["prompt_count_mismatches"] == 2 and facts["stream"]["prompts_by"]["server_usage"] == 2


def test_the_transformers_serve_profile_sends_nothing_it_rejects(tmp_path):
    kwargs = {"reject_fields": ("ignore_eos", "min_tokens"), "sends_done": False}
    with FakeServer(["ok"], **kwargs) as server:
        rows, facts = served(tmp_path / "tf", OpenAIEndpoint(params(server, server="transformers-serve")), 2)
    assert [r["status"] for r in rows.values()] == ["finished", "finished"] and facts["stream"]["usage_mismatches"] == 0
    with FakeServer(["ok"], **kwargs) as server:  # the wrong kind: setup's check request is refused, one line
        engine = OpenAIEndpoint(params(server, server="vllm"))
        try:
            with pytest.raises(RuntimeError, match=r"refused the field\(s\) ignore_eos, min_tokens that server: vllm sends \(HTTP 422: .*set server: generic"):
                engine.setup(setup_context(tmp_path))
        finally:
            engine.teardown()
    assert server.bodies == []  # nothing of the load was sent


@pytest.mark.parametrize(
    ("server_kwargs", "extra", "env", "needle"),
    [
        ({}, {"model": "nope"}, {}, "does not serve model 'nope'; it serves: tiny"),
        ({"api_key": "k"}, {"api_key_env": "EP_TEST_KEY"}, {"EP_TEST_KEY": "wrong"}, "refused the API key (HTTP 401)"),
        ({}, {"api_key_env": "EP_TEST_UNSET"}, {}, "EP_TEST_UNSET is not set"),
    ],
)
def test_bad_setups_are_one_line(tmp_path, monkeypatch, server_kwargs, extra, env, needle):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("EP_TEST_UNSET", raising=False)
    with FakeServer(**server_kwargs) as server:
        engine = OpenAIEndpoint(params(server, **extra))
        try:
            with pytest.raises(RuntimeError, match=needle.replace("(", r"\(").replace(")", r"\)")):
                engine.setup(setup_context(tmp_path))
        finally:
            engine.teardown()


def test_an_unreachable_server_is_one_line(tmp_path):
    with FakeServer() as server:
        url = server.base_url  # the port is free again once the server is closed
    engine = OpenAIEndpoint(OpenAIEndpoint.Params.model_validate({"base_url": url, "model": "tiny"}))
    try:
        with pytest.raises(RuntimeError, match="nothing accepts connections at .*connection refused.*is the server running"):
            engine.setup(setup_context(tmp_path))
    finally:
        engine.teardown()


# one `profiler run`

SUITE = """\
name: endpoint
device: cpu
measure: {{max_seconds: 20, sample_hz: 20}}
workloads:
  - name: server
    type: openai_endpoint
    params: {{base_url: "{url}", model: tiny, server: vllm, api_key_env: EP_RUN_KEY, timeout_s: 5}}
    load: {{pattern: closed, concurrency: 2, requests: 6, sizes: {{input: {{fixed: 4}}, output: {{fixed: 5}}}}}}
"""
KEY = "sk-endpoint-test-7f3a9c"


RECORDED = Path(__file__).parents[1] / "data" / "vllm" / "0.32.0" / "metrics_idle.txt"
"""vLLM 0.32.0's /metrics before any request, recorded from `vllm serve` (its README); served as the test server's with
the model renamed and its counters advanced by what it served (tests/openai_server.py: ServedCounts)."""


def test_a_profiler_run_against_a_server_keeps_every_request_and_no_key(tmp_path, monkeypatch):
    monkeypatch.setenv("EP_RUN_KEY", KEY)
    metrics = RECORDED.read_text().replace('model_name="/tmp/vrec/model"', 'model_name="tiny"')
    with FakeServer(["ok", "multi", "echo_key"], api_key=KEY, metrics=metrics) as server:  # echo_key: a 401 whose body holds the key
        (tmp_path / "suite.yaml").write_text(SUITE.format(url=server.base_url))
        code, out, err = cli_in_process("run", tmp_path / "suite.yaml", "-o", tmp_path / "runs")
    assert code == 0, err
    assert all(h.get("Authorization") == f"Bearer {KEY}" for h in server.headers)
    (run_dir,) = (tmp_path / "runs").iterdir()
    table = pq.read_table(run_dir / "server" / "requests.parquet").to_pandas()
    assert sorted(table["status"]) == ["failed"] * 2 + ["finished"] * 4
    finished = table[table["status"] == "finished"]
    assert (finished["token_ns"].map(len) == 5).all() and finished["scheduled_ns"].isna().all()
    echoed = 'HTTP 401: {"error": {"message": "Incorrect API key provided: ***. You can find your API key at ..."}}'
    assert (table[table["status"] == "failed"]["error"] == echoed).all()  # the key redacted (openai_endpoint.redact)
    server_metrics_shown(run_dir)
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in out + err + " ".join(os.environ.get("PYTEST_CURRENT_TEST", ""))


def server_metrics_shown(run_dir: Path) -> None:
    """The server's /metrics in the run: engine samples from its gauges, this run's deltas in the summary (by hand: the
    4 finished requests of 6 (2 are HTTP 401s), each 4 prompt words and the chat template's CHAT_TEMPLATE_TOKENS = 7
    prompt tokens, half of them rounded down (3) prefix hits by the test server's rule, 5 tokens, QUEUE_S queued; the
    window holds every request: none is warmup), the report's table."""
    summary = json.loads((run_dir / "server" / "summary.json").read_text())
    r = summary["serving"]["server_reported"]
    assert (r["prompt_tokens"], r["generation_tokens"], r["queue_requests"], r["preemptions"]) == (28, 20, 4, 0)
    assert r["prefix_cache_hit_rate"] == pytest.approx(12 / 28) and r["queue_s_mean"] == pytest.approx(QUEUE_S)
    assert r["draft_acceptance_rate"] is None and "does not speculate" in r["unavailable"]["draft_acceptance_rate"]
    facts = summary["facts"]["server_metrics"]
    assert facts["load"]["server_prompt_tokens"] == 28 and facts["load"]["client_input_tokens"] == 24  # 6 requests asked for
    assert facts["load"]["server_generation_tokens"] == facts["load"]["client_output_tokens"] == 20
    assert facts["cost"]["scrapes"] >= 2 and facts["cost"]["failed"] == 0 and summary["facts"]["stream"]["requests_ended"] == 6
    engine = pq.read_table(run_dir / "server" / "engine.parquet").to_pandas()
    assert engine["running"].notna().all() and engine["kv_usage"].notna().all() and engine["kv_bytes_total"].isna().all()
    html = (run_dir / "report.html").read_text()
    assert "What the server reported" in html and "server-reported" in html
