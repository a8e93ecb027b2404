"""The `load:` and `objective:` blocks of a workload under load, as typed models of their own.

Why: a load run is configured by the suite (profiler/suite/config.py), scheduled (profiler/load/arrivals.py),
driven (profiler/run/serve.py) and read back from every summary.json (`runmodel.Serving.load`) and every
config.resolved.yaml (`runmodel.ResolvedSuite`). One model, low in the house, serves all of them, so no reader
takes the block apart by string keys.

`LoadConfig` is when requests are sent and how large they are (the arrival processes, size distributions and
their bounds are defined in profiler/load/arrivals.py's docstring, which `schedule` follows). `Objective` is how
each request is judged: DistServe's per-request SLOs (a request counts toward goodput only if it meets every one)
and Andes' QoE reader. Defaults (shared/guide/domain-facts.md section 5): TTFT 0.25 s, TPOT 0.1 s, a 90%
attainment target, 4.8 tokens/s read with an expected TTFT of 1 s.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .plugin import QoE

MAX_REQUESTS = 10_000_000
MAX_TOKENS = 10_000_000
"""The most tokens one request's input or output may have: above the longest context of any model (Llama 4 Scout: 10M)."""
LOGNORMAL_TAIL_Z = 6.0
"""A lognormal without `max` must keep its 1-in-a-billion draw, median * exp(6 sigma), within MAX_TOKENS."""
MIN_RATE = 1e-5
"""Requests per second: one per 100,000 s, already longer than the longest run (measure.max_seconds <= 86,400 s)."""
MIN_BURSTINESS = 0.01
"""Gamma shape k: a gap CV of 10; below it nearly every gap underflows to 0 and the rest are astronomically long."""


class _Strict(BaseModel):
    # Same settings as profiler.suite.config.StrictModel, which imports this module (not the other way round).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


TokenCount = Annotated[int, Field(ge=1, le=MAX_TOKENS)]


class LogNormal(_Strict):
    """Token counts min(exp(Normal(ln median, sigma)), max), rounded to integers >= 1 (no cap without max)."""

    median: float = Field(ge=1, le=MAX_TOKENS, description="Median token count (the lognormal's exp(mu)), 1 to 10,000,000.")
    sigma: float = Field(ge=0, le=10, description="Standard deviation of ln(tokens); 0 gives the median every time.")
    max: int | None = Field(
        None,
        ge=1,
        le=MAX_TOKENS,
        description="Cap: a draw above it is set to it (e.g. the max response length); the run states how many were. Needed when sigma is wide.",
    )

    @model_validator(mode="after")
    def _cap_above_median(self) -> LogNormal:
        if self.max is not None and self.max < self.median:
            raise ValueError(f"lognormal: max ({self.max}) is below the median ({self.median:g}), so most draws would be capped; give max >= median")
        tail = self.median * math.exp(LOGNORMAL_TAIL_Z * self.sigma)
        if self.max is None and tail > MAX_TOKENS:
            raise ValueError(
                f"lognormal: median {self.median:g}, sigma {self.sigma:g} without max draws above {MAX_TOKENS:,} tokens (the bound on a request) "
                f"more often than once in a billion (median x exp(6 sigma) = {tail:.3g}); give max, the longest size (e.g. the max response length)"
            )
        return self

    def draw_continuous(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n uncapped, unrounded draws exp(Normal(ln median, sigma)) (float64, shape (n,))."""
        return rng.lognormal(mean=math.log(self.median), sigma=self.sigma, size=n)


class Distribution(_Strict):
    """Exactly one of `fixed`, `uniform`, `lognormal`: a token-count distribution."""

    fixed: int | None = Field(None, ge=1, le=MAX_TOKENS, description="Every request has exactly this many tokens (1 to 10,000,000).")
    uniform: list[TokenCount] | None = Field(
        None, min_length=2, max_length=2, description="[lo, hi]: token counts drawn uniformly from lo..hi inclusive (1 <= lo <= hi <= 10,000,000)."
    )
    lognormal: LogNormal | None = Field(None, description="{median: M, sigma: S, max: L}: lognormal token counts with median M, capped at L when max is given.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Distribution:
        given = [k for k in ("fixed", "uniform", "lognormal") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a size distribution takes exactly one of fixed, uniform, lognormal (got {given or 'none'})")
        if self.uniform is not None:
            lo, hi = self.uniform
            if not 1 <= lo <= hi:
                raise ValueError(f"uniform: [lo, hi] needs 1 <= lo <= hi (got [{lo}, {hi}])")
        return self

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n token counts (int64, each >= 1) from this distribution."""
        return self.draw_counted(rng, n)[0]

    def draw_counted(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, int]:
        """(n token counts (int64, shape (n,), each >= 1), how many draws were above the lognormal's max and set to
        it (0 without a cap)). The same draws as `draw` for the same generator state."""
        if self.fixed is not None:
            return np.full(n, self.fixed, dtype=np.int64), 0
        if self.uniform is not None:
            lo, hi = self.uniform
            return rng.integers(lo, hi + 1, size=n, dtype=np.int64), 0
        assert self.lognormal is not None
        values = self.lognormal.draw_continuous(rng, n)
        cap = self.lognormal.max
        if cap is None and n and float(values.max()) > MAX_TOKENS:  # validation keeps this below 1 in 1e9 per draw
            raise ValueError(f"sizes: a lognormal draw of {float(values.max()):.3g} tokens is above the {MAX_TOKENS:,}-token bound; give the lognormal a max")
        capped = 0 if cap is None else int(np.count_nonzero(values > cap))
        if cap is not None:
            values = np.minimum(values, cap)
        return np.maximum(np.rint(values), 1).astype(np.int64), capped


SizeSpec = Distribution | Literal["from_trace"]


class SizeConfig(_Strict):
    """Input (prompt) and output (generated) token counts per request."""

    input: SizeSpec = Field(description="Prompt tokens: {fixed: N}, {uniform: [lo, hi]}, {lognormal: {median: M, sigma: S, max: L}}, or from_trace.")
    output: SizeSpec = Field(description="Generated tokens: {fixed: N}, {uniform: [lo, hi]}, {lognormal: {median: M, sigma: S, max: L}}, or from_trace.")


class LoadConfig(_Strict):
    """The `load:` block: when requests are sent (pattern) and how large they are (sizes)."""

    pattern: Literal["poisson", "gamma", "constant", "trace", "closed"] = Field(
        description=(
            "Arrival process: poisson (exponential gaps), gamma (gaps with CV 1/sqrt(burstiness)), constant (even gaps), "
            "trace (recorded times), closed (a fixed number of requests in flight)."
        )
    )
    concurrency: int | None = Field(None, ge=1, le=100_000, description="Requests in flight at all times (pattern closed only, required there).")
    rate: float | None = Field(
        None,
        ge=MIN_RATE,
        le=1_000_000,
        description="Mean requests per second, 1e-5 to 1e6 (its mean gap 1/rate must also fit in measure.max_seconds); required except for pattern trace.",
    )
    burstiness: float | None = Field(
        None,
        ge=MIN_BURSTINESS,
        le=1_000_000,
        description="Gamma shape k, 0.01 to 1e6 (pattern gamma only, default 1.0 = Poisson): gap CV = 1/sqrt(k); < 1 burstier, > 1 more even.",
    )
    rescale: bool = Field(
        False, description="Scale the send times so the last of `requests` lands at requests/rate, as vLLM bench serve does (needs rate and requests)."
    )
    trace: str | None = Field(None, min_length=1, description="Path of the request trace to replay (pattern trace only).")
    time_scale: float = Field(
        1.0, ge=0.001, le=1_000_000, description="Trace arrival times are divided by this, 0.001 to 1e6: 2.0 replays twice as fast (pattern trace only)."
    )
    token_scale: float = Field(
        1.0,
        ge=0.0001,
        le=1000,
        description="Trace token counts are multiplied by this, 0.0001 to 1000 (rounded, >= 1): 0.1 replays a production trace's shape on a small model.",
    )
    long_requests: Literal["clip", "scale", "reject"] = Field(
        "clip",
        description="Requests longer than the model's positions: clip (cut the input to fit), scale (shrink all by one factor), reject (an error).",
    )
    requests: int | None = Field(
        None, ge=1, le=MAX_REQUESTS, description="Number of requests; give this or duration_s (a trace may give either to cut it, or neither)."
    )
    duration_s: float | None = Field(
        None,
        ge=0.001,
        le=86_400,
        description="Send requests whose send time is <= this many seconds, 0.001 to 86,400 (and at most measure.max_seconds); give this or requests.",
    )
    warmup_requests: int = Field(0, ge=0, le=MAX_REQUESTS, description="The first this many requests are sent but excluded from statistics.")
    cooldown_requests: int = Field(0, ge=0, le=MAX_REQUESTS, description="The last this many requests are sent but excluded from statistics.")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seed of the arrival and size draws; the same seed gives the same schedule.")
    sizes: SizeConfig | None = Field(None, description="Token counts per request; required except for pattern trace, where it defaults to from_trace.")

    @model_validator(mode="after")
    def _consistent(self) -> LoadConfig:
        trace = self.pattern == "trace"
        if (self.pattern == "closed") != (self.concurrency is not None):
            raise ValueError("concurrency: pattern closed needs concurrency (requests in flight), and only pattern closed takes it")
        if not trace and self.token_scale != 1.0:
            raise ValueError(f"token_scale: only pattern trace takes token_scale (pattern is {self.pattern}; set sizes directly)")
        if trace:
            for name in ("rate", "burstiness"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: pattern trace takes its times from the trace; remove {name}")
            if self.trace is None:
                raise ValueError("trace: pattern trace needs trace (the path of the trace file)")
            if self.rescale:
                raise ValueError("rescale: only generated patterns (poisson, gamma, constant) can be rescaled, not trace")
            if self.requests is not None and self.duration_s is not None:
                raise ValueError("requests/duration_s: give at most one of them to cut the trace, not both")
        else:
            if self.pattern == "closed":
                if self.rate is not None or self.burstiness is not None or self.rescale:
                    raise ValueError("rate: pattern closed sends the next request when one finishes; remove rate, burstiness and rescale")
                if self.requests is None:
                    raise ValueError("requests: pattern closed needs requests (how many to send in all)")
            elif self.rate is None:
                raise ValueError(f"rate: pattern {self.pattern} needs rate (requests per second, > 0)")
            if self.burstiness is not None and self.pattern != "gamma":
                raise ValueError(f"burstiness: only pattern gamma takes burstiness (pattern is {self.pattern}; poisson is gamma with burstiness 1)")
            if self.trace is not None:
                raise ValueError(f"trace: only pattern trace takes a trace file (pattern is {self.pattern})")
            if self.time_scale != 1.0:
                raise ValueError(f"time_scale: only pattern trace takes time_scale (pattern is {self.pattern})")
            if (self.requests is None) == (self.duration_s is None):
                both = "both were given" if self.requests is not None else "neither was given"
                raise ValueError(f"requests/duration_s: pattern {self.pattern} needs exactly one of requests or duration_s ({both})")
            if self.rescale and self.requests is None:
                raise ValueError("rescale: needs requests (the last of N requests is put at N/rate); with duration_s there is no N")
            if self.duration_s is not None and self.rate is not None and self.rate * self.duration_s > MAX_REQUESTS:
                raise ValueError(f"duration_s: rate x duration_s = {self.rate * self.duration_s:.0f} requests, above the limit of {MAX_REQUESTS}")
            if self.sizes is None:
                raise ValueError(f"sizes: pattern {self.pattern} needs sizes (input and output token distributions)")
            for side in ("input", "output"):
                if getattr(self.sizes, side) == "from_trace":
                    raise ValueError(f"sizes.{side}: from_trace needs pattern trace (pattern is {self.pattern})")
        if self.requests is not None and self.warmup_requests + self.cooldown_requests >= self.requests:
            raise ValueError(
                f"warmup_requests/cooldown_requests: {self.warmup_requests} + {self.cooldown_requests} leave no measured request of {self.requests}"
            )
        return self


MIN_SLO_S = 1e-4
"""The tightest SLO: 0.1 ms, below the time one request takes to be handed to an engine, so no request could meet it."""


class SLO(_Strict):
    """Latency objectives per request, in seconds; a request meets the SLO when it meets every one given."""

    ttft_s: float | None = Field(
        default=0.25, ge=MIN_SLO_S, le=86_400, description="Time to first token from arrival, at most, 0.0001 to 86,400 s (DistServe chatbot: 0.25 s)."
    )
    tpot_s: float | None = Field(
        default=0.1, ge=MIN_SLO_S, le=86_400, description="Time per output token after the first, at most, 0.0001 to 86,400 s (DistServe chatbot: 0.1 s)."
    )
    e2e_s: float | None = Field(
        default=None, ge=MIN_SLO_S, le=86_400, description="End-to-end latency from arrival, at most, 0.0001 to 86,400 s (none by default)."
    )

    def stated(self) -> str:
        parts = [f"{name} <= {getattr(self, f'{name}_s'):g} s" for name in ("ttft", "tpot", "e2e") if getattr(self, f"{name}_s") is not None]
        return ", ".join(parts) or "none"


class Objective(_Strict):
    """How each request of a load run is judged."""

    slo: SLO = Field(default_factory=SLO, description="Per-request SLOs; goodput counts the requests that meet all of them.")
    attainment_target: float = Field(
        default=0.9, ge=0.01, le=1, description="SLO attainment a rate must reach to count as sustained, 0.01 to 1 (DistServe: 90%)."
    )
    qoe: QoE = Field(default_factory=QoE, description="The reader's expected timeline (Andes).")
