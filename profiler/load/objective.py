"""The `objective:` block of a workload under load: the SLOs it is judged by and the reader it streams to.

Why: a serving system is not judged by its median latency but per request (DistServe: a request
counts toward goodput only if it meets every SLO) and, for a stream a person reads or hears, by how
far the delivered tokens fall behind the pace the person consumes them (Andes' QoE). Both need
stated parameters, which this block holds; every figure in the report is printed with them.

Defaults (shared/guide/domain-facts.md section 5): DistServe's chatbot SLOs (TTFT 0.25 s, TPOT
0.1 s), a 90% attainment target, and Andes' reading speed of 4.8 tokens/s with an expected TTFT of
1 s.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..plugin import QoE

MIN_SLO_S = 1e-4
"""The tightest SLO: 0.1 ms, below the time one request takes to be handed to an engine, so no request could meet it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


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
