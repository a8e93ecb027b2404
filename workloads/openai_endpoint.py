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
  SGLang with continuous_usage_stats), else the chunk's logprobs (one entry per token, `logprobs:` where the profile
  says the server streams them: vLLM; asked instead of per-chunk usage), else the local tokenizer (`tokenizer:`, a
  directory; never downloaded) on the chunk's text, else one token per chunk with text: the method is stated in the
  facts with the tokens each counted, and the counts are checked against the server's final usage where it gives one
  (mismatches counted). Logprobs cost: the server computes each sampled token's log-probability and each chunk grows
  by its entries (LOGPROB_ENTRY_BYTES).
- Prompts (endpoint_prompts.py): of exactly input_tokens tokens as the server counts them (special tokens, a chat's
  template), measured by the local tokenizer per request, else by the server's tokenize route (the profile's;
  calibrated at setup in two calls, so that no call is made during the load when every word of the list is one token;
  else fitted once per length in at most MAX_ROUND_TRIPS calls, on the sending thread, at the first request of that
  length), else not measured (input_tokens words: approximate, bound stated). Each request's record carries its prompt's count and
  how it was known (requests.parquet input_tokens, input_tokens_by): the server's final usage prompt_tokens where the
  stream carries it (what it prefilled), else the measured count, else the requested length marked unknown.
- Requested lengths: `max_tokens` is the requested output; `ignore_eos` and `min_tokens` are sent only where the
  server's capability profile (`server:`, endpoint_stream.SERVERS, each fact with its source) says it honours
  them. A request that stopped early is a finished request with its real length; the facts count them.
- Faults are the request's status, never the run's end: an HTTP error (the status and the body's first line; 429
  says rate limited), a connection that cannot be made or breaks mid-stream, a malformed or error event, a stream
  that ends without [DONE] where the profile requires one (else without a finish_reason), a request longer than
  `timeout_s`: each a failed request with its error text. A request still open when the load ends (timed_out) keeps
  the tokens its chunks had brought (`progress`, plugin.Engine's optional method, counted as `record` counts).
- What HTTP cannot show: how long each request waited inside the server. scheduled_ns is None (queueing
  unavailable), stated in the facts.
- The server's own metrics (`metrics`, on by default; endpoint_metrics.py): its Prometheus text at `metrics_url`
  (default: base_url's origin + /metrics) scraped on a thread of its own at `metrics_hz`; engine_stats gives the
  latest scrape's running and waiting requests, KV usage (a fraction) and preemptions since the previous scrape, with
  this client's requests in flight. At the measured window's edges (plugin.Engine `measured_window`) a scrape is
  asked for; their counter deltas are this run's prefix-cache hit rate, draft acceptance rate and the server's mean
  queue time, given after the load (`served_facts`) with each scrape's measured cost. A server without /metrics (or
  with names none of the maps know): every such figure unavailable, with the reason.
- A server on this machine is the workload, never contention: `server_pid`, or (find_local_server, on by default) the
  process listening on a loopback base_url's port, is declared at setup (SetupContext.declare_server) and the profiler
  samples its process tree as the workload's (CPU, RSS; its GPU and energy when NVML lists it on one). The facts'
  `local_server` says which pid and how it was found, or why none was (not loopback, nothing listening, another
  user's socket, the server running inside the profiler's own process).
  `server_pid` must name a running process (Params: psutil.pid_exists, so `validate` says so); with a loopback
  base_url, a server_pid whose process tree does not listen on its port is said in the facts and warned.
- The API key is read from the environment variable `api_key_env` names, in the child, at setup; it is sent as a
  bearer token and written nowhere: every error text recorded or raised passes `redact` (the key replaced by ***,
  where a server echoes it). A base_url with credentials in it is refused (one line), so none is stored.
- Before the load, setup asks the server's /models (endpoint_check.check_server: unreachable, DNS, TLS, key, model,
  a 404 asking whether base_url ends with /v1), sends one streamed request with the run's body and max_tokens 2
  (check_request: a 404, a 400/422 naming a field of the profile, a missing [DONE] the profile expects; it also warms
  the server up, as the facts say) and reads an explicit metrics_url; a failure is a RuntimeError of one plain line
  (exit 1 with the run kept); `validate --probe` makes the same checks through `probe` (exit 2, nothing run).
- Resources: this workload's process is an HTTP client on this machine's CPU (one core: the loop thread and the
  driver's); it holds no GPU of its own. The server's devices are the server's: `server_devices` as the suite states
  them, else unknown (a fact), never this machine's.
"""

from __future__ import annotations

import asyncio
import queue
import re
import threading
import time
from concurrent.futures import Future
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from profiler.plugin import Declaration, Mark, Params, Resources, ServedRequest, SetupContext, Trait

from .endpoint_check import (
    PROBE_TIMEOUT_S,
    STREAM_CHECK_PROMPT,
    STREAM_CHECK_TIMEOUT_S,
    STREAM_CHECK_TOKENS,
    ServerProblem,
    auth_headers,
    bearer_key,
    check_server,
    check_stream,
    redact_key,
)
from .endpoint_check import redact_url as redact_url  # re-exported: where the workload's tests and scripts take it from
from .endpoint_metrics import LAST_SCRAPE_TIMEOUT_S, MAPS, Scraper, deltas, metrics_url, same_origin
from .endpoint_prompts import APPROXIMATE_BOUND, MAX_ROUND_TRIPS, PromptBy, fit_words, has_chat_template, prompt_words, tokenizer_prompt
from .endpoint_prompts import WORDS as WORDS  # re-exported: the prompts' words (tests/integration builds a tokenizer over them)
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
"""The longest a connection may take to open (at most timeout_s); also setup's limit on the /models check and on each
tokenize call."""
LOGPROB_ENTRY_BYTES = {"chat/completions": 70, "completions": 30}
"""About how many bytes of JSON one token's logprobs entry adds to a chunk with top_logprobs 0 (chat: {"token",
"logprob", "bytes", "top_logprobs": []}; completions: a token, its logprob and text offset in three lists): counted on
vLLM's shapes for a one-word token, stated as logprobs' cost."""
PROMPT_BY: tuple[PromptBy, ...] = ("server_usage", "tokenizer", "tokenize_route", "unknown")


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


def tree_listens(pid: int, port: int) -> bool | None:
    """Whether process `pid` or one of its descendants listens on TCP `port` (psutil Process.net_connections); None
    when that cannot be read (another user's process, or it ended)."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    denied = False
    for proc in tree:
        try:
            if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in proc.net_connections(kind="tcp")):
                return True
        except psutil.NoSuchProcess:
            continue
        except psutil.AccessDenied:
            denied = True
    return None if denied else False


def named_model(params: OpenAIEndpoint.Params) -> str:
    """The model requests name: `params.model`, which setup and the probe fill from the server's list where the suite
    gave none (endpoint_check.check_server). Raises ServerProblem when it is still unset (not reached the server yet)."""
    if params.model is None:
        raise ServerProblem("model is not set and the server's model list was not read yet: set model to the name your server serves")
    return params.model


def server_pid_mismatch(params: OpenAIEndpoint.Params) -> str | None:
    """With server_pid and a loopback base_url: why that pid is not base_url's server (its process tree does not listen
    on base_url's port), else None (it does, the sockets cannot be read, or there is nothing to check)."""
    parts = urlsplit(params.base_url)
    if params.server_pid is None or parts.hostname not in LOOPBACK:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if tree_listens(params.server_pid, port) is not False:
        return None
    other, _ = listening_pid(port)
    there = f"pid {other} does" if other is not None else "none of this user's processes does"
    return f"server_pid {params.server_pid}'s process tree does not listen on base_url's port {port} ({there}): check server_pid"


def profiler_processes() -> set[int]:
    """This process and its ancestors (the profiler that started it): never a local server of its own."""
    import psutil

    me = psutil.Process()
    return {me.pid, *(p.pid for p in me.parents())}


def wants_logprobs(params: OpenAIEndpoint.Params, profile: ServerProfile) -> bool:
    """Whether requests ask for logprobs: where the profile says the server streams one entry per token, and either
    `logprobs: true` or (unset) the server gives no per-chunk usage."""
    return profile.logprobs and bool(params.logprobs or (params.logprobs is None and not profile.continuous_usage))


def request_body(params: OpenAIEndpoint.Params, prompt: str, max_tokens: int) -> dict[str, Any]:
    """The JSON body of one request: its prompt, the requested length, and what the server's profile allows (the load's
    requests and the setup/probe check request alike)."""
    profile = SERVERS[params.server]
    logprobs = wants_logprobs(params, profile)
    body: dict[str, Any] = {"model": named_model(params), "stream": True, "max_tokens": max_tokens}
    if params.api == "chat/completions":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if profile.ignore_eos:
        body["ignore_eos"] = True
    if profile.min_tokens:
        body["min_tokens"] = max_tokens
    if profile.include_usage:
        continuous = profile.continuous_usage and not logprobs
        body["stream_options"] = {"include_usage": True, **({"continuous_usage_stats": True} if continuous else {})}
    if logprobs:
        body.update({"logprobs": 1} if params.api == "completions" else {"logprobs": True, "top_logprobs": 0})
    return body


def check_request(params: OpenAIEndpoint.Params, headers: dict[str, str], timeout_s: float) -> str:
    """One streamed request with the run's body and max_tokens STREAM_CHECK_TOKENS, read to its end (endpoint_check.
    check_stream): what came back, in words. Raises ServerProblem (one line)."""
    body = request_body(params, STREAM_CHECK_PROMPT, STREAM_CHECK_TOKENS)
    return check_stream(f"{params.base_url}/{params.api}", body, headers, params.server, timeout_s)


def metrics_problem(why: str) -> str:
    """The line for a metrics_url given explicitly that cannot be read (the default URL failing is only a fact)."""
    return f"metrics_url {why}: fix metrics_url, or leave it out (base_url's origin + /metrics; a server without one is a fact) or set metrics: false"


def check_metrics_url(params: OpenAIEndpoint.Params, headers: dict[str, str]) -> str:
    """validate --probe's scrape of an explicitly given metrics_url ("" without one). Raises ServerProblem when it cannot
    be read."""
    if not params.metrics or params.metrics_url is None:
        return ""
    url = params.metrics_url
    sent = {k: v for k, v in headers.items() if k != "Authorization" or same_origin(url, params.base_url)}
    scraper = Scraper(url, params.metrics_hz, named_model(params), sent, MAPS.get(params.server))
    try:
        scraped = scraper.once(PROBE_TIMEOUT_S)
    finally:
        scraper.client.close()
    if scraped is None or scraper.map is None:
        raise ServerProblem(metrics_problem(f"{redact_url(url)}: {scraper.last_error}"))
    return f"; metrics_url {redact_url(url)} read ({scraper.map.server} names)"


def origin(base_url: str) -> str:
    """The server's root, where vLLM's, SGLang's, TGI's and llama.cpp's tokenize routes are: base_url without its /v1."""
    return base_url.removesuffix("/v1")


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
        model: str | None = Field(
            None,
            min_length=1,
            max_length=500,
            examples=["my-model"],
            description="The model name the server serves (its /v1/models lists them). None: the one model it lists (an error when it lists several).",
        )
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
        server_devices: str | None = Field(
            None,
            max_length=200,
            examples=["1 x NVIDIA H100 80GB", "cpu (16 cores)"],
            description="What the server runs on, as you know it (a fact of the run; None: unknown). This machine's devices are not the server's.",
        )
        logprobs: bool | None = Field(
            None,
            description=(
                "Ask for logprobs to count each chunk's tokens (one entry per token). None: only where the server's profile says it streams them "
                "and it has no per-chunk usage; true: instead of per-chunk usage (bigger chunks); false: never."
            ),
        )
        metrics: bool = Field(True, description="Scrape the server's Prometheus metrics (running, waiting, KV usage; the window's counter deltas).")
        metrics_url: str | None = Field(
            None, min_length=8, max_length=2000, description="The server's Prometheus endpoint (None: base_url's origin + /metrics; no credentials in it)."
        )
        metrics_hz: float = Field(2.0, gt=0, le=50, allow_inf_nan=False, description="Scrapes per second (the scraper's own rate, not the engine sampler's).")

        @field_validator("base_url", "metrics_url")
        @classmethod
        def _a_plain_http_url(cls, value: str | None) -> str | None:
            if value is None:
                return None
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("give the server's URL as http://host:port/v1 or https://...")
            if parts.username is not None or parts.password is not None:
                raise ValueError(f"{redact_url(value)}: credentials in the URL would be recorded with the run; put the key in a variable named by api_key_env")
            if parts.query or parts.fragment:
                raise ValueError("the base URL takes no query or fragment (a key in a query would be recorded with the run: use api_key_env)")
            return value.rstrip("/")

        @field_validator("server_pid")
        @classmethod
        def _a_running_process(cls, value: int | None) -> int | None:
            import psutil

            if value is not None and not psutil.pid_exists(value):
                raise ValueError(
                    f"no process {value} on this machine: give the running server's pid, or leave server_pid out (a loopback base_url's server is "
                    "found by its port)"
                )
            return value

        @field_validator("api_key_env")
        @classmethod
        def _a_variable_name(cls, value: str | None) -> str | None:
            if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
                raise ValueError("the NAME of an environment variable (letters, digits, _), not the key itself")
            return value

        @model_validator(mode="after")
        def _logprobs_where_honoured(self) -> OpenAIEndpoint.Params:
            if self.logprobs and not SERVERS[self.server].logprobs:
                raise ValueError(
                    f"logprobs: true, but server '{self.server}' is not known to stream one logprobs entry per token (its profile): leave logprobs unset"
                )
            return self

    @classmethod
    def declaration(cls, params: OpenAIEndpoint.Params) -> Declaration:
        """One request = one iteration span (arrival to last token); deliveries: the first token and each later one.
        Resources: one CPU core (the HTTP client) and no GPU of this machine's: the server's devices are the server's
        (the `server_devices` fact)."""
        return Declaration(
            output_unit="token",
            deliveries=("prefill", "decode"),
            traits=frozenset({Trait.AUTOREGRESSIVE}),
            resources=Resources(cpu_cores=1, gpus=0),
        )

    @classmethod
    def probe(cls, params: OpenAIEndpoint.Params) -> str:
        """`validate --probe`: reach the server as setup will: the key, /models and the model (within PROBE_TIMEOUT_S), one
        streamed request with the run's body and max_tokens 2 read to its end (check_request, within STREAM_CHECK_TIMEOUT_S;
        it also warms the server up), an explicitly given metrics_url. Returns what was found, in words; raises
        ServerProblem (a RuntimeError) with one line, the key redacted. (server_pid is checked by Params: it must exist.)"""
        headers = auth_headers(params.api_key_env)
        try:
            said, model = check_server(params.base_url, params.model, headers, PROBE_TIMEOUT_S, params.check_model)
            params = params.model_copy(update={"model": model})
            streamed = check_request(params, headers, STREAM_CHECK_TIMEOUT_S)
            metrics = check_metrics_url(params, headers)
        except ServerProblem as exc:
            raise ServerProblem(redact_key(str(exc), bearer_key(headers))) from None
        return f"{said}; {streamed} (it also warmed the server up){metrics}"

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
        self.chat = params.api == "chat/completions"
        self.headers: dict[str, str] = {"Accept": "text/event-stream"}
        self.tokenizer: Any = None
        self.tokenizer_lock = threading.Lock()
        self.logprobs = wants_logprobs(params, self.profile)
        self.route = self.profile.tokenize
        self.route_state = "none: the server's profile names no tokenize route" if self.route is None else "not tried yet"
        self.fitted: dict[int, tuple[int, int]] = {}
        self.overhead = 0
        self.one_token_words = False
        self.prompt_counts: dict[int, tuple[int | None, PromptBy]] = {}
        self.prompt_lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.client: Any = None
        self.answers: queue.Queue[tuple[ServedRequest, Answer]] = queue.Queue()
        self.inflight: dict[int, Future[None]] = {}
        self.partial: dict[int, Answer] = {}
        """Each request's answer while its stream is open (progress reads its chunks so far)."""
        self.inflight_lock = threading.Lock()
        self.tally: dict[str, Any] = {
            "requests_ended": 0,
            "stopped_early": 0,
            "longer_than_requested": 0,
            "usage_checked": 0,
            "usage_mismatches": 0,
            "tokens_by_method": dict.fromkeys(METHODS, 0),
            "prompts_by": dict.fromkeys(PROMPT_BY, 0),
            "prompts_off_target": 0,
            "prompt_count_mismatches": 0,
            "tokenize_calls": 0,
            "tokenize_calls_in_load": 0,
        }
        self.scraper: Scraper | None = None
        self.metrics_facts: dict[str, Any] = {}
        self.input_tokens_sent = 0

    # setup and teardown

    def setup(self, ctx: SetupContext) -> None:
        """Read the key, load the tokenizer, start the loop thread and its client, check the model and one streamed
        request; declare the facts. Raises RuntimeError with one line naming what to do (no class name of ours in it,
        the key redacted) when the key's variable is unset, the server cannot be reached, refuses the key, does not serve
        the model, does not stream the run's body to a complete end, its given metrics_url cannot be read, or server_pid
        names no process."""
        try:
            self._setup(ctx)
        except (ServerProblem, ValueError) as exc:
            raise RuntimeError(self.redact(str(exc))) from None

    def redact(self, text: str) -> str:
        """`text` with the API key replaced by '***' (endpoint_check.redact_key): every error text this engine records
        or raises passes here."""
        return redact_key(text, bearer_key(self.headers))

    def _setup(self, ctx: SetupContext) -> None:
        import httpx2

        p = self.p
        self.headers.update(auth_headers(p.api_key_env))
        plain = {k: v for k, v in self.headers.items() if k != "Accept"}
        models, model = check_server(p.base_url, p.model, plain, min(CONNECT_TIMEOUT_S, p.timeout_s), p.check_model)
        p = self.p = p.model_copy(update={"model": model})  # the model the server lists, where none was given
        checked = check_request(p, plain, min(STREAM_CHECK_TIMEOUT_S, p.timeout_s))
        if p.tokenizer is not None:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(p.tokenizer, local_files_only=True)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="endpoint-http", daemon=True)
        self.thread.start()
        timeout = httpx2.Timeout(p.timeout_s, connect=min(CONNECT_TIMEOUT_S, p.timeout_s))
        limits = httpx2.Limits(max_connections=None, max_keepalive_connections=None)
        self.client = self._on_loop(self._make_client(httpx2, timeout, limits))
        if self.tokenizer is None and self.route is not None:
            self.try_route()
        ctx.declare(**self.setup_facts(httpx2.__version__, models))
        ctx.declare(
            check_request=f"{checked}; sent at setup, before the load and outside it (not a measured request): it also warms the server up "
            "(transformers serve builds its batching manager on its first request)"
        )
        ctx.declare(local_server=self.declare_local_server(ctx))
        self.start_metrics()
        ctx.declare(engine_samples=self.metrics_facts["engine_samples"])

    def start_metrics(self) -> None:
        """The first scrape (the load's start), then the scraper's thread; where there is none or it fails, why (the
        facts' server_metrics). The API key goes to a metrics_url of base_url's origin only."""
        p = self.p
        mine = "; in_flight is this client's open requests"
        if not p.metrics:
            self.metrics_facts = {"engine_samples": "the server's scheduler is not read (metrics: false)" + mine, "unavailable": "metrics: false"}
            return
        url = p.metrics_url or metrics_url(p.base_url)
        headers = {k: v for k, v in self.headers.items() if k != "Authorization" or same_origin(url, p.base_url)}
        scraper = Scraper(url, p.metrics_hz, named_model(p), headers, MAPS.get(p.server))
        scraper.mark("load_start")
        if scraper.once() is None or scraper.map is None:
            why = self.redact(f"{redact_url(url)}: {scraper.last_error}")
            scraper.client.close()
            if p.metrics_url is not None:
                raise ServerProblem(metrics_problem(why))
            self.metrics_facts = {"engine_samples": f"the server's scheduler is not read: no metrics ({why})" + mine, "unavailable": why}
            return
        self.scraper = scraper
        scraper.start()
        self.metrics_facts = {
            "url": redact_url(url),
            "names": scraper.map.label(),
            "rate_hz": p.metrics_hz,
            "series": "series labelled model_name are kept for this model only; a name's kept series are summed (engines of a "
            "data-parallel server), a fraction (KV usage) averaged",
            "engine_samples": f"the latest scrape of {redact_url(url)} ({scraper.map.server} names; at most 1/{p.metrics_hz:g} s + one scrape "
            "old): running, waiting, kv_usage (a fraction: the server gives no bytes), preempted = preemptions since the previous scrape" + mine,
        }

    def try_route(self) -> None:
        """Calibrate the tokenize route at setup, in two calls: a one-word prompt (its count - 1 is the overhead: the
        template and special tokens) and one of every word of the list after it (each word one token when that count
        is the overhead + 1 + len(WORDS): then a prompt of n tokens is n - overhead words with no call during the load).
        A route that fails is not used, with the reason (route_state, a fact)."""
        assert self.route is not None
        if self.route.request(named_model(self.p), "the", self.chat) is None:
            self.route, self.route_state = None, "not used: this server's tokenize route cannot count a chat's template (see the profile's source)"
            return
        try:
            one = self.measure_words(0, 1)
            every = self.measure_words(0, 1 + len(WORDS))
        except ServerProblem as exc:
            self.route, self.route_state = None, self.redact(f"not used: {exc}")
            return
        self.overhead, self.one_token_words = one - 1, every - one == len(WORDS)
        where = f"POST {redact_url(origin(self.p.base_url))}{self.route.chat_path if self.chat else self.route.path}"
        self.route_state = f"{where}: works; overhead (template and special tokens) {self.overhead} token{'s' if self.overhead != 1 else ''}; " + (
            f"each of the list's {len(WORDS)} words one token: no call during the load"
            if self.one_token_words
            else f"the list's {len(WORDS)} words are {every - one} tokens here: each new length is fitted during the load"
        )

    def measure_words(self, index: int, words: int) -> int:
        """The server's count of request `index`'s prompt of `words` words, by its tokenize route (one round trip on the
        loop thread, at most CONNECT_TIMEOUT_S). Raises ServerProblem when the route fails or answers no count."""
        self.tally["tokenize_calls"] += 1
        return self._on_loop(self._tokenize(prompt_words(index, words)))

    async def _tokenize(self, text: str) -> int:
        import httpx2

        assert self.route is not None
        path, body = self.route.request(named_model(self.p), text, self.chat) or ("", {})
        url = origin(self.p.base_url) + path
        try:
            response = await self.client.post(url, json=body, timeout=min(CONNECT_TIMEOUT_S, self.p.timeout_s))
        except httpx2.HTTPError as exc:
            raise ServerProblem(f"the tokenize route {redact_url(url)} failed: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise ServerProblem(f"the tokenize route {redact_url(url)} answered {http_error_text(response.status_code, response.content)}")
        try:
            return self.route.count(response.json(), self.chat)
        except ValueError as exc:
            raise ServerProblem(f"the tokenize route {redact_url(url)} answered no count: {exc}") from None

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
            return (
                None,
                f"none: process {pid} ({how}) is {cls.kin(pid)}: its process tree holds the profiler, whose CPU is already counted; give the server's own pid",
            )
        mismatch = server_pid_mismatch(params)
        return pid, how if mismatch is None else f"{how}; {mismatch}"

    @staticmethod
    def kin(pid: int) -> str:
        """What process `pid`, one of profiler_processes(), is to this one, in words."""
        import os

        import psutil

        if pid == os.getpid():
            return "this workload's own process"
        try:
            name = f" ({psutil.Process(pid).name()})"
        except psutil.Error:
            name = ""
        return f"an ancestor{name} of this workload's process (the profiler that started it, or what started the profiler)"

    def declare_local_server(self, ctx: SetupContext) -> str:
        """Name the local server to the profiler (SetupContext.declare_server: it confirms the one the parent found before
        the run, or names another); what was found, or why not, in words (a fact)."""
        pid, how = self.local_server(self.p)
        if pid is None:
            return how
        try:
            ctx.declare_server(pid, how)
        except ValueError as exc:
            raise ServerProblem(
                f"{exc} ({how}): is the server still running? give its pid as server_pid, or leave server_pid out (a loopback base_url's "
                "server is found by its port)"
            ) from None
        mismatch = server_pid_mismatch(self.p)
        if mismatch is not None:
            ctx.warn(f"local server: {mismatch}; its process tree is sampled as the workload all the same")
        return f"pid {pid} ({how}): its process tree is sampled as the workload (summary local_server), never as contention"

    async def _make_client(self, httpx2: Any, timeout: Any, limits: Any) -> Any:
        return httpx2.AsyncClient(timeout=timeout, limits=limits, headers=self.headers, trust_env=True)

    def _on_loop(self, coroutine: Any) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def setup_facts(self, client_version: str, models: str) -> dict[str, Any]:
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
                "requires_done": profile.sends_done,
                "source": profile.source,
                "logprobs_per_token": profile.logprobs,
                "tokenize_route": None if profile.tokenize is None else f"{profile.tokenize.path} ({profile.tokenize.source})",
            },
            "requested_output": "; ".join(sent) + ("" if profile.ignore_eos or profile.min_tokens else ": the server may stop earlier (counted)"),
            "token_times": "each chunk's arrival in this process (time.monotonic_ns of its event's first line); a chunk of k tokens is k equal times",
            "token_count_method": self.count_method(),
            "logprobs": self.logprobs_fact(),
            "ttft_from": "the first chunk with text (a role-only first chunk is no token)",
            "queueing": "unavailable: HTTP does not show how long a request waited inside the server (scheduled_ns None, queue_s NaN)",
            "prompts": self.prompt_method() + "; a trace's prefix blocks are not reproduced",
            "prompt_count_recorded": (
                "per request (requests.parquet input_tokens, input_tokens_by): the server's final usage prompt_tokens where its stream "
                "carries one (server_usage: what it prefilled), else the count measured when the prompt was built (tokenizer, "
                "tokenize_route), else the requested length (unknown: approximate); a measured count that differs from the server's "
                "is tallied (stream.prompt_count_mismatches), one that differs from the request too (stream.prompts_off_target)"
            ),
            "tokenize_route": self.route_state,
            "server_devices": p.server_devices or "unknown (server_devices not given): the server's devices are the server's, not this machine's",
            "client_resources": "this process: one CPU core of this machine (the HTTP client), no GPU (declared resources)",
            "client": f"httpx2 {client_version}, HTTP/1.1, one asyncio loop on one thread, no connection limit, timeout_s {p.timeout_s:g}",
            "api_key": f"read from ${p.api_key_env} (not recorded)" if p.api_key_env else "none",
        }

    def measured_window(self, edge: str) -> None:
        """plugin.Engine: a scrape asked for at the measured window's start or end (its counters are the window's),
        waited for (at most endpoint_metrics.SCRAPE_TIMEOUT_S; a few ms on a local server): at the start no measured
        request is sent before it (in an open loop the wait is in the sender error of the requests due meanwhile); at the
        end, called on the driver's collecting thread, a closed loop sends its cooldown requests only after it (an open
        loop's sends go on, on their own thread; the requests' times are stamped on the HTTP thread, never late)."""
        if self.scraper is not None:
            self.scraper.mark(edge, wait=True)

    def served_facts(self) -> dict[str, Any]:
        """plugin.Engine: after the load, the stream tally and the server's metrics: the scraper stopped, a last scrape
        (the load's end), the window's counter deltas (endpoint_metrics.deltas) and the load's, checked against this
        client's own counts, and each scrape's cost as measured here."""
        return {"stream": dict(self.tally), "server_metrics": self.server_metrics()}

    def server_metrics(self) -> dict[str, Any]:
        out = {k: v for k, v in self.metrics_facts.items() if k != "engine_samples"}
        s = self.scraper
        if s is None:
            return out
        s.stop()
        if not s.client.is_closed:  # after teardown (a test), no last scrape
            s.mark("load_end")
            s.once(LAST_SCRAPE_TIMEOUT_S)
            s.client.close()
        edges, asked = dict(s.edges), dict(s.asked)
        cost = s.cost()
        if isinstance(cost.get("last_error"), str):
            cost["last_error"] = self.redact(cost["last_error"])
        out["cost"] = {
            **cost,
            "measured": "on this client: time.perf_counter around each GET (seconds_*), the body's bytes, and the parse of its "
            "mapped lines on this client's thread (parse_seconds_*; the first scrape, at setup, parses the whole text); the "
            "server's cost is its CPU for rendering the text (the sampler's server_cpu_percent covers it when the server is local and declared)",
        }
        out["window"] = self.window_deltas(edges, asked)
        out["load"] = self.load_check(edges)
        return out

    def window_deltas(self, edges: dict[str, Any], asked: dict[str, int]) -> dict[str, Any]:
        """The deltas between the scrapes at the measured window's edges, with how late each scrape was (s)."""
        start, end = edges.get("start"), edges.get("end")
        if start is None or end is None:
            missing = "start" if start is None else "end"
            return {"unavailable": {"window": f"no scrape at the measured window's {missing} (the load ended before it, or every scrape failed)"}}
        out = deltas(start.values, end.values)
        out["start_lag_s"] = (start.t_ns - asked["start"]) / 1e9
        out["end_lag_s"] = (end.t_ns - asked["end"]) / 1e9
        out["span_s"] = (end.t_ns - start.t_ns) / 1e9
        out["defined"] = (
            "this run's counters: the scrape at the window's end minus the one at its start (the server's own figures are cumulative "
            "since it started); counters advance as the server works, so a request in flight at an edge (a warmup one at the start, "
            "a cooldown one at the end) counts for what it did inside the window, and requests other clients sent count too"
        )
        return out

    def load_check(self, edges: dict[str, Any]) -> dict[str, Any]:
        """The server's prompt and generation token counters over the whole load (setup's scrape to the last) beside this
        client's: the prompt tokens it asked for and the output tokens it received."""
        start, end = edges.get("load_start"), edges.get("load_end")
        if start is None or end is None:
            return {"unavailable": "no scrape after the load"}
        d = deltas(start.values, end.values)
        received = sum(self.tally["tokens_by_method"].values())
        return {
            "server_prompt_tokens": d.get("prompt_tokens"),
            "client_input_tokens": self.input_tokens_sent,
            "server_generation_tokens": d.get("generation_tokens"),
            "client_output_tokens": received,
            "unavailable": {k: v for k, v in d["unavailable"].items() if k in ("prompt_tokens", "generation_tokens")},
            "compared": "the server's counters from setup to after the last request, against the input_tokens this client asked for "
            "(a chat template adds its own) and the tokens it counted in the streams (token_count_method); a request cut off or "
            "another client's requests make them differ",
        }

    def count_method(self) -> str:
        """How each chunk's tokens are counted, in order (a fact)."""
        first = []
        if self.profile.continuous_usage and not self.logprobs:
            first.append("the server's usage where every chunk carries it")
        if self.logprobs:
            first.append("the chunk's logprobs entries (one per token)")
        first.append("the local tokenizer on the chunk's text" if self.p.tokenizer else "1 token per chunk with text (no tokenizer given)")
        return "per chunk: " + ", else ".join(first) + "; checked against the server's final usage where it sends one (stream)"

    def logprobs_fact(self) -> str:
        """Whether logprobs are asked for, why, and what they cost (a fact)."""
        profile = self.profile
        if self.logprobs:
            asked = "logprobs: 1" if self.p.api == "completions" else "logprobs: true, top_logprobs: 0"
            return (
                f"requested ({asked}) to count each chunk's tokens: the server computes each sampled token's log-probability and each "
                f"chunk grows by about {LOGPROB_ENTRY_BYTES[self.p.api]} bytes of JSON per token; {profile.logprobs_source}"
            )
        if profile.logprobs and self.p.logprobs is False:
            return "not requested (logprobs: false)"
        if profile.logprobs:
            return "not requested: the server's per-chunk usage counts each chunk (set logprobs: true to count by logprobs instead)"
        return profile.logprobs_source

    def prompt_method(self) -> str:
        """How prompts are built to their length and how that length is known (a fact)."""
        template = " (chat: through its chat template)" if self.chat and has_chat_template(self.tokenizer) else ""
        if self.tokenizer is not None:
            without = "; its chat template is missing: the server's template tokens are not counted" if self.chat and not template else ""
            return f"words of a fixed list cut to input_tokens tokens by the local tokenizer{template} and counted per request{without}"
        if self.route is not None:
            counted = "counted as the server counts a prompt" + (" (its chat template included)" if self.chat else "")
            if self.one_token_words:
                return (
                    "input_tokens - overhead words of a fixed list, by the server's tokenize route calibrated at setup (two calls: the overhead from a "
                    f"one-word prompt; every word of the list one token), no call during the load; {counted}"
                )
            return (
                "words of a fixed list, fitted to input_tokens with the server's tokenize route: per length, from input_tokens - overhead words, "
                f"tokenize and move the word count by the difference, at most {MAX_ROUND_TRIPS} calls on the sending thread at the first request of "
                f"each length (those requests are sent late by the round trips: the sender's error), the word count cached per length; {counted}"
            )
        return f"input_tokens words of a fixed list, {APPROXIMATE_BOUND}" + ("; a chat's template adds its tokens" if self.chat else "")

    def teardown(self) -> None:
        """Stop the scraper; cancel what is in flight, close the client, stop the loop thread."""
        if self.scraper is not None:
            self.scraper.stop()
            self.scraper.client.close()
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
        self.input_tokens_sent += request.input_tokens
        future = asyncio.run_coroutine_threadsafe(self._request(request, body), self.loop)
        with self.inflight_lock:
            self.inflight[request.index] = future

    def body(self, r: ServedRequest) -> dict[str, Any]:
        """The JSON body of one request (request_body): its prompt, the requested length, what the server's profile allows."""
        return request_body(self.p, self.prompt(r), r.output_tokens)

    def prompt(self, r: ServedRequest) -> str:
        """The prompt text of input_tokens tokens, its count kept for the record (prompt_counts): the local tokenizer's
        per request, else the tokenize route's for that length (fit_words, cached), else input_tokens words, uncounted."""
        count: int | None
        by: PromptBy
        if self.tokenizer is not None:
            with self.tokenizer_lock:
                text, count = tokenizer_prompt(self.tokenizer, r.index, r.input_tokens, self.chat)
            by = "tokenizer"
        elif self.route is not None and (fitted := self.fit(r)) is not None:
            words, count = fitted
            text, by = prompt_words(r.index, words), "tokenize_route"
        else:
            text, count, by = prompt_words(r.index, r.input_tokens), None, "unknown"
        with self.prompt_lock:
            self.prompt_counts[r.index] = (count, by)
        return text

    def fit(self, r: ServedRequest) -> tuple[int, int] | None:
        """(words, tokens) of a prompt of r.input_tokens by the tokenize route: n - overhead words where every word of
        the list is one token (calibrated at setup), else fitted (fit_words) and cached per length; None when the route
        failed (then it is not used again: route_state says why)."""
        n = r.input_tokens
        if self.one_token_words:
            words = max(1, n - self.overhead)
            return words, words + self.overhead
        if n not in self.fitted:
            before = self.tally["tokenize_calls"]
            try:
                words, count, _ = fit_words(n, n - self.overhead, lambda w: self.measure_words(r.index, w))
            except ServerProblem as exc:
                self.tally["tokenize_calls_in_load"] += self.tally["tokenize_calls"] - before
                self.route, self.route_state = None, self.redact(f"failed during the run, not used after: {exc}")
                return None
            self.tally["tokenize_calls_in_load"] += self.tally["tokenize_calls"] - before
            self.fitted[n] = (words, count)
            self.overhead = count - words
        return self.fitted[n]

    async def _request(self, r: ServedRequest, body: dict[str, Any]) -> None:
        """One request's stream on the loop thread: its chunks stamped as they arrive, its end (or fault) kept; the
        answer queued for `collect`. Cancelled (the driver timed it out): nothing is queued."""
        answer = Answer()
        with self.inflight_lock:
            self.partial[r.index] = answer
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
        with self.inflight_lock:
            self.partial.pop(r.index, None)
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
        error = None if error is None else self.redact(error)
        self.keep_tally(r, answer, counts, len(tokens), status)
        prompt_tokens, by = self.prompt_count(r, answer)
        return {
            "index": r.index,
            "status": status,
            "error": error,
            "scheduled_ns": None,
            "token_ns": tokens,
            "finished_ns": answer.ended_ns,
            "input_tokens": prompt_tokens,
            "input_tokens_by": by,
        }

    def prompt_count(self, r: ServedRequest, answer: Answer) -> tuple[int | None, PromptBy]:
        """The request's prompt tokens and how they are known: the server's usage prompt_tokens, else the count measured
        when the prompt was built, else None (the requested length stays, marked unknown). Tallies them."""
        with self.prompt_lock:
            built, by = self.prompt_counts.pop(r.index, (None, "unknown"))
        served = answer.prompt_tokens if answer.prompt_tokens else None
        if served is not None and built is not None and served != built:
            self.tally["prompt_count_mismatches"] += 1
        count, by = (served, "server_usage") if served is not None else (built, by)
        self.tally["prompts_by"][by] += 1
        self.tally["prompts_off_target"] += count is not None and count != r.input_tokens
        return count, by

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
        """The latest scrape of the server's metrics (Scraper.engine_stats: running, waiting, kv_usage, preempted; all
        None without one); KV bytes None (no server gives them); in_flight is this client's open requests."""
        with self.inflight_lock:
            in_flight = sum(not future.done() for future in self.inflight.values())
        stats = self.scraper.engine_stats() if self.scraper is not None else {"running": None, "waiting": None, "kv_usage": None, "preempted": None}
        return {**stats, "kv_bytes_used": None, "kv_bytes_total": None, "in_flight": in_flight}

    def progress(self, index: int) -> dict[str, Any] | None:
        """plugin.Engine (optional): the tokens a request whose stream is still open has received so far, counted as
        `record` counts an ended one (count_tokens: the chunks so far, one time per token); scheduled_ns None (HTTP does
        not show it). None when the request is not open (never sent, or already ended)."""
        with self.inflight_lock:
            answer = self.partial.get(index)
        if answer is None:
            return None
        chunks = list(answer.chunks)  # appended on the loop thread: a copy of the list as it is now
        if self.tokenizer is not None:
            with self.tokenizer_lock:
                counts = count_tokens(chunks, self._count)
        else:
            counts = count_tokens(chunks, None)
        return {"scheduled_ns": None, "token_ns": token_times(chunks, counts)}

    def cancel(self, index: int) -> None:
        """Close the request's stream (the server sees the client go and, where it can, stops generating)."""
        with self.inflight_lock:
            future = self.inflight.pop(index, None)
            self.partial.pop(index, None)
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
