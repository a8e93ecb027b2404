"""Arrival processes and request sizes: the `load:` block of a serving run and the schedule it produces.

Why: a server's latency depends on *when* requests arrive (bursty or even) and *how large* they
are, so a load run must state both and replay them exactly for a seed. This module is pure (no
engine, no clock): `schedule()` turns a validated `LoadConfig` into a list of `Request`s with send
times in seconds from the start; a driver sends them, and `gap_stats()` checks what was achieved.

Arrival patterns (source: vLLM `bench serve`, `get_request` in vllm/benchmarks/serve.py; summarized
in shared/guide/domain-facts.md section 5):
- gamma: inter-arrival gaps ~ Gamma(shape k = burstiness, scale θ = 1/(rate·k)). Mean gap = kθ =
  1/rate; variance = kθ² = 1/(k·rate²); hence CV of the gaps = 1/sqrt(k). k < 1 is burstier than
  Poisson, k > 1 more even.
- poisson: gamma with k = 1 (exponential gaps, CV 1).
- constant: every gap is exactly 1/rate (CV 0; the k → ∞ limit).
- trace: replay recorded arrival times (seconds), divided by `time_scale` (2.0 = twice as fast).
As in vLLM, the first request is also sent after one gap: send_s[i] = gap_0 + ... + gap_i. With
`rescale: true` (vLLM does this by default; here it is off so the raw process is what is measured)
all send times are multiplied by N/rate / send_s[-1], so the last of N requests lands at exactly
N/rate and the achieved throughput does not vary by 1-2% between seeds. The gaps' shape and CV are
unchanged by the rescale.

Request sizes (tokens, integers 1 to 10,000,000 = MAX_TOKENS, above any model's context): `{fixed: N}`; `{uniform: [lo, hi]}` (inclusive);
`{lognormal: {median: M, sigma: S}}` i.e. exp(Normal(ln M, S)) rounded, so the median is M; or
`from_trace` (pattern trace only) to take the trace's own `input_tokens` / `output_tokens`.
A lognormal may take `max: L`, a cap: min(exp(Normal(ln M, S)), L), rounded. This is the long tail of
reasoning outputs (a right-skewed length distribution cut at the max response length, where the
truncated responses pile up: DeepSeek-R1, arXiv 2501.12948; DAPO's overlong samples, arXiv 2503.14476).
With sigma S the share of draws above L is 1 - Phi(ln(L / M) / S) (e.g. M 256, S 0.8, L 2048: 0.5%);
how many of a schedule's draws were capped is counted (`capped_sizes`) and stated with the run. Without `max`, a
lognormal must keep its 1-in-a-billion draw, median x exp(6 sigma), within MAX_TOKENS (else it is refused: give max),
and a draw above MAX_TOKENS all the same is an error, never a wrapped integer.

Bounds a run can meet (each field's description states its range): rate >= 1e-5/s and burstiness >= 0.01
(below, gamma gaps underflow to 0 and the draw never ends), time_scale >= 0.001, token_scale >= 0.0001,
duration_s <= 86,400 s (the longest measure.max_seconds). What depends on measure.max_seconds (the mean gap,
requests / rate, duration_s, a trace's replayed span) is checked with it in profiler/suite/feasibility.py.

Randomness: one numpy `SeedSequence(seed)` spawns independent generators for arrivals, input sizes
and output sizes, so changing the size distribution leaves the arrival times unchanged.

- closed: `concurrency` requests in flight at all times (N users, each sending its next request when
  the previous one finishes). Its send times depend on response times, so `schedule()` gives every
  request send_s = 0 and the driver (profiler/run/serve.py) holds each until a slot frees; the time
  a request waits for its slot is reported apart from the engine's queueing, as vLLM reports its
  `--max-concurrency` semaphore.

Requests longer than the engine's positions (`long_requests`, applied by `fit_to_positions`):
`clip` shortens each such request (output first kept, input cut to fit); `scale` multiplies every
request's input and output by one factor so the longest fits; `reject` makes it an error. Trace
token counts can also be multiplied by `token_scale` (< 1 to replay a production trace on a small
machine), stated with the run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..loadconfig import MAX_TOKENS, Distribution, LoadConfig, SizeConfig
from ..runmodel import FittedRequests, GapStats

if TYPE_CHECKING:
    import pandas as pd

TRACE_COLUMNS = ("arrival_s", "input_tokens", "output_tokens", "prefix_blocks")


@dataclass
class Request:
    """One request of a schedule.

    index: position in send order (0-based). send_s: seconds after the run's start at which to send
    it. input_tokens / output_tokens: prompt and generated token counts (>= 1). measured: False for
    warmup and cooldown requests (sent, excluded from statistics). prefix_blocks: the trace's
    prefix-block hashes (e.g. Mooncake `hash_ids`, 512-token blocks) when the input comes from the
    trace, else None.
    """

    index: int
    send_s: float
    input_tokens: int
    output_tokens: int
    measured: bool
    prefix_blocks: list[int] | None = None


def _gaps(config: LoadConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """n inter-arrival gaps in seconds for a generated pattern."""
    assert config.rate is not None
    if config.pattern == "constant":
        return np.full(n, 1.0 / config.rate)
    k = 1.0 if config.pattern == "poisson" else (config.burstiness or 1.0)
    return rng.gamma(shape=k, scale=1.0 / (config.rate * k), size=n)


def _generated_times(config: LoadConfig, rng: np.random.Generator) -> np.ndarray:
    assert config.rate is not None
    if config.requests is not None:
        n = config.requests
        if config.pattern == "constant":
            send = np.arange(1, n + 1) / config.rate  # exact, no accumulated rounding
        else:
            send = np.cumsum(_gaps(config, rng, n))
        if config.rescale and send[-1] > 0:
            send = send * (n / config.rate / send[-1])
        return send
    assert config.duration_s is not None
    if config.pattern == "constant":
        n = math.floor(config.duration_s * config.rate + 1e-9)
        return np.arange(1, n + 1) / config.rate
    chunk = int(config.rate * config.duration_s * 1.1) + 64  # deterministic chunking keeps the draw reproducible
    parts: list[np.ndarray] = []
    last = 0.0
    while last <= config.duration_s:
        part = last + np.cumsum(_gaps(config, rng, chunk))
        parts.append(part)
        last = float(part[-1])
    send = np.concatenate(parts)
    return send[send <= config.duration_s]


def _trace_rows(config: LoadConfig, trace: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    missing = [c for c in TRACE_COLUMNS if c not in trace.columns]
    if missing:
        raise ValueError(f"trace DataFrame lacks column(s) {missing}; expected {list(TRACE_COLUMNS)}")
    rows = trace.sort_values("arrival_s", kind="stable")
    if config.sizes is None or config.sizes.output == "from_trace":
        rows = rows.loc[rows["output_tokens"] != 0]  # failed in production (BurstGPT): skipped, counted by failed_trace_rows
    rows = rows.reset_index(drop=True)
    send = rows["arrival_s"].to_numpy(dtype=float) / config.time_scale
    if len(send) and (not np.all(np.isfinite(send)) or send[0] < 0):
        raise ValueError("trace arrival_s must be finite seconds >= 0")
    if config.requests is not None:
        send, rows = send[: config.requests], rows.iloc[: config.requests]
    elif config.duration_s is not None:
        keep = send <= config.duration_s
        send, rows = send[keep], cast("pd.DataFrame", rows[keep])
    return send, rows.reset_index(drop=True)


def failed_trace_rows(config: LoadConfig, trace: pd.DataFrame | None) -> int:
    """Rows of the replayed span of the trace that `schedule` skips: requests that failed in production (0 output
    tokens, as BurstGPT records them), when the output sizes come from the trace. The replayed span is what `requests`
    or `duration_s` cut: up to the last replayed row's arrival (or duration_s after the time_scale); rows after it
    were never candidates and are not counted. 0 without a trace."""
    if trace is None or not (config.sizes is None or config.sizes.output == "from_trace"):
        return 0
    rows = trace.sort_values("arrival_s", kind="stable")
    failed = (rows["output_tokens"] == 0).to_numpy().copy()
    if config.duration_s is not None:
        failed &= rows["arrival_s"].to_numpy(dtype=float) / config.time_scale <= config.duration_s
    elif config.requests is not None:
        kept = np.flatnonzero(~failed)
        if len(kept) >= config.requests:  # rows after the last replayed one are outside the span
            failed[kept[config.requests - 1] + 1 :] = False
    return int(failed.sum())


def _blocks(value: object) -> list[int] | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return [int(b) for b in cast(Iterable[Any], value)]  # a list or an array of block hashes


def schedule(config: LoadConfig, trace: pd.DataFrame | None = None, allow_empty: bool = False) -> list[Request]:
    """The requests of a load run, in send order; deterministic for `config.seed`.

    trace: for pattern trace, a DataFrame with columns `arrival_s` (seconds from the trace's start),
    `input_tokens`, `output_tokens`, `prefix_blocks` (list of ints or None), as the trace reader
    produces; rows are sorted by arrival_s, times divided by `time_scale`, then cut by `requests`
    or `duration_s`. Must be None for the generated patterns.
    Returns a list of `Request` (send_s in seconds, non-decreasing).
    Raises ValueError if the trace is missing or unexpected, lacks a column, has invalid times or
    token counts, or leaves no measured request after warmup and cooldown; and for an empty
    schedule unless `allow_empty` (a short window of a sparse process: no arrival is a valid draw).
    """
    arrivals_ss, input_ss, output_ss = np.random.SeedSequence(config.seed).spawn(3)
    rows = None
    if config.pattern == "trace":
        if trace is None:
            raise ValueError(f"pattern trace needs the trace's DataFrame (read from {config.trace!r})")
        send, rows = _trace_rows(config, trace)
    else:
        if trace is not None:
            raise ValueError(f"pattern {config.pattern} generates its own times; pass no trace")
        send = np.zeros(config.requests or 0) if config.pattern == "closed" else _generated_times(config, np.random.default_rng(arrivals_ss))
    n = len(send)
    if n == 0 and allow_empty:
        return []
    _check_measured(config, n)
    sizes = config.sizes or SizeConfig(input="from_trace", output="from_trace")
    counts = {}
    for side, ss in (("input", input_ss), ("output", output_ss)):
        spec = getattr(sizes, side)
        if spec == "from_trace":
            assert rows is not None
            counts[side] = _trace_counts(config, rows, side)
        else:
            counts[side] = spec.draw(np.random.default_rng(ss), n)
    blocks = rows["prefix_blocks"].tolist() if rows is not None and sizes.input == "from_trace" else [None] * n
    first_cooldown = n - config.cooldown_requests
    return [
        Request(
            index=i,
            send_s=float(send[i]),
            input_tokens=int(counts["input"][i]),
            output_tokens=int(counts["output"][i]),
            measured=config.warmup_requests <= i < first_cooldown,
            prefix_blocks=_blocks(blocks[i]),
        )
        for i in range(n)
    ]


def _check_measured(config: LoadConfig, n: int) -> None:
    """Raises ValueError when `n` scheduled requests are none, or all warmup and cooldown."""
    if n == 0:
        raise ValueError(
            "the schedule is empty (duration_s shorter than the first gap, an empty trace, or a trace whose rows in the span all have 0 "
            "output tokens: requests that failed in production, which are skipped; give sizes.output to replay them)"
        )
    if config.warmup_requests + config.cooldown_requests >= n:
        raise ValueError(
            f"warmup_requests/cooldown_requests: {config.warmup_requests} + {config.cooldown_requests} leave no measured request of the {n} scheduled"
        )


def _trace_counts(config: LoadConfig, rows: pd.DataFrame, side: str) -> np.ndarray:
    """The replayed rows' `side` ("input" or "output") token counts times token_scale, rounded, as int64.
    Raises ValueError for a count below 1 in the trace or one above MAX_TOKENS once scaled."""
    values = rows[f"{side}_tokens"].to_numpy()
    if np.any(values < 1):
        i = int(np.argmax(values < 1))
        raise ValueError(f"trace {side}_tokens must be >= 1 (request {i + 1} of the trace has {values[i]}); drop or fix that request")
    scaled = np.maximum(np.rint(values * config.token_scale), 1)
    if np.any(scaled > MAX_TOKENS):
        i = int(np.argmax(scaled > MAX_TOKENS))
        raise ValueError(
            f"token_scale: trace {side}_tokens of row {i} x token_scale = {values[i]} x {config.token_scale:g} = {scaled[i]:.3g} tokens, "
            f"above the {MAX_TOKENS:,}-token bound on a request; lower token_scale"
        )
    return scaled.astype(np.int64)


def trace_send_times(config: LoadConfig, trace: pd.DataFrame) -> np.ndarray:
    """Send times (seconds, non-decreasing) of the trace rows `schedule` replays for pattern trace, after every
    check `schedule` makes of them (times, the requests/duration_s cut, measured requests left, token counts
    from the trace), without building the requests: for validation, which must not take the time a run does.
    Raises ValueError as `schedule` does."""
    if config.pattern != "trace":
        raise ValueError(f"trace_send_times replays a trace; pattern {config.pattern} generates its own times")
    send, rows = _trace_rows(config, trace)
    _check_measured(config, len(send))
    sizes = config.sizes or SizeConfig(input="from_trace", output="from_trace")
    for side in ("input", "output"):
        if getattr(sizes, side) == "from_trace":
            _trace_counts(config, rows, side)
    return send


def capped_sizes(config: LoadConfig, n: int) -> dict[str, int]:
    """How many of the `n` scheduled requests' sizes were drawn above a lognormal's `max` and set to it, per side
    ("input", "output") whose distribution has a cap; {} when none has. Re-draws with `schedule`'s own generators
    (the same seed and the same n give the same draws), so it counts exactly what `schedule` capped, before
    `fit_to_positions` (whose changes are counted apart)."""
    sizes = config.sizes
    out: dict[str, int] = {}
    if sizes is None:
        return out
    _, input_ss, output_ss = np.random.SeedSequence(config.seed).spawn(3)
    for side, ss in (("input", input_ss), ("output", output_ss)):
        spec = getattr(sizes, side)
        if isinstance(spec, Distribution) and spec.lognormal is not None and spec.lognormal.max is not None:
            out[side] = spec.draw_counted(np.random.default_rng(ss), n)[1]
    return out


def fit_to_positions(requests: list[Request], max_positions: int, policy: str) -> FittedRequests:
    """Make every request fit in `max_positions` (prompt + generated tokens), in place, by `policy`.

    clip: a request with input + output > max_positions keeps min(output, max_positions - 1) output
    tokens and its input is cut to the rest. scale: every request's input and output are multiplied
    by f = max_positions / max(input + output) (floored, each >= 1), so relative sizes stay.
    reject: raises ValueError naming the first request that does not fit.
    Returns the policy, max_positions, the requests changed (touched) and f for scale (else None).
    """
    if max_positions < 2:
        raise ValueError(f"max_positions must be >= 2 (got {max_positions})")
    long = [r for r in requests if r.input_tokens + r.output_tokens > max_positions]
    factor = None
    if long and policy == "reject":
        r = long[0]
        raise ValueError(
            f"request {r.index} needs {r.input_tokens} + {r.output_tokens} positions, above the model's {max_positions} "
            f"({len(long)} requests do); set load.long_requests to clip or scale, or make the requests smaller (load.sizes, or load.token_scale for a trace)"
        )
    if long and policy == "scale":
        factor = max_positions / max(r.input_tokens + r.output_tokens for r in requests)
        for r in requests:
            r.input_tokens = max(1, math.floor(r.input_tokens * factor))
            r.output_tokens = max(1, math.floor(r.output_tokens * factor))
        return FittedRequests(policy=policy, max_positions=max_positions, touched=len(requests), factor=factor)
    for r in long:
        r.output_tokens = min(r.output_tokens, max_positions - 1)
        r.input_tokens = max_positions - r.output_tokens
    return FittedRequests(policy=policy, max_positions=max_positions, touched=len(long), factor=factor)


def gap_stats(send_s: Sequence[float] | np.ndarray) -> GapStats:
    """Statistics of the gaps between consecutive send times (seconds), for reports and tests.

    Returns the number of times n, the mean gap (s), the gaps' CV (sample std / mean: 1 for Poisson, 1/sqrt(k) for
    gamma, 0 for constant; None if the mean gap is 0) and the achieved rate (n - 1) / (last - first) requests per
    second (None if all at once). Raises ValueError for fewer than 2 times or times that go backwards.
    """
    times = np.asarray(send_s, dtype=float)
    if times.ndim != 1 or len(times) < 2:
        raise ValueError(f"gap_stats needs at least 2 send times (got {times.size})")
    gaps = np.diff(times)
    if np.any(gaps < 0):
        raise ValueError("send times must be non-decreasing")
    mean = float(gaps.mean())
    std = float(gaps.std(ddof=1)) if len(gaps) > 1 else 0.0
    span = float(times[-1] - times[0])
    return GapStats(
        requests=len(times),
        mean_gap_s=mean,
        cv_gap=std / mean if mean > 0 else None,
        achieved_rate=(len(times) - 1) / span if span > 0 else None,
    )
