"""transformers' continuous batching stepped on the calling thread: the rollout engine of an RL step.

Why not the manager's own background thread (as llm_serve runs it under a load): a rollout is one
synchronous batch, so nothing needs to arrive while it runs, and stepping the engine on the
calling thread lets every forward be a span (its batch occupancy, its tokens, the KV cache after
it) and lets the FLOP and byte counters, which are thread-local, count generation like training.

The engine is transformers 5's `ContinuousBatchingManager` (a paged KV cache of `page_size`-token
pages, FIFO scheduling, at most `max_batch_tokens` tokens per forward) over the rollout's own copy
of the policy's weights. One forward is what the manager's generation loop does per turn
(`prepare_next_batch`, `_generation_step`: the forward with sampling, `update_batch`); those are
internal methods of transformers, so a release that renames them fails here with a one-line
error naming the missing method. Sampling is on (temperature, no top-k or top-p); EOS is disabled,
so each request generates exactly its `max_new_tokens`.
"""

from __future__ import annotations

import math
from typing import Any

from .rollout import StepResult

INTERNALS = ("prepare_next_batch", "update_batch", "has_pending_requests")


class TransformersBatcher:
    """A `rollout.Batcher` over transformers' ContinuousBatchingManager, stepped on the calling thread."""

    def __init__(self, model: Any, *, page_size: int, kv_cache_tokens: int, max_batch_tokens: int, temperature: float, seed: int, prefix_caching: bool) -> None:
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        generation = GenerationConfig(max_new_tokens=1, do_sample=True, temperature=temperature, top_k=0, top_p=1.0, eos_token_id=-1)
        cb = ContinuousBatchingConfig(
            page_size=page_size,
            num_blocks=math.ceil(kv_cache_tokens / page_size),
            max_batch_tokens=max_batch_tokens,
            scheduler_type="fifo",
            seed=seed,
            allow_block_sharing=prefix_caching,
            use_async_batching=False,
        )
        self.manager = model.init_continuous_batching(generation_config=generation, continuous_batching_config=cb)
        self.manager.warmup()  # creates the batch processor and its paged cache (no thread is started)
        self.processor = self.manager.batch_processor
        missing = [m for m in INTERNALS if not callable(getattr(self.processor, m, None))]
        if missing or not callable(getattr(self.manager, "_generation_step", None)):
            raise RuntimeError(f"this transformers release lacks the continuous-batching internals the rollout steps ({missing or ['_generation_step']})")
        cache = self.processor.cache
        self.kv_bytes_total = int(cache.num_sectors * cache.bytes_per_sector)
        self.kv_pages = int(cache.num_blocks)
        self._done: dict[str, list[int]] = {}

    def add(self, key: str, prompt: list[int], max_new_tokens: int) -> None:
        if self.manager.add_request(prompt, request_id=key, max_new_tokens=max_new_tokens, eos_token_id=-1) is None:
            raise RuntimeError(f"the rollout engine refused request {key}")

    def pending(self) -> bool:
        return not self.manager.input_queue.empty() or self.processor.has_pending_requests()

    def step(self) -> StepResult:
        bp = self.processor
        if not bp.prepare_next_batch():
            return StepResult(sequences=0, tokens=0)
        batch = bp.inputs_and_outputs.requests_in_batch
        sequences, tokens = len(batch), sum(1 for f in batch if f.has_new_token)
        self.manager._generation_step()
        bp.update_batch()
        finished = []
        while (out := self.manager.get_result(timeout=0)) is not None:
            if out.is_finished():
                if out.error is not None:
                    raise RuntimeError(f"rollout request {out.request_id} failed in the engine: {str(out.error)[:200]}")
                self._done[out.request_id] = list(out.generated_tokens)
                finished.append(out.request_id)
        return StepResult(sequences=sequences, tokens=tokens, finished=finished)

    def kv_bytes_used(self) -> int:
        return max(0, self.kv_bytes_total - int(self.processor.cache.compute_free_capacity(relative=False)))

    def take_outputs(self) -> dict[str, list[int]]:
        done, self._done = self._done, {}
        return done

    def close(self) -> None:
        self.manager = None
        self.processor = None
