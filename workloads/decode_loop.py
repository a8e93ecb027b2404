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
from functools import cache
from typing import Any

from profiler.plugin import Mark


def greedy_decode(
    model: Any,
    input_ids: Any,
    cache: Any,
    gen_len: int,
    mark: Mark,
    state_bytes: Callable[[Any], int],
    analytic_flops: Callable[[int, int, bool], float] | None = None,
) -> None:
    """Generate `gen_len` tokens per sequence; phases `prefill` (1 token) and `decode_step`.

    `position` is the number of tokens in the context after the span (the cache length).
    `analytic_flops(batch, tokens, prefill)`, when given, adds FLOPs the counter cannot see to each span.
    """
    batch, prompt_len = input_ids.shape  # [B, S]
    cache_kw = {cache_argument(type(model)): cache}
    with mark("prefill", units=batch, position=prompt_len) as span:
        out = model(input_ids=input_ids, **cache_kw, use_cache=True, logits_to_keep=1)
        token = out.logits[:, -1].argmax(-1)  # [B]
        token.cpu()  # the first token reaches the host: TTFT ends here
    span.attrs["state_bytes"] = state_bytes(cache)
    if analytic_flops is not None:
        span.attrs["analytic_flops"] = analytic_flops(batch, prompt_len, True)
    for i in range(1, gen_len):
        with mark("decode_step", units=batch, position=prompt_len + i) as span:
            out = model(input_ids=token[:, None], **cache_kw, use_cache=True)
            token = out.logits[:, -1].argmax(-1)  # [B]
            token.cpu()
        span.attrs["state_bytes"] = state_bytes(cache)
        if analytic_flops is not None:
            span.attrs["analytic_flops"] = analytic_flops(batch, 1, False)


STATE_ATTRIBUTES = ("keys", "values", "conv_states", "recurrent_states", "ssm_states")


def cache_state_bytes(cache: Any) -> int:
    """Bytes of per-request state held by a transformers cache, from its live tensors.

    Attention layers hold `keys`/`values` (the KV cache); Mamba layers hold `conv_states` and
    `recurrent_states` (or `ssm_states` in older caches), as tensors or dicts/lists of tensors.
    """
    total = 0
    holders = getattr(cache, "layers", None) or [cache]
    for holder in holders:
        for name in STATE_ATTRIBUTES:
            total += _tensor_bytes(getattr(holder, name, None))
    return total


def _tensor_bytes(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    if hasattr(value, "element_size"):
        return value.numel() * value.element_size()
    return 0


def resolve_dtype(name: str, device: str) -> Any:
    """'auto' is bfloat16 on CUDA (what serving uses) and float32 on CPU (bf16 matmuls are slow there)."""
    import torch

    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


def build_causal_lm(config: Any, pretrained: str | None, dtype: Any, device: str, **kwargs: Any) -> Any:
    """A transformers causal LM: random weights from `config` built on `device`, or local weights."""
    import torch
    from transformers import AutoModelForCausalLM

    if pretrained:
        model = AutoModelForCausalLM.from_pretrained(pretrained, dtype=dtype, local_files_only=True, **kwargs).to(device)
    else:
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype, **kwargs)
    return model.eval()


def random_prompt(vocab_size: int, batch_size: int, prompt_len: int, seed: int, device: str) -> Any:
    import torch

    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randint(0, vocab_size, (batch_size, prompt_len), generator=generator).to(device)  # [B, S]


def parameter_facts(model: Any) -> dict[str, Any]:
    params = list(model.parameters())
    count = sum(t.numel() for t in params)
    return {"param_count": count, "param_bytes": sum(t.numel() * t.element_size() for t in params)}


@cache
def cache_argument(model_class: type) -> str:
    """The forward() keyword that takes the cache: transformers renamed it over 5.x
    (`past_key_values` for attention models and `cache_params` for Mamba, then `cache` for both)."""
    parameters = inspect.signature(model_class.forward).parameters
    for name in ("cache", "cache_params", "past_key_values"):
        if name in parameters:
            return name
    return "past_key_values"
