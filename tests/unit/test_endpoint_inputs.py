"""The endpoint workload's inputs and bad input (workloads/openai_endpoint.py, endpoint_prompts.py, endpoint_check.py):
prompts of exact length by the server's tokenize route and how each request's count is known; logprobs as a counting
method; `validate --probe` (one line, exit 2) for an unreachable URL, a wrong model, a missing or rejected key and a TLS
failure, and no network at all without --probe; the client's declared resources. Against tests/openai_server.py on
127.0.0.1 (HTTPS with a certificate made here)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from profiler.loadconfig import LoadConfig
from profiler.plugin import ServedRequest
from profiler.run.serve import serve
from profiler.suite.config import MeasureConfig
from tests.conftest import cli_in_process
from tests.openai_server import CHAT_TEMPLATE_TOKENS, FakeServer, setup_context
from workloads.endpoint_prompts import ROUTES, fit_words
from workloads.endpoint_stream import Answer, Chunk, count_tokens
from workloads.openai_endpoint import OpenAIEndpoint


def params(fake: FakeServer, **extra) -> OpenAIEndpoint.Params:
    return OpenAIEndpoint.Params.model_validate({"base_url": fake.base_url, "model": "tiny", "find_local_server": False, **extra})


def served(tmp_path: Path, engine: OpenAIEndpoint, requests: int, input_tokens: int = 4, output: int = 6) -> tuple[list[dict], dict]:
    """A closed loop of `requests` (one at a time) through the driver: (rows in index order, the engine's facts)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    ctx = setup_context(tmp_path)
    engine.setup(ctx)
    sizes = {"input": {"fixed": input_tokens}, "output": {"fixed": output}}
    load = {"pattern": "closed", "concurrency": 1, "requests": requests, "sizes": sizes}
    try:
        measure = MeasureConfig.model_validate({"max_seconds": 20, "min_seconds": 0, "sample_hz": 20})
        serve(engine, LoadConfig.model_validate(load), None, measure, tmp_path, lambda d, t: None)
        ctx.declare(**engine.served_facts())  # as the child does after the load (run/child.py)
    finally:
        engine.teardown()
    rows = sorted(pq.read_table(tmp_path / "requests.parquet").to_pylist(), key=lambda r: r["index"])
    return rows, ctx.facts


# the pieces, on hand-made cases


def test_fit_words_moves_by_the_difference_and_keeps_the_nearest_count():
    calls: list[int] = []

    def template_of_3(words: int) -> int:
        calls.append(words)
        return words + 3

    assert fit_words(10, 10, template_of_3) == (7, 10, 2) and calls == [10, 7]  # 13 tokens: 3 words too many; then exact
    # a word of two tokens from the 6th on: 9 is unreachable (5 words: 8, 6 words: 10); the tie goes to the smaller count
    assert fit_words(9, 9, lambda w: w + 3 + (w >= 6)) == (5, 8, 3)
    assert fit_words(4, 1, lambda w: w, rounds=1) == (1, 1, 1)  # at most `rounds` calls


def test_each_servers_tokenize_route_takes_and_answers_its_own_shape():
    vllm, sglang, llama, tgi = ROUTES["vllm"], ROUTES["sglang"], ROUTES["llama.cpp"], ROUTES["tgi"]
    assert vllm.request("m", "a b", chat=False) == ("/tokenize", {"model": "m", "prompt": "a b", "add_special_tokens": True})
    assert vllm.request("m", "a b", chat=True) == ("/tokenize", {"model": "m", "messages": [{"role": "user", "content": "a b"}], "add_generation_prompt": True})
    assert vllm.count({"count": 5, "max_model_len": 9, "tokens": [1, 2, 3, 4, 5]}, chat=True) == 5
    assert sglang.request("m", "a b", chat=True) is None  # no messages form: a chat template is not counted by it
    assert llama.request("m", "a b", chat=False) == ("/tokenize", {"content": "a b", "add_special": True})
    assert llama.count({"tokens": [7, 8]}, chat=False) == 2
    assert tgi.request("m", "a b", chat=False) == ("/tokenize", {"inputs": "a b"})
    assert tgi.count([{"id": 1, "text": "a", "start": 0, "stop": 1}], chat=False) == 1
    assert tgi.count({"tokenize_response": [{"id": 1}, {"id": 2}], "templated_text": "<s>a"}, chat=True) == 2
    with pytest.raises(ValueError, match="no token list"):
        vllm.count({"detail": "Not Found"}, chat=False)


def test_a_chunks_logprobs_count_its_tokens_even_one_without_text():
    chat = '{"choices": [{"delta": {"content": "a"}, "logprobs": {"content": [{"token": "a"}, {"token": ""}]}}]}'
    completions = '{"choices": [{"text": "a b", "logprobs": {"tokens": ["a", " b", ""], "token_logprobs": [0, 0, 0]}}]}'
    chunks = [Chunk.parse(chat, 1, "chat/completions"), Chunk.parse(completions, 2, "completions")]
    assert [c.logprob_tokens for c in chunks] == [2, 3]
    assert count_tokens(chunks, lambda text: 99) == [(2, "logprobs"), (3, "logprobs")]  # before the tokenizer


# through the load driver, against the test server


def test_the_tokenize_route_fits_chat_prompts_with_their_template_and_the_servers_usage_is_recorded(tmp_path):
    with FakeServer(["ok"], tokenize=True) as server:
        rows, facts = served(tmp_path, OpenAIEndpoint(params(server, server="vllm")), 3, input_tokens=8)
        calls = server.tokenize_calls
    assert [len(b["messages"][0]["content"].split()) for b in server.bodies] == [8 - CHAT_TEMPLATE_TOKENS] * 3
    # setup's two calls: one word (4 = the template's 3 + 1) and every word of the list (one token each): none in the load
    assert calls == 2 and facts["stream"]["tokenize_calls_in_load"] == 0
    assert [(r["input_tokens"], r["input_tokens_by"]) for r in rows] == [(8, "server_usage")] * 3
    stream = facts["stream"]
    assert stream["prompt_count_mismatches"] == 0 and stream["prompts_off_target"] == 0 and stream["tokenize_calls"] == 2
    route = facts["tokenize_route"]
    assert route.startswith("POST http://127.0.0.1:") and route.endswith(
        "/tokenize: works; overhead (template and special tokens) 3 tokens; each of the list's 53 words one token: no call during the load"
    )
    assert "by the server's tokenize route calibrated at setup" in facts["prompts"]


def test_a_word_of_two_tokens_shows_in_the_servers_count_not_silently(tmp_path):
    # completions: BOS + 6 words = 7. Request 2's words (from the 15th of the list) include 'which', two tokens here
    with FakeServer(["ok"], tokenize=True, long_words=frozenset({"which"})) as server:
        rows, facts = served(tmp_path, OpenAIEndpoint(params(server, server="vllm", api="completions")), 3, input_tokens=7)
    assert "the list's 53 words are 54 tokens here: each new length is fitted during the load" in facts["tokenize_route"]
    assert facts["stream"]["tokenize_calls"] == 3 and facts["stream"]["tokenize_calls_in_load"] == 1  # 6 words: 7, at once
    assert [len(b["prompt"].split()) for b in server.bodies] == [6, 6, 6] and "which" in server.bodies[2]["prompt"].split()
    assert [r["input_tokens"] for r in rows] == [7, 7, 8] and {r["input_tokens_by"] for r in rows} == {"server_usage"}
    assert facts["stream"]["prompt_count_mismatches"] == 1 and facts["stream"]["prompts_off_target"] == 1


def test_without_a_route_or_usage_the_prompt_length_is_unknown_and_its_bound_stated():
    engine = OpenAIEndpoint(OpenAIEndpoint.Params.model_validate({"base_url": "http://127.0.0.1:9/v1", "model": "m", "server": "transformers-serve"}))
    request = ServedRequest(index=0, input_tokens=5, output_tokens=2)
    assert engine.prompt(request) == "the of and to in"
    assert engine.prompt_count(request, Answer(chunks=[Chunk(1, "a", "stop", 1, True)])) == (None, "unknown")
    assert "approximate" in engine.prompt_method() and "at most 6 x input_tokens" in engine.prompt_method()
    assert engine.route_state == "none: the server's profile names no tokenize route"


def test_a_route_the_server_lacks_is_not_used_and_says_why(tmp_path):
    with FakeServer(["ok"]) as server:  # no /tokenize: 404
        rows, facts = served(tmp_path, OpenAIEndpoint(params(server, server="vllm")), 1)
    assert facts["tokenize_route"].startswith("not used: the tokenize route http://127.0.0.1:") and "HTTP 404" in facts["tokenize_route"]
    assert rows[0]["input_tokens_by"] == "server_usage"  # the usage still gives the exact count


def test_logprobs_count_tokens_that_have_no_text_where_one_per_chunk_cannot(tmp_path):
    with FakeServer(["hidden"], logprobs=True) as server:
        rows, facts = served(tmp_path / "lp", OpenAIEndpoint(params(server, server="vllm", logprobs=True)), 2)
    body = server.bodies[0]
    assert body["logprobs"] is True and body["top_logprobs"] == 0 and "continuous_usage_stats" not in body["stream_options"]
    assert [len(r["token_ns"]) for r in rows] == [6, 6]
    stream = facts["stream"]
    assert stream["tokens_by_method"]["logprobs"] == 12 and stream["usage_checked"] == 2 and stream["usage_mismatches"] == 0
    assert facts["logprobs"].startswith("requested (logprobs: true, top_logprobs: 0)") and "70 bytes" in facts["logprobs"]
    with FakeServer(["hidden"], logprobs=True) as server:
        rows, facts = served(tmp_path / "generic", OpenAIEndpoint(params(server, server="generic")), 1)
    assert "logprobs" not in server.bodies[0] and len(rows[0]["token_ns"]) == 3 and facts["stream"]["usage_mismatches"] == 1
    with FakeServer(["ok"], logprobs=True) as server:
        served(tmp_path / "cmpl", OpenAIEndpoint(params(server, server="vllm", api="completions", logprobs=True)), 1)
    assert server.bodies[0]["logprobs"] == 1
    with pytest.raises(ValueError, match="server 'transformers-serve' is not known to stream one logprobs entry per token"):
        OpenAIEndpoint.Params.model_validate({"base_url": "http://h/v1", "model": "m", "server": "transformers-serve", "logprobs": True})


def test_the_client_declares_this_machines_cpu_and_no_gpu_and_the_servers_devices_as_given():
    p = OpenAIEndpoint.Params.model_validate({"base_url": "http://h/v1", "model": "m"})
    resources = OpenAIEndpoint.declaration(p).resources
    assert (resources.cpu_cores, resources.gpus) == (1, 0)
    engine = OpenAIEndpoint(p)
    assert engine.setup_facts("x", "y")["server_devices"].startswith("unknown (server_devices not given)")
    given = OpenAIEndpoint(OpenAIEndpoint.Params.model_validate({"base_url": "http://h/v1", "model": "m", "server_devices": "1 x H100"}))
    assert given.setup_facts("x", "y")["server_devices"] == "1 x H100"


# validate --probe

SUITE = """\
name: s
workloads:
  - name: ep
    type: openai_endpoint
    params: {{base_url: "{url}", model: {model}{extra}}}
    load: {{pattern: closed, concurrency: 1, requests: 1, sizes: {{input: {{fixed: 2}}, output: {{fixed: 2}}}}}}
"""


def validate(tmp_path: Path, url: str, *flags: str, model: str = "tiny", extra: str = "") -> tuple[int, str, str, float]:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(url=url, model=model, extra=extra))
    start = time.perf_counter()
    code, out, err = cli_in_process("validate", suite, *flags)
    return code, out, err, time.perf_counter() - start


def one_line(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, (code, err)
    return lines[0]


def test_validate_never_touches_the_network_without_probe(tmp_path, monkeypatch):
    with FakeServer() as server:
        url = server.base_url

        def no_network(self, address):
            raise AssertionError(f"validate connected to {address}")

        with monkeypatch.context() as m:
            m.setattr(socket.socket, "connect", no_network)
            code, out, err, _ = validate(tmp_path, url, model="not-served")
        assert code == 0 and out.startswith("ok: ") and server.gets == 0 and not server.bodies, err
        code, out, _, _ = validate(tmp_path, url, "--probe")
        assert code == 0 and f"probe: ep: served (listed by {url}/models)" in out and server.gets == 1


def test_probe_a_wrong_model_lists_the_served_ones_shortened(tmp_path):
    served_models = ("tiny", "b", "c", "d", "e", "f", "g" * 80)
    with FakeServer(models=served_models) as server:
        code, _, err, seconds = validate(tmp_path, server.base_url, "--probe", model="nope")
    line = one_line(code, err)
    assert f"workload 'ep' (openai_endpoint): the server at {server.base_url}/models does not serve model 'nope'" in line
    assert line.endswith("it serves: tiny, b, c, d, e (and 2 more): set model to one of them")
    print(f"wrong model: {seconds:.2f} s")


@pytest.mark.parametrize(("key", "needle"), [(None, "EP_PROBE_KEY is not set"), ("wrong", "refused the API key (HTTP 401)")])
def test_probe_a_missing_or_rejected_key(tmp_path, monkeypatch, key, needle):
    monkeypatch.delenv("EP_PROBE_KEY", raising=False)
    if key is not None:
        monkeypatch.setenv("EP_PROBE_KEY", key)
    with FakeServer(api_key="right") as server:
        code, _, err, seconds = validate(tmp_path, server.base_url, "--probe", extra=", api_key_env: EP_PROBE_KEY")
    assert needle in one_line(code, err) and "right" not in err
    print(f"key {key}: {seconds:.2f} s")


def test_probe_an_unreachable_url_refused_or_unresolved(tmp_path):
    with FakeServer() as server:
        url = server.base_url  # free again once closed
    code, _, err, refused_s = validate(tmp_path, url, "--probe")
    assert "(connection refused)" in one_line(code, err) and "is the server running" in err
    code, _, err, dns_s = validate(tmp_path, "http://no-such-host.invalid:8000/v1", "--probe")
    assert "cannot resolve the host name no-such-host.invalid" in one_line(code, err)
    print(f"refused: {refused_s:.2f} s; DNS: {dns_s:.2f} s")


def self_signed(directory: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, made here (the openssl command line, else the cryptography package)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    if shutil.which("openssl"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert]
            + ["-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True,
            capture_output=True,
        )
        return str(cert), str(key)
    crypto = pytest.importorskip("cryptography", reason="neither the openssl command nor the cryptography package to make a certificate")
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    assert crypto
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(cert), str(key)


def test_probe_a_certificate_that_fails_verification_says_what_to_do_and_the_ca_bundle_fixes_it(tmp_path, monkeypatch):
    cert, key = self_signed(tmp_path)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with FakeServer(tls=(cert, key)) as server:
        code, _, err, seconds = validate(tmp_path, server.base_url, "--probe")
        line = one_line(code, err)
        assert "TLS: the certificate of 127.0.0.1:" in line and "failed verification" in line
        assert line.endswith("set SSL_CERT_FILE to the CA bundle (a PEM file) that signed it, or give an http:// base_url if the server speaks plain HTTP")
        monkeypatch.setenv("SSL_CERT_FILE", cert)
        code, out, err, _ = validate(tmp_path, server.base_url, "--probe")
    assert code == 0 and "probe: ep: served" in out, err
    print(f"TLS: {seconds:.2f} s")


def test_probe_a_server_that_never_answers_stops_at_the_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr("workloads.openai_endpoint.PROBE_TIMEOUT_S", 0.3)  # 5 s in use; shortened here
    with socket.socket() as listener:  # accepts connections (the kernel's backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        code, _, err, seconds = validate(tmp_path, url, "--probe")
    assert "no answer from 127.0.0.1:" in one_line(code, err) and "within 0.3 s (ReadTimeout)" in err
    print(f"no answer: {seconds:.2f} s")


def test_validate_probe_imports_neither_torch_nor_transformers(tmp_path):
    import subprocess
    import sys

    with FakeServer() as server:
        suite = tmp_path / "suite.yaml"
        suite.write_text(SUITE.format(url=server.base_url, model="tiny", extra=""))
        code = (
            "import sys, contextlib, io\n"
            "from profiler.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main(['validate', {str(suite)!r}, '--probe']) == 0\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'transformers'))))\n"
        )
        result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=120)
        gets = server.gets
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr
    assert gets == 1
