"""`llm_decode`: the baseline every other domain is compared to.

A causal LM from transformers: a preset's published Llama/Qwen architecture with random weights
(no download), or any model AutoModelForCausalLM builds from a local `pretrained:` directory (the
text model of a multimodal checkpoint). Each iteration is one batch of requests: an explicit
prefill, then one decode step per token with the model's DynamicCache (see decode_loop.py). The
state is measured from the storages behind the cache after every step and declared per layer
from the model's own config (state_layers.py: full, sliding-window, chunked or latent attention,
recurrent layers): for a Llama-style model 2 * layers * kv_heads * head_dim * dtype_bytes per
token per sequence (vLLM, SOSP'23, section 3). The summary checks one against the other.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from profiler.plugin import Declaration, Mark, OneOf, SetupContext, Trait

from .decode_loop import (
    attention_facts,
    build_causal_lm,
    compile_mode,
    compiled_step,
    greedy_decode,
    parameter_facts,
    random_prompt,
    resolve_dtype,
    step_weight_bytes,
)
from .llm_presets import LLM_PRESETS, build_config
from .params import DecodeParams
from .state_layers import cache_state_bytes, declared_state_layers, formula_state_bytes


class LLMDecode:
    """Llama-family LLM decode: prefill + per-token decode with a KV cache (the baseline)."""

    class Params(DecodeParams):
        DEFAULT_PRESET = "llama-tiny"

        preset: Annotated[str, OneOf(LLM_PRESETS)] | None = Field(
            None, description=f"Published architecture, random weights: {', '.join(LLM_PRESETS)}. Default llama-tiny unless `pretrained` is set."
        )
        attn_implementation: Literal["auto", "sdpa", "eager"] = Field(
            "auto", description="transformers attention backend; auto: the best the model supports (sdpa, else eager), recorded with the reason."
        )
        cache: Literal["dynamic", "static"] = Field(
            "dynamic", description="dynamic: a DynamicCache that grows each step; static: a StaticCache allocated for prompt + gen tokens up front."
        )
        compile: bool = Field(
            False, description="torch.compile the decode step (fullgraph; CUDA graphs on CUDA, as gpt-fast and vLLM decode run); needs cache: static."
        )

        @model_validator(mode="after")
        def _compile_needs_static(self) -> LLMDecode.Params:
            if self.compile and self.cache != "static":
                raise ValueError("compile: true needs cache: static (a dynamic cache changes shape every step, so each step would recompile)")
            return self

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
        attention = None if p.attn_implementation == "auto" else p.attn_implementation
        model = self.model = build_causal_lm(config, p.pretrained, dtype, ctx.device, attn_implementation=attention)
        text = model.config.get_text_config(decoder=True)  # a multimodal checkpoint decodes its text model
        limit = getattr(text, "max_position_embeddings", None) or getattr(text, "n_positions", None)
        if limit is not None and p.prompt_len + p.gen_len > limit:
            raise ValueError(f"prompt_len + gen_len = {p.prompt_len + p.gen_len} exceeds the model's max_position_embeddings ({limit})")
        self.input_ids = random_prompt(text.vocab_size, p.batch_size, p.prompt_len, ctx.seed, ctx.device)
        dtype_bytes = torch.empty((), dtype=dtype).element_size()
        layers = declared_state_layers(model.config, dtype_bytes)
        ctx.declare_state(layers)
        facts = parameter_facts(model)
        embedding = model.get_input_embeddings().weight.numel()
        output = model.get_output_embeddings()
        tied = getattr(text, "tie_word_embeddings", False) or output is None or output.weight is model.get_input_embeddings().weight
        ctx.declare(
            model_type=text.model_type,
            model_class=type(model).__name__,
            weights=f"pretrained: {p.pretrained}" if p.pretrained else f"random, from preset {p.preset_name}",
            dtype=str(dtype).removeprefix("torch."),
            **attention_facts(model, p.attn_implementation),
            **facts,
            non_embedding_param_count=facts["param_count"] - embedding - (0 if tied else output.weight.numel()),
            step_weight_bytes=step_weight_bytes(model, p.batch_size),
            layers=text.num_hidden_layers,
            state_kind="transformers DynamicCache; per layer: " + ", ".join(f"{x.count} x {x.kind}" for x in layers),
            batch_size=p.batch_size,
            prompt_len=p.prompt_len,
            gen_len=p.gen_len,
        )
        self.cache = self.step = None
        self.layers = layers
        if p.cache == "static":
            from transformers import StaticCache

            self.cache = StaticCache(config=model.config, max_cache_len=p.prompt_len + p.gen_len)
            mode = compile_mode(ctx.device)
            if p.compile:
                self.step = compiled_step(model, mode)
            ctx.declare(
                cache="static",
                compiled=f"torch.compile(mode={mode!r}, fullgraph=True) of the decode step; the prefill runs eager; the untimed counting "
                "and tracing passes run the step eager (torch.compile does not run under their dispatch modes): their work and operator mix "
                "are the eager step's"
                if p.compile
                else None,
                state_bytes_source="formula: the static cache is allocated in full up front; state_bytes on the spans is its filled part "
                "from the per-layer formula, state_allocated_bytes the measured allocation",
            )

    def run_once(self, mark: Mark) -> None:
        import torch
        from transformers import DynamicCache

        with torch.inference_mode():
            if self.cache is None:
                self.tokens = greedy_decode(self.model, self.input_ids, DynamicCache(config=self.model.config), self.p.gen_len, mark, cache_state_bytes)
                return
            self.cache.reset()
            p = self.p
            self.tokens = greedy_decode(
                self.model,
                self.input_ids,
                self.cache,
                p.gen_len,
                mark,
                cache_state_bytes,
                step=self.step,
                positions=True,
                filled_bytes=lambda tokens: formula_state_bytes(self.layers, tokens, p.batch_size),
            )

    def teardown(self) -> None:
        self.model = self.cache = self.step = None
