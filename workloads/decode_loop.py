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
    step: Callable[..., Any] | None = None,
    positions: bool = False,
    filled_bytes: Callable[[int], int] | None = None,
) -> Any:
    """Generate `gen_len` tokens per sequence; phases `prefill` (1 token) and `decode_step`. Returns the
    tokens, [B, gen_len] (int64, on the model's device).

    `position` is the number of tokens in the context after the span (the cache length).
    `analytic_flops(batch, tokens, prefill)`, when given, adds FLOPs the counter cannot see to each span.
    `step`: what runs each decode step (a compiled forward); default the model. `positions`: pass each
    token's `cache_position` (a static cache writes there, and a compiled step must not read its length
    from the cache). `filled_bytes(tokens)`, when given (a static cache, allocated in full up front),
    gives `state_bytes` from a formula for the tokens in context, and `state_bytes(cache)` is stored
    as the measured `state_allocated_bytes`.
    """
    import torch

    batch, prompt_len = input_ids.shape  # [B, S]
    cache_kw = {cache_argument(type(model)): cache}
    step = step or model
    where = {"cache_position": torch.arange(prompt_len, device=input_ids.device)} if positions else {}
    with mark("prefill", units=batch, sequences=batch, position=prompt_len) as span:
        out = model(input_ids=input_ids, **cache_kw, **where, use_cache=True, logits_to_keep=1)
        token = out.logits[:, -1].argmax(-1)  # [B]
        token.cpu()  # the first token reaches the host: TTFT ends here
    _state(span, cache, prompt_len, state_bytes, filled_bytes)
    tokens = [token]
    if analytic_flops is not None:
        span.attrs["analytic_flops"] = analytic_flops(batch, prompt_len, True)
    for i in range(1, gen_len):
        if positions:
            where = {"cache_position": torch.tensor([prompt_len + i - 1], device=input_ids.device)}
        with mark("decode_step", units=batch, sequences=batch, position=prompt_len + i) as span:
            out = step(input_ids=token[:, None], **cache_kw, **where, use_cache=True)
            token = out.logits[:, -1].argmax(-1)  # [B]
            token.cpu()
        _state(span, cache, prompt_len + i, state_bytes, filled_bytes)
        tokens.append(token)
        if analytic_flops is not None:
            span.attrs["analytic_flops"] = analytic_flops(batch, 1, False)
    return torch.stack(tokens, dim=1)


def _state(span: Any, cache: Any, tokens: int, state_bytes: Callable[[Any], int], filled_bytes: Callable[[int], int] | None) -> None:
    if filled_bytes is None:
        span.attrs["state_bytes"] = state_bytes(cache)
    else:
        span.attrs["state_bytes"] = filled_bytes(tokens)
        span.attrs["state_allocated_bytes"] = state_bytes(cache)


def resolve_dtype(name: str, device: str) -> Any:
    """'auto' is bfloat16 on CUDA (what serving uses) and float32 on CPU (bf16 matmuls are slow there)."""
    import torch

    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


def build_causal_lm(config: Any, pretrained: str | None, dtype: Any, device: str, **kwargs: Any) -> Any:
    """A transformers causal LM: random weights from `config` built on `device`, or local weights.

    A model transformers cannot build as a causal LM is a ValueError of one line naming its
    model_type; `attn_implementation=None` lets transformers pick the best the model supports.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        if pretrained:
            model = AutoModelForCausalLM.from_pretrained(pretrained, dtype=dtype, local_files_only=True, **kwargs).to(device)
        else:
            with torch.device(device):
                model = AutoModelForCausalLM.from_config(config, dtype=dtype, **kwargs)
    except ValueError as exc:
        model_type = getattr(config, "model_type", None) or getattr(AutoConfig.from_pretrained(pretrained, local_files_only=True), "model_type", "?")
        first = str(exc).strip().splitlines()[0][:200]
        raise ValueError(f"model_type '{model_type}': transformers cannot build it as a causal LM here ({first})") from None
    return model.eval()


def attention_facts(model: Any, requested: str) -> dict[str, Any]:
    """The attention implementation that runs, and why when it is not the one asked for."""
    used = getattr(model.config, "_attn_implementation", None) or "unknown"
    facts: dict[str, Any] = {"attn_implementation": used}
    if requested == "auto":
        facts["attn_implementation_reason"] = "auto: transformers picks the best the model supports" + (
            "" if used == "sdpa" else f" ({type(model).__name__} does not support sdpa here)"
        )
    return facts


def random_prompt(vocab_size: int, batch_size: int, prompt_len: int, seed: int, device: str) -> Any:
    import torch

    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randint(0, vocab_size, (batch_size, prompt_len), generator=generator).to(device)  # [B, S]


def parameter_facts(model: Any) -> dict[str, Any]:
    params = list(model.parameters())
    count = sum(t.numel() for t in params)
    return {"param_count": count, "param_bytes": sum(t.numel() * t.element_size() for t in params)}


def step_weight_bytes(model: Any, batch: int) -> int:
    """Bytes of weights one decode step of `batch` sequences reads, each once: every parameter (a tied table counted
    once), except embedding tables looked up by index (the input tokens' table when untied, GPT-2's learned positions),
    of which a step reads only `batch` rows (row bytes = width x dtype bytes). A table the output projection also uses
    (tied) is read whole by it. The weights half of a decode step's MBU basis (profiler/characterize/roofline.py,
    MBU_BASIS_RULE): declared as the fact `step_weight_bytes`."""
    import torch

    total = parameter_facts(model)["param_bytes"]
    output = model.get_output_embeddings()
    tied = output.weight if output is not None else None
    tables = {id(m.weight): m.weight for m in model.modules() if isinstance(m, torch.nn.Embedding) and m.weight is not tied}
    for table in tables.values():  # [rows, width]
        total += (batch - table.shape[0]) * table[0].numel() * table.element_size()
    return total


@cache
def cache_argument(model_class: type) -> str:
    """The forward() keyword that takes the cache: transformers renamed it over 5.x
    (`past_key_values` for attention models and `cache_params` for Mamba, then `cache` for both)."""
    parameters = inspect.signature(model_class.forward).parameters
    for name in ("cache", "cache_params", "past_key_values"):
        if name in parameters:
            return name
    return "past_key_values"


def compile_mode(device: str) -> str:
    """torch.compile's mode for a decode step: reduce-overhead (CUDA graphs: one launch per step, as gpt-fast and
    vLLM decode run) on CUDA, default on a CPU (no launches to save)."""
    return "reduce-overhead" if device.startswith("cuda") else "default"


def compiled_step(model: Any, mode: str) -> Any:
    """The model's forward (or a function's body) under torch.compile(fullgraph=True), and eager where a torch
    dispatch mode is active (the profiler's counting and tracing passes: compiled code does not run under one, and
    fullgraph makes that an error)."""
    import torch
    from torch.utils._python_dispatch import _get_current_dispatch_mode

    compiled = torch.compile(model.forward if isinstance(model, torch.nn.Module) else model, mode=mode, fullgraph=True)

    def step(*args: Any, **kwargs: Any) -> Any:
        return model(*args, **kwargs) if _get_current_dispatch_mode() is not None else compiled(*args, **kwargs)

    return step
