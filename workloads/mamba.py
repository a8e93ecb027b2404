"""`mamba`: SSM and hybrid decode, the state-space alternative to the LLM baseline.

transformers' causal LMs whose layers keep a recurrent state instead of (or beside) a KV cache:
Mamba and Mamba-2 presets built from published shapes with random weights, or a local
`pretrained:` directory of any family in `SSM_FAMILIES` (mamba_presets.py: Mamba, Mamba-2,
Falcon-Mamba; the hybrids Jamba, Bamba, Zamba2, Falcon-H1, Nemotron-H, Granite-4.0, LFM2,
Qwen3-Next), run by the same prefill + per-token decode loop as `llm_decode` (decode_loop.py).
The state is declared per layer from transformers' own cache layer types (state_layers.py):
recurrent layers hold a conv window and an SSM state of constant size, attention layers of a
hybrid add K/V per token. It is measured from the cache tensors after every step.

Which kernels ran matters more here than anywhere: the fused selective-scan and causal-conv1d
kernels (mamba_ssm, causal_conv1d; fla for Qwen3-Next's gated delta rule; CUDA only) are 20-40x
faster than the PyTorch reference path (Mamba paper, section 4.5). The workload records the path
it observed during an untimed probe in setup (transformers' fallback messages, and whether the
kernel packages import); a slow path is flagged in the report so it never passes for the real
thing, and the analytic scan FLOPs depend on it (what the counter sees differs by path).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from typing import Annotated, Any

from pydantic import Field, model_validator

from profiler.plugin import Declaration, Mark, OneOf, SetupContext, StateLayer, Trait

from .decode_loop import build_causal_lm, compile_mode, compiled_step, greedy_decode, parameter_facts, random_prompt, resolve_dtype, step_weight_bytes
from .mamba_presets import (
    ANALYTIC_SCAN,
    MAMBA_PRESETS,
    PUBLISHED_PARAMS,
    SCAN_FUNCTIONS,
    SSM_FAMILIES,
    Family,
    build_mamba_config,
    recurrent_state,
    scan_flops,
)
from .params import DecodeParams
from .state_layers import cache_state_bytes, declared_state_layers

CONV_FUNCTIONS = ("causal_conv1d_fn", "causal_conv1d_update")


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


def model_type_of(params: Mamba.Params) -> str | None:
    """The model_type a run will decode, without torch or transformers: the preset's, or the
    `model_type` in the pretrained directory's config.json (None when it has none)."""
    if not params.pretrained:
        return MAMBA_PRESETS[params.preset_name]["model_type"]
    with open(os.path.join(params.pretrained, "config.json"), encoding="utf-8") as f:
        return json.load(f).get("model_type")


def check_supported(model_type: str | None) -> Family:
    """The family of `model_type`, or a one-line ValueError naming it and what to use instead."""
    import transformers
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        raise ValueError(
            f"model_type '{model_type}' is not known to the installed transformers {transformers.__version__}; "
            f"the mamba workload decodes {', '.join(SSM_FAMILIES)} (a newer family needs a newer transformers)"
        )
    if model_type not in SSM_FAMILIES:
        raise ValueError(
            f"model_type '{model_type}' is not one of the SSM and hybrid families the mamba workload decodes ({', '.join(SSM_FAMILIES)}); "
            "use llm_decode for pure-attention models"
        )
    return SSM_FAMILIES[model_type]


class Mamba:
    """SSM and hybrid decode: prefill + per-token decode with a recurrent conv + SSM state (plus the KV cache of a hybrid's attention layers)."""

    class Params(DecodeParams):
        DEFAULT_PRESET = "mamba-tiny"

        preset: Annotated[str, OneOf(MAMBA_PRESETS)] | None = Field(
            None, description=f"Published architecture, random weights: {', '.join(MAMBA_PRESETS)}. Default mamba-tiny unless `pretrained` is set."
        )
        compile: bool = Field(
            False,
            description="torch.compile the decode step (fullgraph; CUDA graphs on CUDA). Pure SSMs only: their state keeps one shape, "
            "so one graph serves every step; a hybrid's attention cache grows.",
        )

        @model_validator(mode="after")
        def _compile_needs_constant_state(self) -> Mamba.Params:
            model_type = model_type_of(self) if self.compile else None
            if model_type in SSM_FAMILIES and SSM_FAMILIES[model_type].hybrid:
                raise ValueError(f"compile: {model_type} is a hybrid whose attention KV cache grows every step (each step would recompile); compile pure SSMs")
            return self

    @classmethod
    def declaration(cls, params: Mamba.Params) -> Declaration:
        """The same request and step as the baseline's decode loop. A pure SSM's state is constant in
        the context; a hybrid's grows with it through its attention layers (read from config.json)."""
        model_type = model_type_of(params)
        hybrid = model_type in SSM_FAMILIES and SSM_FAMILIES[model_type].hybrid
        return Declaration(
            output_unit="token",
            step="decode_step",
            deliveries=("prefill", "decode_step"),
            position_unit="token of context",
            state="recurrent state (conv window, SSM state) and the KV cache of the attention layers" if hybrid else "SSM conv + ssm state",
            traits=frozenset({Trait.AUTOREGRESSIVE, Trait.KV_CACHE if hybrid else Trait.CONSTANT_STATE}),
        )

    def __init__(self, params: Mamba.Params) -> None:
        self.p = params
        self.model: Any = None
        self.scan_fused = False
        self.step: Any = None

    def setup(self, ctx: SetupContext) -> None:
        import torch

        p = self.p
        family = check_supported(model_type_of(p))  # before loading any weights
        dtype = resolve_dtype(p.dtype, ctx.device)
        config = None if p.pretrained else build_mamba_config(p.preset_name)
        self.model = build_causal_lm(config, p.pretrained, dtype, ctx.device)
        cfg = self.model.config.get_text_config(decoder=True)
        self.input_ids = random_prompt(cfg.vocab_size, p.batch_size, p.prompt_len, ctx.seed, ctx.device)
        kernel, probe_cache = self.probe_kernel_path(ctx.device, family)
        self.scan_fused = kernel["scan_path_fused"]
        if not kernel["kernel_path_fused"]:
            ctx.warn(f"kernel path: {kernel['kernel_path']}")
        dtype_bytes = torch.empty((), dtype=dtype).element_size()
        layers = declared_state_layers(self.model.config, dtype_bytes)
        ctx.declare_state(layers)
        if p.compile:
            mode = compile_mode(ctx.device)
            self.step = compiled_step(self.model, mode)
            ctx.declare(
                compiled=f"torch.compile(mode={mode!r}, fullgraph=True) of the decode step; the prefill runs eager; the counting and tracing "
                "passes run it eager (compiled code does not run under their dispatch modes)"
            )
        ctx.declare(
            model_type=cfg.model_type,
            model_class=type(self.model).__name__,
            weights=f"pretrained: {p.pretrained}" if p.pretrained else f"random, from preset {p.preset_name}",
            published_param_count=PUBLISHED_PARAMS.get(p.preset_name or ""),
            dtype=str(dtype).removeprefix("torch."),
            **parameter_facts(self.model),
            step_weight_bytes=step_weight_bytes(self.model, p.batch_size),
            layers=cfg.num_hidden_layers,
            state_kind="transformers DynamicCache; per layer: " + ", ".join(f"{x.count} x {x.kind}" + (" + recurrent" * x.with_recurrent) for x in layers),
            **state_facts(cfg, layers, probe_cache),
            **flops_facts(cfg, family, kernel, recurrent_layers(layers)),
            **kernel,
            batch_size=p.batch_size,
            prompt_len=p.prompt_len,
            gen_len=p.gen_len,
        )

    def probe_kernel_path(self, device: str, family: Family) -> tuple[dict[str, Any], Any]:
        """Run one untimed prefill + decode step and record which implementation ran; returns the
        facts and the probe's cache (its tensors' dtypes are the ones the state is kept in)."""
        import torch
        from transformers.utils import logging as hf_logging

        capture = _Capture()
        root = logging.getLogger("transformers")
        level, handlers = root.level, list(root.handlers)
        root.setLevel(logging.WARNING)  # the fallback messages are warnings, whatever the verbosity
        root.handlers = [capture]  # captured into facts and ctx.warn, not printed over the progress bars
        hf_logging.warning_once.cache_clear()  # fallback messages are warned once per process; this probe must see them
        try:
            with torch.inference_mode():
                cache = new_cache(self.model)
                greedy_decode(self.model, self.input_ids[:1, :4], cache, 2, _no_mark, lambda c: 0)  # [1, 4]: one sequence, 4 tokens
        finally:
            root.handlers = handlers
            root.setLevel(level)
        messages = sorted(set(capture.messages))
        present = {pkg: importlib.util.find_spec(pkg) is not None for pkg in family.kernel_packages}
        cuda = device.startswith("cuda")
        fused = cuda and all(present.values()) and not messages
        if fused:
            path = f"fused CUDA kernels ({' + '.join(family.kernel_packages)})"
        else:
            missing = [pkg for pkg, ok in present.items() if not ok]
            why = "not on CUDA" if not cuda else (f"not installed: {', '.join(missing)}" if missing else "transformers reported a fallback")
            if family.mixer in ("mamba", "mamba2"):
                faster = "the fused kernels are 20-40x faster (Mamba section 4.5)"
            else:
                faster = f"the fused kernels ({', '.join(family.kernel_packages)}) are faster, by an amount not measured here"
            path = f"SLOW PyTorch reference path ({why}); {faster}"

        def ran_fused(package: str | None, functions: tuple[str, ...]) -> bool:
            return package is not None and cuda and bool(present.get(package)) and not any(f"`{fn}`" in m for fn in functions for m in messages)

        facts = {
            "kernel_path": path,
            "kernel_path_fused": fused,
            "scan_path_fused": ran_fused(family.scan_package, SCAN_FUNCTIONS),
            "conv_path_fused": ran_fused("causal_conv1d", CONV_FUNCTIONS),
            "kernel_fallbacks": messages,
            "kernel_packages": present,
        }
        return facts, cache

    def run_once(self, mark: Mark) -> None:
        import torch

        cfg = self.model.config.get_text_config(decoder=True)
        counted = not self.scan_fused  # the PyTorch path's matmul for y = C.h is seen by the counter

        def analytic(batch: int, tokens: int, prefill: bool) -> float:
            return scan_flops(cfg, batch, tokens, prefill, contraction_counted=counted)

        with torch.inference_mode():
            self.tokens = greedy_decode(self.model, self.input_ids, new_cache(self.model), self.p.gen_len, mark, cache_state_bytes, analytic, step=self.step)

    def teardown(self) -> None:
        self.model = None


def recurrent_layers(layers: list[StateLayer]) -> int:
    """Decoder layers that keep a recurrent state (alone, or beside an attention cache)."""
    return sum(x.count for x in layers if x.kind == "recurrent" or x.with_recurrent)


def state_dtypes(cache: Any) -> dict[str, Any]:
    """The torch dtypes the cache keeps the conv and the SSM state in, from its first recurrent layer.
    They differ: the PyTorch path computes the SSM state in float32 and transformers caches it so,
    whatever the model's dtype (a bfloat16 model keeps a float32 SSM state)."""
    found: dict[str, Any] = {}
    for layer in getattr(cache, "layers", []):
        for key, name in (("conv", "conv_states"), ("ssm", "recurrent_states")):
            states = getattr(layer, name, None) or {}
            tensor = next((t for t in states.values() if t is not None), None)
            if tensor is not None:
                found.setdefault(key, tensor.dtype)
    return found


def state_facts(cfg: Any, layers: list[StateLayer], probe_cache: Any) -> dict[str, Any]:
    """The recurrent state's formula and its bytes per sequence (constant in the context). Stated as
    `state_bytes_per_seq` when nothing grows (the whole state), else `recurrent_state_bytes_per_seq`
    (the part beside the attention layers' K/V, which the declared state layers give per token)."""
    n = recurrent_layers(layers)
    state = recurrent_state(cfg)
    dtypes = state_dtypes(probe_cache)
    conv, ssm = dtypes.get("conv"), dtypes.get("ssm")
    constant = n * (state.conv_elements * (conv.itemsize if conv else 0) + state.ssm_elements * (ssm.itemsize if ssm else 0))
    growth = sum(x.bytes_per_token * x.count for x in layers)
    named = {key: str(dt).removeprefix("torch.") for key, dt in dtypes.items()}
    stored = ", ".join(f"the {'conv window' if key == 'conv' else 'SSM state'} in {name}" for key, name in named.items())
    formula = f"{n} recurrent layers x ({state.formula}) elements, {stored}, per sequence"
    if growth:
        formula += f"; plus the attention layers' K/V, {growth:,} B per token of context (declared per layer)"
    facts: dict[str, Any] = {"state_formula": formula, "state_dtypes": named}
    facts["recurrent_state_bytes_per_seq" if growth else "state_bytes_per_seq"] = constant
    return facts


def flops_facts(cfg: Any, family: Family, kernel: dict[str, Any], n: int) -> dict[str, str]:
    """Which FLOPs FlopCounterMode counts and which are a formula, on the path that ran (metrics.md:
    'say which part is counted and which analytic'). `n`: the layers with a recurrent state."""
    return {"counted_flops": counted_flops_fact(family, kernel, n), "analytic_flops": analytic_flops_fact(cfg.model_type, family, kernel, n)}


def _mixer_name(family: Family) -> str:
    return {"gated_delta_net": "gated delta rule recurrence", "short_conv": "short conv"}.get(family.mixer, "selective scan")


def _path(family: Family, kernel: dict[str, Any]) -> str:
    fused = kernel["conv_path_fused"] if family.mixer == "short_conv" else kernel["scan_path_fused"]  # the kernel that runs the mixer
    return "fused kernels" if fused else "PyTorch reference path"


def counted_flops_fact(family: Family, kernel: dict[str, Any], n: int) -> str:
    """What the counter sees: the ops that run as aten matmuls and convolutions on this path."""
    counted = ["the linear projections"] + (["attention"] if family.hybrid else [])
    unseen = []
    if kernel["conv_path_fused"]:
        unseen.append(f"the causal conv1d of {n} layers (causal_conv1d kernels)")
    else:
        counted.append("the causal conv1d (aten.convolution)")
    if kernel["scan_path_fused"] and family.scan_package:
        unseen.append(f"the {_mixer_name(family)} of {n} layers ({family.scan_package} kernels)")
    elif family.mixer == "mamba":
        counted.append("the scan's contraction y = C.h (2*B*L*d_inner*d_state per layer, matmul)")
    elif family.mixer == "mamba2":
        counted.append("the prefill's SSD einsums (on chunks padded to chunk_size) and each decode step's contraction y = C.h (2*B*H*P*N per layer, bmm)")
    elif family.mixer == "gated_delta_net":
        counted.append("the prefill's chunked delta-rule matmuls")
    return f"FlopCounterMode ({_path(family, kernel)}): " + ", ".join(counted) + ("; not seen: " + ", ".join(unseen) if unseen else "")


def analytic_flops_fact(model_type: str, family: Family, kernel: dict[str, Any], n: int) -> str:
    """What `scan_flops` adds as the span attribute analytic_flops, or why nothing is added."""
    scan_fused, path = kernel["scan_path_fused"], _path(family, kernel)
    if family.mixer == "short_conv":
        if kernel["conv_path_fused"]:
            return f"none: the short conv of {n} layers runs in causal_conv1d kernels and is not counted: no analytic formula for {model_type}"
        return "none: no scan, the short conv is a counted convolution"
    if model_type not in ANALYTIC_SCAN:
        if scan_fused:
            part = ""
        elif family.mixer == "gated_delta_net":
            part = " (decode: elementwise products and sums, none of it; prefill: beyond its chunk matmuls)"
        else:
            part = " beyond its contraction (the discretization and the state update, elementwise)"
        return f"none: the {_mixer_name(family)} of {n} layers is not counted{part}: no analytic formula for {model_type}"
    if family.mixer == "mamba2":
        decode = "5*B*H*P*N per layer (recurrent form: h = a*h + x*B, y = C.h)" + (
            ", all of it (fused)" if scan_fused else " minus the counted contraction = 3*B*H*P*N"
        )
        if scan_fused:
            prefill = f"the fused SSD chunk scan of {n} layers is not counted: no analytic formula"
        else:
            prefill = "none (its SSD einsums are counted; their elementwise decay terms are not: no formula for them)"
        return f"span attribute analytic_flops ({path}): decode: {decode}; prefill: {prefill}"
    scan = "9*B*L*d_inner*d_state per layer (state-spaces/mamba issue #110)" + (
        ", all of it (fused)" if scan_fused else " minus the counted contraction = 7*B*L*d_inner*d_state"
    )
    return f"span attribute analytic_flops ({path}): prefill and decode: {scan}"


class _NoSpan:
    attrs: dict[str, Any] = {}

    def __enter__(self) -> _NoSpan:
        self.attrs = {}
        return self

    def __exit__(self, *exc: Any) -> bool:
        return False


def _no_mark(phase: str, units: float = 0, **attrs: Any) -> _NoSpan:
    return _NoSpan()
