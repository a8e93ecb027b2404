"""The autoregressive decode loop, as a streaming server runs it, shared by LLM and SSM workloads.

An explicit prefill (its end is the first token on the host) and one forward per later token
with the model's cache: greedy next token, copied to the host as a server would stream it. Not
`generate()`: its sampling, stopping and bookkeeping are not what we measure, and it would hide
the per-token boundaries. The state (KV cache, SSM state) is measured from the live cache tensors
after each step, outside the timed region.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from profiler.plugin import Mark


def greedy_decode(model: Any, input_ids: Any, cache: Any, gen_len: int, mark: Mark, state_bytes: Callable[[Any], int]) -> None:
    """Generate `gen_len` tokens per sequence; phases `prefill` (1 token) and `decode_step`.

    `position` is the number of tokens in the context after the span (the cache length).
    """
    batch, prompt_len = input_ids.shape  # [B, S]
    cache_kw = {cache_argument(type(model)): cache}
    with mark("prefill", units=batch, position=prompt_len) as span:
        out = model(input_ids=input_ids, **cache_kw, use_cache=True, logits_to_keep=1)
        token = out.logits[:, -1].argmax(-1)  # [B]
        token.cpu()  # the first token reaches the host: TTFT ends here
    span.attrs["state_bytes"] = state_bytes(cache)
    for i in range(1, gen_len):
        with mark("decode_step", units=batch, position=prompt_len + i) as span:
            out = model(input_ids=token[:, None], **cache_kw, use_cache=True)
            token = out.logits[:, -1].argmax(-1)  # [B]
            token.cpu()
        span.attrs["state_bytes"] = state_bytes(cache)


@lru_cache(maxsize=None)
def cache_argument(model_class: type) -> str:
    """transformers renamed `past_key_values` to `cache` in 5.2x; use whichever forward() takes."""
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"
