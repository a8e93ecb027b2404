"""`llm_serve`: the standard LLM system, an engine batching requests continuously over a paged KV cache.

The serving baseline for request pattern and objective (LLM decode stays the baseline for
architecture). The engine is transformers' continuous batching (`ContinuousBatchingManager`,
transformers 5: a paged KV cache of `page_size`-token pages, a `fifo` or `prefill_first`
scheduler, at most `max_batch_tokens` tokens per forward), fed by the profiler's load driver
(profiler/run/serve.py): each request is submitted at its arrival and streamed back token by
token, and the engine's own per-token timestamps give TTFT, ITL and TPOT. Nothing is batched by
hand. One manager serves the whole run (creating one costs seconds); setup starts it and sends a
few requests through it untimed, so the first measured requests do not pay for lazy initialisation.

The model is a preset's published architecture with random weights, or a local `pretrained:`
directory, as for llm_decode. Random weights never emit an end-of-sequence token by design here:
the EOS is disabled, so every request generates exactly its requested output length.

Times: the engine stamps with time.perf_counter, which on Linux is CLOCK_MONOTONIC like
time.monotonic_ns (the spans' clock); the offset between the two is measured in setup and applied.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from profiler.plugin import Declaration, Mark, OneOf, ServedRequest, SetupContext, Trait

from .decode_loop import attention_facts, build_causal_lm, parameter_facts, resolve_dtype
from .llm_presets import LLM_PRESETS, build_config
from .params import ModelParams
from .state_layers import declared_state_layers

WARMUP_REQUESTS = 2


class LLMServe:
    """Continuous-batching LLM serving (transformers' ContinuousBatchingManager) under a load."""

    requires_load: ClassVar[bool] = True

    class Params(ModelParams):
        DEFAULT_PRESET = "llama-tiny"

        engine: Literal["transformers"] = Field(
            "transformers",
            description="Serving engine: transformers (continuous batching, paged KV cache). vLLM: the workload type vllm_serve, the same interface.",
        )
        preset: Annotated[str, OneOf(LLM_PRESETS)] | None = Field(
            None, description=f"Published architecture, random weights: {', '.join(LLM_PRESETS)}. Default llama-tiny unless `pretrained` is set."
        )
        scheduler: Literal["fifo", "prefill_first"] = Field(
            "fifo", description="fifo: decoding requests first, new prefills while pages last; prefill_first: waiting prompts first."
        )
        page_size: int = Field(256, ge=1, le=65536, description="Tokens per KV-cache page (transformers' default 256).")
        kv_cache_tokens: int = Field(32768, ge=1, le=100_000_000, description="KV-cache capacity in tokens (pages = ceil(tokens / page_size)).")
        max_batch_tokens: int = Field(512, ge=1, le=10_000_000, description="Most tokens (prompt chunks and decode tokens) in one forward.")
        prefix_caching: bool = Field(
            True, description="Share KV pages of equal prompt prefixes; freed pages are then kept for reuse and count as held in the KV occupancy."
        )

    @classmethod
    def declaration(cls, params: LLMServe.Params) -> Declaration:
        """One request = one iteration span (arrival to last token); deliveries: the first token and each later one."""
        return Declaration(
            output_unit="token",
            deliveries=("prefill", "decode"),
            state="paged KV cache",
            traits=frozenset({Trait.AUTOREGRESSIVE, Trait.KV_CACHE}),
        )

    def __init__(self, params: LLMServe.Params) -> None:
        self.p = params
        self.manager: Any = None
        self.model: Any = None
        self.max_positions: int | None = None
        self._outputs: dict[str, Any] = {}
        self._partial: dict[str, Any] = {}
        """request id -> its latest streamed output not yet finished (progress: what a timed-out request received)."""

    def setup(self, ctx: SetupContext) -> None:
        import numpy as np
        import torch
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        p = self.p
        dtype = resolve_dtype(p.dtype, ctx.device)
        config = None if p.pretrained else build_config(p.preset_name)
        model = self.model = build_causal_lm(config, p.pretrained, dtype, ctx.device)
        text = model.config.get_text_config(decoder=True)
        self.vocab = int(text.vocab_size)
        self.max_positions = getattr(text, "max_position_embeddings", None)
        self.seed = ctx.seed
        self._rng = np.random.default_rng(ctx.seed)
        pages = math.ceil(p.kv_cache_tokens / p.page_size)
        generation = GenerationConfig(max_new_tokens=16, do_sample=False, eos_token_id=-1)
        cb = ContinuousBatchingConfig(
            page_size=p.page_size,
            num_blocks=pages,
            max_batch_tokens=p.max_batch_tokens,
            scheduler_type=p.scheduler,
            seed=ctx.seed,
            allow_block_sharing=p.prefix_caching,
        )
        t0 = time.monotonic()
        self.manager = model.init_continuous_batching(generation_config=generation, continuous_batching_config=cb)
        self.manager.start()
        self.offset_ns = time.monotonic_ns() - time.perf_counter_ns()
        for i in range(WARMUP_REQUESTS):  # untimed: lazy allocations and the first kernels
            self.manager.add_request(self._prompt(ServedRequest(index=-1 - i, input_tokens=16, output_tokens=4)), request_id=f"warmup-{i}", max_new_tokens=4)
        done = 0
        while done < WARMUP_REQUESTS:
            out = self.manager.get_result(timeout=60)
            if out is None:
                raise RuntimeError("the engine produced nothing for its warmup requests within 60 s")
            done += out.is_finished()
        cache = self.manager.batch_processor.cache
        dtype_bytes = torch.empty((), dtype=dtype).element_size()
        layers = declared_state_layers(model.config, dtype_bytes)  # the same per-layer formula as llm_decode
        ctx.declare_state(layers)
        ctx.declare(
            engine="transformers ContinuousBatchingManager",
            engine_start_s=time.monotonic() - t0,
            scheduler=p.scheduler,
            page_size_tokens=p.page_size,
            kv_pages=int(cache.num_blocks),
            kv_cache_bytes=int(cache.num_sectors * cache.bytes_per_sector),
            kv_bytes_per_token=sum(layer.growth_at(1) for layer in layers),
            state_kind="paged KV cache; per layer: " + ", ".join(f"{x.count} x {x.kind}" for x in layers),
            max_batch_tokens=p.max_batch_tokens,
            prefix_caching=bool(cache.use_prefix_sharing),
            kv_bytes_used_counts="pages held by requests" + (" and freed pages kept for prefix reuse" if cache.use_prefix_sharing else ""),
            max_positions=self.max_positions,
            model_type=text.model_type,
            weights=f"pretrained: {p.pretrained}" if p.pretrained else f"random, from preset {p.preset_name}",
            dtype=str(dtype).removeprefix("torch."),
            eos="disabled: random weights never stop by themselves (an EOS would come by chance); each request generates exactly its drawn output length",
            **attention_facts(model, "auto"),
            **parameter_facts(model),
        )

    def _prompt(self, r: ServedRequest) -> list[int]:
        """Random token ids; a request with prefix blocks starts with each block's own ids (equal hashes, equal tokens)."""
        import numpy as np

        ids: list[int] = []
        for h in r.prefix_blocks or []:
            ids.extend(np.random.default_rng([self.seed, int(h) & 0xFFFFFFFF]).integers(1, self.vocab, r.prefix_block_tokens).tolist())
            if len(ids) >= r.input_tokens:
                break
        if len(ids) < r.input_tokens:
            ids.extend(self._rng.integers(1, self.vocab, r.input_tokens - len(ids)).tolist())
        return ids[: r.input_tokens]

    # ---- the Engine interface (profiler.plugin.Engine)
    def submit(self, request: ServedRequest) -> None:
        rid = self.manager.add_request(
            self._prompt(request), request_id=str(request.index), max_new_tokens=request.output_tokens, streaming=True, record_timestamps=True, eos_token_id=-1
        )
        if rid is None:
            raise RuntimeError(f"the engine refused request {request.index} (it is stopping or stopped)")

    def collect(self, timeout_s: float) -> list[dict[str, Any]]:
        m = self.manager
        if m.background_thread_status.fatal_error is not None:
            raise RuntimeError(f"the engine's generation thread failed: {m.background_thread_status.fatal_error}")
        if m._generation_thread is None or not m._generation_thread.is_alive():
            raise RuntimeError("the engine's generation thread is not running")
        records = []
        deadline = time.monotonic() + timeout_s
        while True:
            out = m.get_result(timeout=max(0.0, deadline - time.monotonic()))
            if out is None:
                break
            if out.request_id.startswith("warmup-"):
                continue
            if not out.is_finished():  # a streamed token: its time is in the final output's timestamps
                self._partial[out.request_id] = out
                continue
            self._partial.pop(out.request_id, None)
            start, end = out.lifespan
            records.append(
                {
                    "index": int(out.request_id),
                    "status": "finished" if out.error is None else "failed",
                    "error": None if out.error is None else str(out.error)[:300],
                    "scheduled_ns": self._ns(start) if start > 0 else None,
                    "token_ns": [self._ns(t) for t in (out.timestamps or [])],
                    "finished_ns": self._ns(end) if end > 0 else None,
                }
            )
            if time.monotonic() >= deadline:
                break
        return records

    def _ns(self, perf_s: float) -> int:
        return round(perf_s * 1e9) + self.offset_ns

    def engine_stats(self) -> dict[str, float | None]:
        bp = self.manager.batch_processor
        if bp is None:
            return {"running": None, "waiting": None, "kv_bytes_used": None, "kv_bytes_total": None, "preempted": None}
        for _ in range(3):  # the engine thread mutates these dicts; a read during a resize is retried
            try:
                waiting = list(bp.scheduler.waiting_requests.values())
                running = len(bp.scheduler.active_requests)
                break
            except RuntimeError:
                continue
        else:
            return {"running": None, "waiting": None, "kv_bytes_used": None, "kv_bytes_total": None, "preempted": None}
        cache = bp.cache
        total = cache.num_sectors * cache.bytes_per_sector
        free = cache.compute_free_capacity(relative=False)
        return {
            "running": running,
            "waiting": len(waiting) + self.manager.input_queue.qsize(),
            "kv_bytes_used": max(0, total - free),
            "kv_bytes_total": total,
            "preempted": sum(1 for s in waiting if getattr(s, "is_cpu_offloaded", False)),
        }

    def progress(self, index: int) -> dict[str, Any] | None:
        """A request that has not ended, as of the last streamed output `collect` took (Engine.progress)."""
        out = self._partial.get(str(index))
        if out is None:
            return None
        start = out.lifespan[0]
        return {"scheduled_ns": self._ns(start) if start > 0 else None, "token_ns": [self._ns(t) for t in (out.timestamps or [])]}

    def cancel(self, index: int) -> None:
        self.manager.cancel_request(str(index))

    def run_once(self, mark: Mark) -> None:
        raise RuntimeError("llm_serve serves requests under a load: block; it has no iterations of its own")

    def teardown(self) -> None:
        if self.manager is not None:
            self.manager.stop(block=True, timeout=10)
        self.manager = None
        self.model = None
