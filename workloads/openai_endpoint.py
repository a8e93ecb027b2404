"""`openai_endpoint`: any running OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, `transformers serve`...),
reached over HTTP, as a serving engine under a `load:` block.

The load driver (profiler/run/serve.py) sends each request at its time; this engine turns it into one streamed
request (`chat/completions` or `completions`, `stream: true`) and hands back its record: every output token's time,
as the client saw it. So the same requests.parquet, serving block, SLO attainment, goodput and QoE as `llm_serve`.

- Threads: one asyncio event loop on one background thread holds every request's HTTP stream (httpx2's AsyncClient,
  HTTP/1.1, no limit on connections: a pool limit would queue requests in the client, unseen). `submit` only hands
  the request to that loop (asyncio.run_coroutine_threadsafe) and returns; the loop only reads and stamps; the
  chunks' tokens are counted on the thread that calls `collect` (the driver's main thread), so a tokenizer never
  delays another stream's time stamps.
- Times: each server-sent event is stamped with time.monotonic_ns (the requests' clock) when its first line reached
  this process. A chunk of k tokens is k tokens with that one time (ITL stays per token: after a gap g, k equal
  times are k gaps of g / k; characterize/serving.py: token_gaps_ns). TTFT counts from the first chunk with text, never a role-only
  first chunk.
- Token counts per chunk (endpoint_stream.count_tokens): the server's per-chunk usage where it sends one (vLLM and
  SGLang with continuous_usage_stats), else the local tokenizer (`tokenizer:`, a directory; never downloaded) on the
  chunk's text, else one token per chunk with text: the method is stated in the facts with the chunks each counted,
  and the counts are checked against the server's final usage where it gives one (mismatches counted).
- Requested lengths: `max_tokens` is the requested output; `ignore_eos` and `min_tokens` are sent only where the
  server's capability profile (`server:`, endpoint_stream.SERVERS, each fact with its source) says it honours
  them. A request that stopped early is a finished request with its real length; the facts count them.
- Faults are the request's status, never the run's end: an HTTP error (the status and the body's first line; 429
  says rate limited), a connection that cannot be made or breaks mid-stream, a malformed or error event, a stream
  that ends without [DONE], a request longer than `timeout_s`: each a failed request with its error text.
- What HTTP cannot show: how long a request waited inside the server. scheduled_ns is None (queueing
  unavailable), stated in the facts; engine_stats has no running or waiting requests (the server's scheduler is not
  seen), only the requests this client has in flight.
- A server on this machine is the workload, never contention: `server_pid`, or (find_local_server, on by default) the
  process listening on a loopback base_url's port, is declared at setup (SetupContext.declare_server) and the profiler
  samples its process tree as the workload's (CPU, RSS; its GPU and energy when NVML lists it on one). The facts'
  `local_server` says which pid and how it was found, or why none was (not loopback, nothing listening, another
  user's socket, the server running inside the profiler's own process).
- The API key is read from the environment variable `api_key_env` names, in the child, at setup; it is sent as a
  bearer token and written nowhere. A base_url with credentials in it is refused (one line), so none is stored.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import threading
import time
from concurrent.futures import Future
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from profiler.plugin import Declaration, Mark, Params, ServedRequest, SetupContext, Trait

from .endpoint_stream import (
    METHODS,
    SERVERS,
    Answer,
    Chunk,
    ServerProfile,
    SseLines,
    StreamFault,
    count_tokens,
    http_error_text,
    outcome,
    token_times,
)

ERROR_BODY_BYTES = 4096
"""Of an HTTP error's body, at most this much is read (its first line is the request's error)."""
MAX_EVENT_CHARS = 1_000_000
"""The longest line of a server-sent event stream taken: one chunk's JSON is a few hundred characters, so a longer line
is a broken (or hostile) server, and the request fails rather than holding the line in memory."""
CONNECT_TIMEOUT_S = 10.0
"""The longest a connection may take to open (at most timeout_s)."""
WORDS = (
    "the of and to in is was for on that with as by at from his her are this which be or have an they one had not but "
    "what all were when we there can more if no out so said time up about into than them only other new some could"
).split()
"""Common English words, one token each in most BPE vocabularies: the prompts' text."""


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
"""base_url hosts that are this machine: the server listening on the port is looked up (find_local_server)."""


def listening_pid(port: int) -> tuple[int | None, str]:
    """The pid of the process listening on TCP `port` on this machine and how it was found, or None and why not
    (psutil.net_connections: on Linux the pid of another user's socket is hidden; macOS needs root to list them)."""
    import psutil

    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None, "listing this machine's sockets was refused (psutil.net_connections needs root here): give server_pid"
    listeners = [c for c in connections if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port]
    if not listeners:
        return None, f"no process on this machine listens on port {port}"
    pids = {c.pid for c in listeners if c.pid is not None}
    if not pids:
        return None, f"the process listening on port {port} belongs to another user (its pid is hidden): give server_pid"
    if len(pids) > 1:
        return None, f"several processes listen on port {port} ({', '.join(map(str, sorted(pids)))}): give server_pid"
    return pids.pop(), f"the process listening on port {port}"


def profiler_processes() -> set[int]:
    """This process and its ancestors (the profiler that started it): never a local server of its own."""
    import psutil

    me = psutil.Process()
    return {me.pid, *(p.pid for p in me.parents())}


def redact_url(url: str) -> str:
    """The URL with any user name and password replaced by '***' (for every place a URL is shown or stored)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def prompt_words(index: int, n: int) -> str:
    """The prompt of request `index`: n words (7 x index + k of the list, so requests differ from their first word)."""
    return " ".join(WORDS[(7 * index + k) % len(WORDS)] for k in range(n))


class OpenAIEndpoint:
    """A running OpenAI-compatible server under a load, over HTTP (streamed chat/completions or completions)."""

    requires_load: ClassVar[bool] = True

    class Params(Params):
        base_url: str = Field(
            min_length=8,
            max_length=2000,
            examples=["http://127.0.0.1:8000/v1"],
            description="The server's OpenAI API root, e.g. http://127.0.0.1:8000/v1 (http or https; no credentials in it).",
        )
        model: str = Field(min_length=1, max_length=500, examples=["my-model"], description="The model name the server serves (its /v1/models lists them).")
        api: Literal["chat/completions", "completions"] = Field("chat/completions", description="The route requests go to, always streamed.")
        server: Literal["vllm", "sglang", "tgi", "llama.cpp", "transformers-serve", "generic"] = Field(
            "generic", description="What kind of server it is: which request fields beyond OpenAI's it honours (ignore_eos, min_tokens, per-chunk usage)."
        )
        api_key_env: str | None = Field(
            None, max_length=200, description="The NAME of the environment variable holding the API key (sent as a bearer token; never recorded)."
        )
        timeout_s: float = Field(300.0, gt=0, le=86400, allow_inf_nan=False, description="The longest one request may take, send to last byte (s).")
        tokenizer: str | None = Field(
            None, max_length=4096, description="A local tokenizer directory (the model's): counts each chunk's tokens and makes prompts of exact length."
        )
        max_positions: int | None = Field(None, ge=2, le=100_000_000, description="Prompt + output tokens the server's model holds (None: no limit).")
        check_model: bool = Field(True, description="Before the load, ask the server's /models whether it serves `model` (skipped where it has none).")
        server_pid: int | None = Field(
            None,
            ge=1,
            le=4_194_304,
            description="The local server's process id (at most Linux's largest pid_max): its process tree is sampled as the workload, never as contention.",
        )
        find_local_server: bool = Field(
            True,
            description="With no server_pid and a loopback base_url (127.0.0.1, localhost, ::1): the process listening on its port is the local server.",
        )

        @field_validator("base_url")
        @classmethod
        def _a_plain_http_url(cls, value: str) -> str:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("give the server's URL as http://host:port/v1 or https://...")
            if parts.username is not None or parts.password is not None:
                raise ValueError(f"{redact_url(value)}: credentials in the URL would be recorded with the run; put the key in a variable named by api_key_env")
            if parts.query or parts.fragment:
                raise ValueError("the base URL takes no query or fragment (a key in a query would be recorded with the run: use api_key_env)")
            return value.rstrip("/")

        @field_validator("api_key_env")
        @classmethod
        def _a_variable_name(cls, value: str | None) -> str | None:
            if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
                raise ValueError("the NAME of an environment variable (letters, digits, _), not the key itself")
            return value

    @classmethod
    def declaration(cls, params: OpenAIEndpoint.Params) -> Declaration:
        """One request = one iteration span (arrival to last token); deliveries: the first token and each later one."""
        return Declaration(output_unit="token", deliveries=("prefill", "decode"), traits=frozenset({Trait.AUTOREGRESSIVE}))

    work_unavailable = (
        "not counted: the model runs in the server, another process reached over HTTP, where the profiler's FLOP counters and "
        "op tracer cannot see; its work, bound class and operator mix are unavailable here (llm_serve or llm_decode over the "
        "same architecture count them in-process)"
    )
    """Why the untimed passes count nothing for an endpoint (plugin.Engine's optional work_unavailable)."""

    def __init__(self, params: OpenAIEndpoint.Params) -> None:
        self.p = params
        self.profile: ServerProfile = SERVERS[params.server]
        self.max_positions = params.max_positions
        self.url = f"{params.base_url}/{params.api}"
        self.headers: dict[str, str] = {"Accept": "text/event-stream"}
        self.tokenizer: Any = None
        self.tokenizer_lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.client: Any = None
        self.answers: queue.Queue[tuple[ServedRequest, Answer]] = queue.Queue()
        self.inflight: dict[int, Future[None]] = {}
        self.inflight_lock = threading.Lock()
        self.tally: dict[str, Any] = {
            "requests_ended": 0,
            "stopped_early": 0,
            "longer_than_requested": 0,
            "usage_checked": 0,
            "usage_mismatches": 0,
            "tokens_by_method": dict.fromkeys(METHODS, 0),
            "prompts_inexact": 0,
        }

    # setup and teardown

    def setup(self, ctx: SetupContext) -> None:
        """Read the key, load the tokenizer, start the loop thread and its client, check the model; declare the facts.
        Raises RuntimeError with one line naming what to do when the key's variable is unset, the server cannot be
        reached, refuses the key or does not serve the model."""
        import httpx2

        p = self.p
        if p.api_key_env is not None:
            key = os.environ.get(p.api_key_env)
            if not key:
                raise RuntimeError(f"api_key_env: the environment variable {p.api_key_env} is not set (or empty): export it with the server's API key")
            self.headers["Authorization"] = f"Bearer {key}"
        if p.tokenizer is not None:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(p.tokenizer, local_files_only=True)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="endpoint-http", daemon=True)
        self.thread.start()
        timeout = httpx2.Timeout(p.timeout_s, connect=min(CONNECT_TIMEOUT_S, p.timeout_s))
        limits = httpx2.Limits(max_connections=None, max_keepalive_connections=None)
        self.client = self._on_loop(self._make_client(httpx2, timeout, limits))
        models = self._on_loop(self._check_model()) if p.check_model else "not checked (check_model: false)"
        ctx.declare(**self.facts(httpx2.__version__, models))
        ctx.declare(local_server=self.declare_local_server(ctx))

    @classmethod
    def local_server(cls, params: OpenAIEndpoint.Params) -> tuple[int | None, str]:
        """The local server these params name (the plugin contract's optional `local_server`, called by the parent before
        the run and again at setup): `server_pid`, else with find_local_server the process listening on a loopback
        base_url's port; (pid, how it was found), or (None, why none). Never the profiler's own process or an ancestor
        of it (a server inside the profiler: its CPU is already the profiler's)."""
        if params.server_pid is not None:
            pid, how = params.server_pid, "server_pid"
        else:
            parts = urlsplit(params.base_url)
            if not params.find_local_server:
                return None, "none declared (no server_pid; find_local_server: false)"
            if parts.hostname not in LOOPBACK:
                return None, f"none: {parts.hostname} is not this machine's loopback address (give server_pid for a server here)"
            port = parts.port or (443 if parts.scheme == "https" else 80)
            pid, how = listening_pid(port)
            if pid is None:
                return None, f"none: {how}"
        if pid in profiler_processes():
            return None, f"none: process {pid} ({how}) is the profiler itself or this workload's child: its CPU is already the profiler's"
        return pid, how

    def declare_local_server(self, ctx: SetupContext) -> str:
        """Name the local server to the profiler (SetupContext.declare_server: it confirms the one the parent found before
        the run, or names another); what was found, or why not, in words (a fact)."""
        pid, how = self.local_server(self.p)
        if pid is None:
            return how
        ctx.declare_server(pid, how)
        return f"pid {pid} ({how}): its process tree is sampled as the workload (summary local_server), never as contention"

    async def _make_client(self, httpx2: Any, timeout: Any, limits: Any) -> Any:
        return httpx2.AsyncClient(timeout=timeout, limits=limits, headers=self.headers, trust_env=True)

    def _on_loop(self, coroutine: Any) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    async def _check_model(self) -> str:
        """What the server's /models said of the model (a fact). Raises RuntimeError: unreachable, key refused, model
        not served."""
        import httpx2

        where = redact_url(f"{self.p.base_url}/models")
        try:
            response = await self.client.get(f"{self.p.base_url}/models", timeout=min(CONNECT_TIMEOUT_S, self.p.timeout_s))
        except httpx2.HTTPError as exc:
            raise RuntimeError(f"cannot reach the server at {where}: {type(exc).__name__}: {exc}; is it running, and does base_url end with /v1?") from None
        if response.status_code in (401, 403):
            raise RuntimeError(f"the server at {where} refused the API key (HTTP {response.status_code}): check the variable api_key_env names")
        if response.status_code != 200:
            return f"not checked: {where} answered HTTP {response.status_code}"
        try:
            served = [m.get("id") for m in response.json().get("data", []) if isinstance(m, dict)]
        except (ValueError, AttributeError):
            return f"not checked: {where} answered something other than a model list"
        if self.p.model not in served:
            listed = ", ".join(str(s) for s in served[:10]) or "none"
            raise RuntimeError(f"the server at {where} does not serve model '{self.p.model}'; it serves: {listed}")
        return f"served (listed by {where})"

    def facts(self, client_version: str, models: str) -> dict[str, Any]:
        """The facts this engine declares: the server, how requests are made, and how each figure is read."""
        p, profile = self.p, self.profile
        sent = ["max_tokens = the requested output"] + [name for name in ("ignore_eos", "min_tokens") if getattr(profile, name)]
        return {
            "engine": f"an OpenAI-compatible server ({p.server}) at {redact_url(p.base_url)}, over HTTP",
            "api": f"{p.api}, streamed",
            "model": p.model,
            "model_check": models,
            "server_profile": {
                "kind": p.server,
                "ignore_eos": profile.ignore_eos,
                "min_tokens": profile.min_tokens,
                "stream_usage": profile.include_usage,
                "per_chunk_usage": profile.continuous_usage,
                "sends_done": profile.sends_done,
                "source": profile.source,
            },
            "requested_output": "; ".join(sent) + ("" if profile.ignore_eos or profile.min_tokens else ": the server may stop earlier (counted)"),
            "token_times": "each chunk's arrival in this process (time.monotonic_ns of its event's first line); a chunk of k tokens is k equal times",
            "token_count_method": (
                "per chunk: the server's usage where every chunk carries it, else "
                + ("the local tokenizer on the chunk's text" if p.tokenizer else "1 token per chunk with text (no tokenizer given)")
                + "; checked against the server's final usage where it sends one (stream)"
            ),
            "ttft_from": "the first chunk with text (a role-only first chunk is no token)",
            "queueing": "unavailable: HTTP does not show how long a request waited inside the server (scheduled_ns None, queue_s NaN)",
            "engine_samples": "the server's running and waiting requests are not seen over HTTP; in_flight is this client's open requests",
            "prompts": (
                "words of a fixed list, re-tokenized to exactly input_tokens with the local tokenizer"
                if p.tokenizer
                else "input_tokens common words (about one token each; not checked: no tokenizer given)"
            )
            + ("; the chat template adds its own tokens" if p.api == "chat/completions" else "")
            + "; a trace's prefix blocks are not reproduced",
            "client": f"httpx2 {client_version}, HTTP/1.1, one asyncio loop on one thread, no connection limit, timeout_s {p.timeout_s:g}",
            "api_key": f"read from ${p.api_key_env} (not recorded)" if p.api_key_env else "none",
            "stream": self.tally,
        }

    def teardown(self) -> None:
        """Cancel what is in flight, close the client, stop the loop thread."""
        if self.loop is None:
            return
        with self.inflight_lock:
            pending = list(self.inflight.values())
        for future in pending:
            future.cancel()
        if self.client is not None:
            try:
                asyncio.run_coroutine_threadsafe(self.client.aclose(), self.loop).result(timeout=5)
            except Exception:
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.loop = None

    # the Engine interface

    def submit(self, request: ServedRequest) -> None:
        """The request's body, then its stream handed to the loop thread; returns at once."""
        assert self.loop is not None, "submit before setup"
        body = self.body(request)
        future = asyncio.run_coroutine_threadsafe(self._request(request, body), self.loop)
        with self.inflight_lock:
            self.inflight[request.index] = future

    def body(self, r: ServedRequest) -> dict[str, Any]:
        """The JSON body of one request: its prompt, the requested length, and what the server's profile allows."""
        p, profile = self.p, self.profile
        prompt = self.prompt(r)
        body: dict[str, Any] = {"model": p.model, "stream": True, "max_tokens": r.output_tokens}
        if p.api == "chat/completions":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        if profile.ignore_eos:
            body["ignore_eos"] = True
        if profile.min_tokens:
            body["min_tokens"] = r.output_tokens
        if profile.include_usage:
            body["stream_options"] = {"include_usage": True, **({"continuous_usage_stats": True} if profile.continuous_usage else {})}
        return body

    def prompt(self, r: ServedRequest) -> str:
        """The prompt text: input_tokens words; with a tokenizer, cut to exactly input_tokens tokens (one that does not
        re-tokenize to that length is counted in the facts' prompts_inexact)."""
        text = prompt_words(r.index, r.input_tokens)
        if self.tokenizer is None:
            return text
        with self.tokenizer_lock:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            extra = 2
            while len(ids) < r.input_tokens and extra < 64:
                ids = self.tokenizer.encode(prompt_words(r.index, r.input_tokens * extra), add_special_tokens=False)
                extra *= 2
            text = self.tokenizer.decode(ids[: r.input_tokens])
            exact = len(self.tokenizer.encode(text, add_special_tokens=False)) == r.input_tokens
        if not exact:
            self.tally["prompts_inexact"] += 1
        return text

    async def _request(self, r: ServedRequest, body: dict[str, Any]) -> None:
        """One request's stream on the loop thread: its chunks stamped as they arrive, its end (or fault) kept; the
        answer queued for `collect`. Cancelled (the driver timed it out): nothing is queued."""
        answer = Answer()
        try:
            await asyncio.wait_for(self._stream(body, answer), self.p.timeout_s)
        except StreamFault as fault:
            answer.fault = str(fault)
        except asyncio.TimeoutError:
            answer.fault = f"client timeout: no end within timeout_s = {self.p.timeout_s:g} s ({len(answer.chunks)} chunks received)"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            answer.fault = self.transport_fault(exc, answer)
        answer.ended_ns = time.monotonic_ns()
        self.answers.put((r, answer))

    def transport_fault(self, exc: Exception, answer: Answer) -> str:
        """The error text of an exception from the HTTP client (or anything else) during one request."""
        import httpx2

        name = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        if isinstance(exc, (httpx2.ConnectError, httpx2.ConnectTimeout)):
            return f"cannot connect to {redact_url(self.url)}: {name}"
        if isinstance(exc, httpx2.TimeoutException):
            return f"client timeout: {name} ({len(answer.chunks)} chunks received)"
        if isinstance(exc, httpx2.TransportError):
            return f"the connection broke mid-stream after {len(answer.chunks)} chunks: {name}"
        return f"the client failed: {name}"

    async def _stream(self, body: dict[str, Any], answer: Answer) -> None:
        """POST the request and read its events into `answer` until [DONE] or the stream's end. Raises StreamFault for
        an HTTP error or a bad event; the client's exceptions pass through."""
        async with self.client.stream("POST", self.url, json=body) as response:
            if response.status_code >= 400:
                raise StreamFault(http_error_text(response.status_code, await _head(response)))
            events = SseLines()
            async for line in response.aiter_lines():
                if len(line) > MAX_EVENT_CHARS:
                    raise StreamFault(f"a stream line of {len(line):,} characters, above the {MAX_EVENT_CHARS:,} an event may have")
                event = events.line(line, time.monotonic_ns())
                if event is None:
                    continue
                data, t_ns = event
                if data.strip() == "[DONE]":
                    answer.done = True
                    return
                answer.chunks.append(Chunk.parse(data, t_ns, self.p.api))

    def collect(self, timeout_s: float) -> list[dict[str, Any]]:
        """The records of the requests whose streams ended, waiting up to timeout_s for one; tokens counted here."""
        try:
            got = [self.answers.get(timeout=timeout_s)]
        except queue.Empty:
            return []
        while True:
            try:
                got.append(self.answers.get_nowait())
            except queue.Empty:
                break
        return [self.record(r, answer) for r, answer in got]

    def record(self, r: ServedRequest, answer: Answer) -> dict[str, Any]:
        """The Engine record of one ended stream (the tally of stopped-early requests and usage checks updated)."""
        with self.inflight_lock:
            self.inflight.pop(r.index, None)
        if self.tokenizer is not None:
            with self.tokenizer_lock:
                counts = count_tokens(answer.chunks, self._count)
        else:
            counts = count_tokens(answer.chunks, None)
        tokens = token_times(answer.chunks, counts)
        status, error = outcome(answer, len(tokens), self.profile)
        self.keep_tally(r, answer, counts, len(tokens), status)
        return {"index": r.index, "status": status, "error": error, "scheduled_ns": None, "token_ns": tokens, "finished_ns": answer.ended_ns}

    def _count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def keep_tally(self, r: ServedRequest, answer: Answer, counts: list[tuple[int, str]], tokens: int, status: str) -> None:
        t = self.tally
        t["requests_ended"] += 1
        for k, method in counts:
            t["tokens_by_method"][method] += k
        if status == "finished":
            t["stopped_early"] += tokens < r.output_tokens
            t["longer_than_requested"] += tokens > r.output_tokens
        final = answer.final_usage
        if final is not None and answer.fault is None:
            t["usage_checked"] += 1
            t["usage_mismatches"] += final != tokens

    def engine_stats(self) -> dict[str, float | None]:
        """The server's scheduler is not seen over HTTP: running, waiting, KV and preemptions are None; in_flight is
        this client's open requests."""
        with self.inflight_lock:
            in_flight = sum(not future.done() for future in self.inflight.values())
        return {"running": None, "waiting": None, "kv_bytes_used": None, "kv_bytes_total": None, "preempted": None, "in_flight": in_flight}

    def cancel(self, index: int) -> None:
        """Close the request's stream (the server sees the client go and, where it can, stops generating)."""
        with self.inflight_lock:
            future = self.inflight.pop(index, None)
        if future is not None:
            future.cancel()

    def run_once(self, mark: Mark) -> None:
        raise RuntimeError("openai_endpoint serves requests under a load: block; it has no iterations of its own")


async def _head(response: Any) -> bytes:
    """The first ERROR_BODY_BYTES of a response's body."""
    head = b""
    async for part in response.aiter_bytes():
        head += part
        if len(head) >= ERROR_BODY_BYTES:
            break
    return head[:ERROR_BODY_BYTES]
