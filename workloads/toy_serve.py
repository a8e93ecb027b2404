"""`toy_serve`: an engine whose request timings are known exactly, for tests and for checking the load driver.

Each request is scheduled `queue_s` after it is submitted, delivers its first token `prefill_s`
later and each further token `token_s` after the previous one; its record carries exactly those
timestamps (time.monotonic_ns arithmetic, not measured sleeps), and `collect` hands it over once the
last token's time has passed. So TPOT = ITL = token_s exactly, whatever the machine's load, and
TTFT = (sent - arrival) + hand-off + queue_s + prefill_s, where the hand-off runs from the driver recording
the request as sent to `submit` reading the clock: measured, not zero (benchmarks/toy_handoff.py: median
45-52 µs, p90 about 70 µs at 100 req/s on a 2-core machine, December 2026; the issue that asked for it saw
33-43 µs). The serving metrics' definitions can be checked to the nanosecond on everything but that hand-off,
which `scheduled_ns - queue_s - sent_ns` gives per request. Requests are served concurrently (no capacity limit). Faults on demand: every
`fail_every`-th request fails; after `die_after` requests the engine dies (collect raises).

It is also the smallest example of the Engine interface (profiler.plugin.Engine); see docs/plugins.md.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

from pydantic import Field

from profiler.plugin import Declaration, Mark, Params, ServedRequest, SetupContext


class ToyServe:
    """An engine with exact, known per-request timings (queue, prefill, per token)."""

    requires_load: ClassVar[bool] = True

    class Params(Params):
        queue_s: float = Field(0.01, ge=0, le=60, allow_inf_nan=False, description="From submission to the engine scheduling the request, 0 to 60 s.")
        prefill_s: float = Field(0.02, ge=0, le=60, allow_inf_nan=False, description="From scheduling to the first token, 0 to 60 s.")
        token_s: float = Field(0.005, ge=0, le=60, allow_inf_nan=False, description="Between consecutive tokens, 0 to 60 s.")
        fail_every: int = Field(0, ge=0, le=1_000_000, description="Every this many-th request fails (0: none).")
        die_after: int | None = Field(None, ge=0, le=1_000_000, description="The engine dies after handing over this many records (None: never).")
        max_positions: int | None = Field(None, ge=2, le=100_000_000, description="Prompt + output tokens a request may hold (None: no limit).")

    @classmethod
    def declaration(cls, params: ToyServe.Params) -> Declaration:
        return Declaration(output_unit="token", deliveries=("prefill", "decode"))

    def __init__(self, params: ToyServe.Params) -> None:
        self.p = params
        self.max_positions = params.max_positions
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._handed = 0

    def setup(self, ctx: SetupContext) -> None:
        ctx.declare(engine="toy (exact timings)", queue_s=self.p.queue_s, prefill_s=self.p.prefill_s, token_s=self.p.token_s)

    def submit(self, request: ServedRequest) -> None:
        p = self.p
        now = time.monotonic_ns()
        scheduled = now + round(p.queue_s * 1e9)
        first = scheduled + round(p.prefill_s * 1e9)
        tokens = [first + round(k * p.token_s * 1e9) for k in range(request.output_tokens)]
        failed = p.fail_every > 0 and (request.index + 1) % p.fail_every == 0
        record = {
            "index": request.index,
            "status": "failed" if failed else "finished",
            "error": "toy failure" if failed else None,
            "scheduled_ns": scheduled,
            "token_ns": tokens[:1] if failed else tokens,
            "finished_ns": tokens[0] if failed else tokens[-1],
        }
        with self._lock:
            self._pending.append(record)

    def progress(self, index: int) -> dict[str, Any] | None:
        """What a request not yet handed over has delivered by now: its scheduling and tokens up to now (Engine.progress)."""
        now = time.monotonic_ns()
        with self._lock:
            record = next((r for r in self._pending if r["index"] == index), None)
        if record is None:
            return None
        scheduled = record["scheduled_ns"] if record["scheduled_ns"] <= now else None
        return {"scheduled_ns": scheduled, "token_ns": [t for t in record["token_ns"] if t <= now]}

    def collect(self, timeout_s: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while True:
            now = time.monotonic_ns()
            with self._lock:
                due = [r for r in self._pending if r["finished_ns"] <= now]
                self._pending = [r for r in self._pending if r["finished_ns"] > now]
            if self.p.die_after is not None and self._handed + len(due) > self.p.die_after:
                due = due[: self.p.die_after - self._handed]
                self._handed += len(due)
                if not due:
                    raise RuntimeError(f"toy engine died after {self._handed} requests (die_after)")
                return due
            if due or time.monotonic() >= deadline:
                self._handed += len(due)
                return due
            time.sleep(0.0005)

    def engine_stats(self) -> dict[str, float | None]:
        with self._lock:
            running = len(self._pending)
        return {"running": running, "waiting": 0, "kv_bytes_used": None, "kv_bytes_total": None, "preempted": None}

    def cancel(self, index: int) -> None:
        with self._lock:
            self._pending = [r for r in self._pending if r["index"] != index]

    def run_once(self, mark: Mark) -> None:
        raise RuntimeError("toy_serve serves requests under a load: block; it has no iterations of its own")

    def teardown(self) -> None:
        self._pending = []
