"""A small OpenAI-compatible streaming server on 127.0.0.1 for the endpoint workload's tests (stdlib http.server in
a thread; the client under test is the real one).

`FakeServer(script=[...])` answers the i-th POST with the behaviour `script[i % len(script)]`:
  ok          a role-only first chunk (chat), then one word per chunk up to max_tokens, a finish chunk (length), the
              usage chunk when stream_options.include_usage asks for it, then [DONE]
  multi       as ok, three words per chunk
  early       as ok, stopping after half of max_tokens with finish_reason 'stop'
  http500     HTTP 500, body 'internal error' (two lines)
  http429     HTTP 429, a JSON body
  reset       two chunks, then the connection reset (RST)
  malformed   one chunk, then an event that is not JSON
  error_event one chunk, then {"error": {"message": "boom"}}
  nodone      every chunk, without a finish_reason or [DONE], then the stream ends cleanly
  hang        headers only, then nothing for `hang_s`
  hidden      as ok, two tokens per chunk of which only the first has text (a token that decodes to nothing)
Per-chunk usage (completion_tokens so far on every chunk) when the request asks for continuous_usage_stats (vLLM's).
`reject_fields`: fields answered with HTTP 422 (transformers serve 5.24 rejects ignore_eos and min_tokens);
`sends_done=False`: no [DONE] (transformers serve). `api_key`: a bearer token every route requires (401 otherwise).
Every request's JSON body is kept in `bodies`; `models` is what /v1/models lists. The workload's check request (its
prompt is endpoint_check.STREAM_CHECK_PROMPT, sent by setup and the probe) is kept in `checks` instead, answered by
`check_mode` (default ok), and takes no turn of the script.
More modes: `stall` sends one chunk, then nothing for `hang_s`; `eof` is ok without [DONE] and without chunked
encoding (Connection: close: the stream ends when the server closes it); `echo_key` answers HTTP 401 with a body
that echoes the Authorization header's key ("Incorrect API key provided: <key>", as OpenAI's API does).

Prompt tokens (`prompt_tokens`): the prompt's words (a word in `long_words` is two tokens) plus BOS (completions) or
CHAT_TEMPLATE_TOKENS (chat): the usage's prompt_tokens and vLLM's POST /tokenize ({model, prompt} or {model,
messages} -> {count, max_model_len, tokens}) count the same, when `tokenize=True` (else /tokenize is 404);
`tokenize_calls` counts them. `logprobs=True`: a request with logprobs gets one entry per token in each chunk (vLLM's
shapes: chat logprobs.content, completions logprobs.tokens); else logprobs are ignored (transformers serve).
`tls=(certfile, keyfile)`: HTTPS (base_url https://...).
`metrics`: a vLLM /metrics text (recorded from a real server: tests/data/vllm/<version>/) served at GET /metrics with
its counters advanced by what this server served (`ServedCounts.render`), 404 without it (transformers serve has none).
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from workloads.endpoint_check import STREAM_CHECK_PROMPT

WORDS = "the of and to in is was for on that with as by at from his her are this which".split()
CHAT_TEMPLATE_TOKENS = 3
"""The tokens this server's chat template adds to a chat's one user message (role markers and the generation prompt)."""


def prompt_tokens(body: dict[str, Any], long_words: frozenset[str] = frozenset()) -> int:
    """The prompt's tokens as this server counts them: a word is one token (one in long_words two), plus BOS
    (completions) or CHAT_TEMPLATE_TOKENS (chat)."""
    if "messages" in body:
        text, extra = " ".join(str(m.get("content", "")) for m in body["messages"]), CHAT_TEMPLATE_TOKENS
    else:
        text, extra = str(body.get("prompt", "")), 1
    return extra + sum(2 if w in long_words else 1 for w in text.split())


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection the test broke on purpose (reset) or the client closed: nothing to print."""


class FakeServer:
    def __init__(
        self,
        script: list[str] | None = None,
        models: tuple[str, ...] = ("tiny",),
        reject_fields: tuple[str, ...] = (),
        sends_done: bool = True,
        api_key: str | None = None,
        hang_s: float = 2.0,
        tokenize: bool = False,
        logprobs: bool = False,
        long_words: frozenset[str] = frozenset(),
        tls: tuple[str, str] | None = None,
        metrics: str | None = None,
        check_mode: str = "ok",
    ) -> None:
        self.script = script or ["ok"]
        self.models, self.reject_fields, self.sends_done, self.api_key, self.hang_s = models, reject_fields, sends_done, api_key, hang_s
        self.tokenize, self.logprobs, self.long_words, self.tls = tokenize, logprobs, long_words, tls
        self.tokenize_calls = 0
        self.gets = 0
        self.bodies: list[dict[str, Any]] = []
        self.checks: list[dict[str, Any]] = []
        self.check_mode = check_mode
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.metrics = metrics
        self.counts = ServedCounts()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with server.lock:
                    server.gets += 1
                if not server.authorized(self):
                    return
                if self.path == "/metrics" and server.metrics is not None:
                    data = server.counts.render(server.metrics, server.models[0]).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                elif self.path.rstrip("/") == "/v1/models":
                    self.send_json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})
                else:
                    self.send_json(404, {"detail": "Not Found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/tokenize":
                    server.tokenize_route(self, body)
                    return
                if not self.path.startswith("/v1/"):
                    self.send_json(404, {"detail": "Not Found"})
                    return
                with server.lock:
                    if STREAM_CHECK_PROMPT in json.dumps(body):
                        mode = server.check_mode
                        server.checks.append(body)
                    else:
                        mode = server.script[len(server.bodies) % len(server.script)]
                        server.bodies.append(body)
                    server.headers.append(dict(self.headers))
                if mode == "echo_key":
                    key = str(self.headers.get("Authorization", "")).removeprefix("Bearer ")
                    self.send_json(401, {"error": {"message": f"Incorrect API key provided: {key}. You can find your API key at ..."}})
                    return
                if not server.authorized(self):
                    return
                if body.get("model") not in server.models:
                    self.send_json(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
                    return
                rejected = [f for f in server.reject_fields if f in body]
                if rejected:
                    self.send_json(422, {"detail": f"Unexpected keys in the request: {rejected}"})
                    return
                server.answer(self, mode, body)

            def send_json(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def authorized(self, h: Any) -> bool:
        if self.api_key is None or h.headers.get("Authorization") == f"Bearer {self.api_key}":
            return True
        h.send_json(401, {"error": {"message": "Invalid API key"}})
        return False

    def tokenize_route(self, h: Any, body: dict[str, Any]) -> None:
        """vLLM's POST /tokenize (404 unless `tokenize`)."""
        if not self.tokenize:
            h.send_json(404, {"detail": "Not Found"})
            return
        if not self.authorized(h):
            return
        with self.lock:
            self.tokenize_calls += 1
        n = prompt_tokens(body, self.long_words)
        h.send_json(200, {"count": n, "max_model_len": 4096, "tokens": list(range(n)), "token_strs": None})

    def answer(self, h: Any, mode: str, body: dict[str, Any]) -> None:
        if mode in ("http500", "http429"):
            status = 500 if mode == "http500" else 429
            data = b"internal error\nsecond line" if status == 500 else b'{"error": {"message": "Too many requests"}}'
            h.send_response(status)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        if mode == "eof":
            h.send_header("Connection", "close")
            h.close_connection = True
        else:
            h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        if mode == "hang":
            h.wfile.flush()
            time.sleep(self.hang_s)
            h.close_connection = True
            return
        prompt = prompt_tokens(body, self.long_words)
        self.counts.started()
        ended: list[int] = []

        def on_end(tokens: int) -> None:  # before the answer's last event: a client that saw its end sees the counters
            ended.append(tokens)
            self.counts.ended(prompt, mode, tokens)

        try:
            Stream(h, body, mode, self.sends_done and mode != "eof", prompt, self.logprobs, on_end, self.hang_s).run()
        finally:
            if not ended:
                self.counts.ended(prompt, mode, None)


class Stream:
    """One streamed answer, written as chunked transfer encoding."""

    def __init__(self, h: Any, body: dict[str, Any], mode: str, sends_done: bool, prompt: int, logprobs: bool, on_end: Any = None, hang_s: float = 0) -> None:
        self.h, self.body, self.mode, self.sends_done, self.prompt, self.on_end = h, body, mode, sends_done, prompt, on_end
        self.hang_s = hang_s
        self.chat = "messages" in body
        options = body.get("stream_options") or {}
        self.include_usage = bool(options.get("include_usage"))
        self.continuous = bool(options.get("continuous_usage_stats"))
        self.logprobs = logprobs and bool(body.get("logprobs"))
        self.sent_tokens = 0

    def write(self, data: str) -> None:
        raw = data.encode()
        if self.mode == "eof":  # no chunked encoding: the bytes as they are; the end is the connection's close
            self.h.wfile.write(raw)
            self.h.wfile.flush()
            return
        self.h.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.h.wfile.flush()

    def event(self, obj: Any) -> None:
        self.write(f"data: {json.dumps(obj)}\n\n")

    def usage(self, completion: int) -> dict[str, int]:
        return {"prompt_tokens": self.prompt, "completion_tokens": completion, "total_tokens": self.prompt + completion}

    def chunk(self, text: str | None, tokens: int, finish: str | None = None, role: bool = False) -> None:
        self.sent_tokens += tokens
        pieces = (text or "").split() + [""] * max(0, tokens - len((text or "").split()))  # a hidden token has no text
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant"} if role else {}
            if text is not None:
                delta["content"] = text
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            if self.logprobs and tokens:
                choice["logprobs"] = {"content": [{"token": w, "logprob": -1.0, "bytes": list(w.encode()), "top_logprobs": []} for w in pieces]}
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": finish}
            if self.logprobs and tokens:
                choice["logprobs"] = {"tokens": pieces, "token_logprobs": [-1.0] * tokens, "top_logprobs": [None] * tokens, "text_offset": [0] * tokens}
        obj: dict[str, Any] = {"id": "x", "object": "chunk", "choices": [choice]}
        if self.continuous:
            obj["usage"] = self.usage(self.sent_tokens)
        elif finish is not None and not self.sends_done:  # transformers serve: usage with the finish chunk, asked or not
            obj["usage"] = self.usage(self.sent_tokens)
        self.event(obj)

    def run(self) -> None:
        """The answer; on_end(tokens sent) before its finish chunk where it ends as a request does (not for a fault)."""
        n = int(self.body.get("max_tokens") or 8)
        mode = self.mode
        if self.chat:
            self.chunk(None, 0, role=True)
        per = {"multi": 3, "hidden": 2}.get(mode, 1)
        stop_at = max(1, n // 2) if mode == "early" else n
        cut = {"reset": 2, "malformed": 1, "error_event": 1, "stall": 1}.get(mode)
        k = 0
        while k < stop_at:
            if cut is not None and k >= cut:
                return self.fault()
            m = min(per, stop_at - k)
            shown = 1 if mode == "hidden" else m
            self.chunk(" ".join(WORDS[(k + j) % len(WORDS)] for j in range(shown)) + " ", m)
            k += m
        if mode == "nodone":
            self.write("")
            return
        if self.on_end is not None:
            self.on_end(k)
        self.chunk(None, 0, finish="stop" if mode == "early" else "length")
        if self.include_usage and not self.continuous and self.sends_done:
            self.event({"id": "x", "object": "chunk", "choices": [], "usage": self.usage(k)})
        if self.sends_done:
            self.write("data: [DONE]\n\n")
        self.write("")

    def fault(self) -> None:
        if self.mode == "stall":
            time.sleep(self.hang_s)
            self.h.close_connection = True
        elif self.mode == "reset":
            sock = self.h.connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            self.h.close_connection = True
        elif self.mode == "malformed":
            self.write('data: {"choices": [ not json\n\n')
            self.write("")
        else:
            self.event({"error": {"message": "boom", "code": 500}})
            self.write("")


QUEUE_S = 0.25
"""The queue time this server reports for every request it served (vllm:request_queue_time_seconds)."""
DRAFTS_PER_REQUEST, ACCEPTED_PER_REQUEST = 4, 3
"""Draft and accepted tokens it reports per request, where the text has spec_decode counters."""


class ServedCounts:
    """What the test server served, as the vLLM counters it advances (each request at its end): prompt tokens = its
    prompt's tokens (prompt_tokens: what its usage says); generation tokens = the tokens sent; prefix-cache queries = the
    prompt's tokens and hits = half of
    them (rounded down); one request_success (finished_reason length or stop) with QUEUE_S of queue time; drafts
    DRAFTS_PER_REQUEST with ACCEPTED_PER_REQUEST accepted. running = requests being answered; KV usage = 0.1 x running."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.add: dict[str, float] = {}

    def started(self) -> None:
        with self.lock:
            self.running += 1

    def ended(self, words: int, mode: str, tokens: int | None) -> None:
        with self.lock:
            self.running -= 1
            if tokens is None:
                return
            reason = "stop" if mode == "early" else "length"
            for name, v in (
                ("vllm:prompt_tokens_total", words),
                ("vllm:generation_tokens_total", tokens),
                ("vllm:prefix_cache_queries_total", words),
                ("vllm:prefix_cache_hits_total", words // 2),
                (f"vllm:request_success_total/{reason}", 1),
                ("vllm:request_queue_time_seconds_count", 1),
                ("vllm:request_queue_time_seconds_sum", QUEUE_S),
                ("vllm:spec_decode_num_draft_tokens_total", DRAFTS_PER_REQUEST),
                ("vllm:spec_decode_num_accepted_tokens_total", ACCEPTED_PER_REQUEST),
            ):
                self.add[name] = self.add.get(name, 0) + v

    def render(self, text: str, model: str) -> str:
        """`text` with the served model's series advanced: each counter above by what was served, the running gauge
        set to the requests being answered and KV usage to 0.1 per running request."""
        with self.lock:
            add, running = dict(self.add), self.running
        out = []
        for line in text.splitlines():
            m = SAMPLE.match(line)
            if m is None or f'model_name="{model}"' not in (m["labels"] or ""):
                out.append(line)
                continue
            name, value = m["name"], float(m["value"])
            reason = re.search(r'finished_reason="([^"]+)"', m["labels"] or "")
            key = f"{name}/{reason[1]}" if reason else name
            if name == "vllm:num_requests_running":
                value = running
            elif name == "vllm:kv_cache_usage_perc":
                value = 0.1 * running
            else:
                value += add.get(key, 0)
            out.append(f"{name}{m['labels'] or ''} {value!r}")
        return "\n".join(out) + "\n"


SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{[^}]*\})? (?P<value>\S+)$")
"""One sample line of the text format without a timestamp: name, labels, value."""


def setup_context(workdir: Any) -> Any:
    """The child's own setup context (profiler/run/child.py SetupContextImpl) over `workdir`, for an engine set up by hand."""
    from profiler.run.child import SetupContextImpl

    return SetupContextImpl(device="cpu", seed=0, workdir=str(workdir))
