"""`llm_decode`: the baseline every other domain is compared to.

A Llama-family causal LM from transformers, built from a preset's published architecture with
random weights (no download) or loaded from a local `pretrained:` directory. Each iteration is
one batch of requests: an explicit prefill, then one decode step per token with a DynamicCache
(see decode_loop.py). The KV cache is measured from its tensors after every step; for this
architecture it must equal 2 * layers * kv_heads * head_dim * dtype_bytes per token per sequence
(vLLM, SOSP'23, section 3), and the workload declares that formula so the report can check it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from profiler.plugin import Declaration, Mark, SetupContext, Trait

from .decode_loop import build_causal_lm, cache_state_bytes, greedy_decode, parameter_facts, random_prompt, resolve_dtype
from .llm_presets import LLM_PRESETS, build_config
from .params import DecodeParams


class LLMDecode:
    """Llama-family LLM decode: prefill + per-token decode with a KV cache (the baseline)."""

    class Params(DecodeParams):
        DEFAULT_PRESET = "llama-tiny"

        preset: Literal[tuple(LLM_PRESETS)] | None = Field(  # type: ignore[valid-type]
            None, description=f"Published architecture, random weights: {', '.join(LLM_PRESETS)}. Default llama-tiny unless `pretrained` is set."
        )
        attn_implementation: Literal["sdpa", "eager"] = Field("sdpa", description="transformers attention backend.")

    @classmethod
    def declaration(cls, params: LLMDecode.Params) -> Declaration:
        """One request = one iteration (a batch of sequences); one step = one decode step."""
        return Declaration(
            output_unit="token",
            step="decode_step",
            deliveries=("prefill", "decode_step"),
            position_unit="token of context",
            state="KV cache",
            traits=frozenset({Trait.AUTOREGRESSIVE, Trait.KV_CACHE}),
        )

    def __init__(self, params: LLMDecode.Params) -> None:
        self.p = params
        self.model: Any = None

    def setup(self, ctx: SetupContext) -> None:
        import torch

        p = self.p
        dtype = resolve_dtype(p.dtype, ctx.device)
        config = None if p.pretrained else build_config(p.preset_name)
        model = self.model = build_causal_lm(config, p.pretrained, dtype, ctx.device, attn_implementation=p.attn_implementation)
        cfg = model.config
        limit = getattr(cfg, "max_position_embeddings", None)
        if limit is not None and p.prompt_len + p.gen_len > limit:
            raise ValueError(f"prompt_len + gen_len = {p.prompt_len + p.gen_len} exceeds the model's max_position_embeddings ({limit})")
        self.input_ids = random_prompt(cfg.vocab_size, p.batch_size, p.prompt_len, ctx.seed, ctx.device)

        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        dtype_bytes = torch.empty((), dtype=dtype).element_size()
        facts = parameter_facts(model)
        embedding = model.get_input_embeddings().weight.numel()
        ctx.declare(
            model_class=type(model).__name__,
            weights=f"pretrained: {p.pretrained}" if p.pretrained else f"random, from preset {p.preset_name}",
            dtype=str(dtype).removeprefix("torch."),
            attn_implementation=p.attn_implementation,
            **facts,
            non_embedding_param_count=facts["param_count"] - embedding - (0 if cfg.tie_word_embeddings else model.get_output_embeddings().weight.numel()),
            layers=cfg.num_hidden_layers,
            kv_heads=cfg.num_key_value_heads,
            head_dim=head_dim,
            state_kind="KV cache (transformers DynamicCache: grows by concatenation each step)",
            state_formula="2 * layers * kv_heads * head_dim * dtype_bytes per token per sequence",
            state_bytes_per_token_per_seq=2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * dtype_bytes,
            batch_size=p.batch_size,
            prompt_len=p.prompt_len,
            gen_len=p.gen_len,
        )

    def run_once(self, mark: Mark) -> None:
        import torch
        from transformers import DynamicCache

        with torch.inference_mode():
            cache = DynamicCache(config=self.model.config)
            greedy_decode(self.model, self.input_ids, cache, self.p.gen_len, mark, cache_state_bytes)

    def teardown(self) -> None:
        self.model = None
