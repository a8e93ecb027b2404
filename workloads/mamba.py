"""`mamba`: Mamba and Mamba-2 decode, the state-space alternative to the LLM baseline.

transformers' Mamba / Mamba-2 causal LMs, built from published shapes with random weights (or a
local `pretrained:` directory), run by the same prefill + per-token decode loop as `llm_decode`
(decode_loop.py). The per-request state is the conv state plus the SSM state of every layer:
constant in the context length, measured from the cache tensors after every step.

Which kernels ran matters more here than anywhere: the fused selective-scan and causal-conv1d
kernels (mamba_ssm, causal_conv1d; CUDA only) are 20-40x faster than the PyTorch reference path
(Mamba paper, section 4.5). The workload records the path it observed during an untimed probe
in setup (transformers' fallback messages, and whether the kernel packages import), and a slow
path is flagged in the report so it never passes for the real thing.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any, Literal

from pydantic import Field

from profiler.plugin import Declaration, Mark, SetupContext, Trait

from .decode_loop import build_causal_lm, greedy_decode, parameter_facts, random_prompt, resolve_dtype
from .mamba_presets import MAMBA_PRESETS, PUBLISHED_PARAMS, build_mamba_config, scan_flops, state_elements_per_sequence
from .params import DecodeParams
from .state_layers import cache_state_bytes, declared_state_layers

KERNEL_PACKAGES = ("mamba_ssm", "causal_conv1d")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "fall" in text.lower() and ("back" in text.lower() or "fast path" in text.lower()):
            self.messages.append(text.strip())


def new_cache(model: Any) -> Any:
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


class Mamba:
    """Mamba / Mamba-2 decode: prefill + per-token decode with constant-size conv + SSM state."""

    class Params(DecodeParams):
        DEFAULT_PRESET = "mamba-tiny"

        preset: Literal[tuple(MAMBA_PRESETS)] | None = Field(  # type: ignore[valid-type]
            None, description=f"Published architecture, random weights: {', '.join(MAMBA_PRESETS)}. Default mamba-tiny unless `pretrained` is set."
        )

    @classmethod
    def declaration(cls, params: Mamba.Params) -> Declaration:
        """The same request and step as the baseline's decode loop; the state is constant in the context."""
        return Declaration(
            output_unit="token",
            step="decode_step",
            deliveries=("prefill", "decode_step"),
            position_unit="token of context",
            state="SSM conv + ssm state",
            traits=frozenset({Trait.AUTOREGRESSIVE, Trait.CONSTANT_STATE}),
        )

    def __init__(self, params: Mamba.Params) -> None:
        self.p = params
        self.model: Any = None

    def setup(self, ctx: SetupContext) -> None:
        import torch

        p = self.p
        dtype = resolve_dtype(p.dtype, ctx.device)
        config = None if p.pretrained else build_mamba_config(p.preset_name)
        self.model = build_causal_lm(config, p.pretrained, dtype, ctx.device)
        cfg = self.model.config
        if cfg.model_type not in ("mamba", "mamba2"):
            raise ValueError(f"pretrained model is a '{cfg.model_type}', not mamba or mamba2")
        self.input_ids = random_prompt(cfg.vocab_size, p.batch_size, p.prompt_len, ctx.seed, ctx.device)
        kernel = self.probe_kernel_path(ctx.device)
        if not kernel["kernel_path_fused"]:
            ctx.warn(f"kernel path: {kernel['kernel_path']}")
        dtype_bytes = torch.empty((), dtype=dtype).element_size()
        ctx.declare_state(declared_state_layers(cfg, dtype_bytes))
        elements = state_elements_per_sequence(cfg)
        formula = (
            "per layer (d_inner + 2*ngroups*d_state) * d_conv + nheads * headdim * d_state elements"
            if cfg.model_type == "mamba2"
            else "per layer d_inner * d_conv + d_inner * d_state elements"
        )
        ctx.declare(
            model_class=type(self.model).__name__,
            weights=f"pretrained: {p.pretrained}" if p.pretrained else f"random, from preset {p.preset_name}",
            published_param_count=PUBLISHED_PARAMS.get(p.preset_name or ""),
            dtype=str(dtype).removeprefix("torch."),
            **parameter_facts(self.model),
            layers=cfg.num_hidden_layers,
            state_kind="conv state + SSM state (constant in context length)",
            state_formula=formula + " x dtype_bytes, per sequence",
            state_bytes_per_seq=elements * dtype_bytes,
            analytic_flops="selective scan: 9*B*L*d_inner*d_state per layer (Mamba); recurrent 5*B*H*P*N per layer per decode step (Mamba-2)",
            **kernel,
            batch_size=p.batch_size,
            prompt_len=p.prompt_len,
            gen_len=p.gen_len,
        )

    def probe_kernel_path(self, device: str) -> dict[str, Any]:
        """Run one untimed prefill + decode step and record which implementation ran."""
        import torch

        capture = _Capture()
        root = logging.getLogger("transformers")
        level, handlers = root.level, list(root.handlers)
        root.setLevel(logging.WARNING)  # the fallback messages are warnings, whatever the verbosity
        root.handlers = [capture]  # captured into facts and ctx.warn, not printed over the progress bars
        try:
            with torch.inference_mode():
                cache = new_cache(self.model)
                greedy_decode(self.model, self.input_ids[:1, :4], cache, 2, _no_mark, lambda c: 0)
        finally:
            root.handlers = handlers
            root.setLevel(level)
        present = {pkg: importlib.util.find_spec(pkg) is not None for pkg in KERNEL_PACKAGES}
        fused = device.startswith("cuda") and all(present.values()) and not capture.messages
        if fused:
            path = "fused CUDA kernels (mamba_ssm + causal_conv1d)"
        else:
            missing = [pkg for pkg, ok in present.items() if not ok]
            why = (
                "not on CUDA" if not device.startswith("cuda") else (f"not installed: {', '.join(missing)}" if missing else "transformers reported a fallback")
            )
            path = f"SLOW PyTorch reference path ({why}); the fused kernels are 20-40x faster (Mamba section 4.5)"
        return {"kernel_path": path, "kernel_path_fused": fused, "kernel_fallbacks": sorted(set(capture.messages)), "kernel_packages": present}

    def run_once(self, mark: Mark) -> None:
        import torch

        cfg = self.model.config

        def analytic(batch: int, tokens: int, prefill: bool) -> float:
            return scan_flops(cfg, batch, tokens, prefill)

        with torch.inference_mode():
            greedy_decode(self.model, self.input_ids, new_cache(self.model), self.p.gen_len, mark, cache_state_bytes, analytic)

    def teardown(self) -> None:
        self.model = None


class _NoSpan:
    attrs: dict[str, Any] = {}

    def __enter__(self) -> _NoSpan:
        self.attrs = {}
        return self

    def __exit__(self, *exc: Any) -> bool:
        return False


def _no_mark(phase: str, units: float = 0, **attrs: Any) -> _NoSpan:
    return _NoSpan()
