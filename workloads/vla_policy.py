"""The VLA policy network, composed from transformers parts (imported only from setup).

vision (SigLIP over every camera) -> projector (pixel shuffle to `tokens_per_image`, 2-layer MLP)
-> language backbone over [image tokens + instruction] building the prefix KV cache -> an action
head:
- `discrete` (OpenVLA / RT-2): action_dim tokens decoded greedily with the KV cache, then mapped
  from 256 bins to continuous actions (OpenVLA's de-tokenizer: the last 256 vocabulary ids);
- `flow` (pi0 / SmolVLA): an action expert with the backbone's attention shapes attends to the
  prefix KV and integrates `flow_steps` Euler steps of a velocity field over a chunk of
  `chunk_len` actions; the expert's own keys are cropped off the cache after each step.
Each call marks `vision`, `prefix` and `action`; on CUDA each ends with a synchronize so the host
spans are the real durations.

`compile_head` (vla `compile: true`) swaps the growing DynamicCache for a StaticCache allocated
once, of exactly the tokens one call writes, and runs the action head's step compiled: each flow
step (action_in, time MLP, expert forward, action_out) is one graph that writes the expert's keys
into the same last `chunk_len` slots (the cache's write position is set back to the prefix first,
so nothing is cropped and every shape is constant: CUDA graphs apply); the discrete head's decode
steps run the backbone's compiled forward, as llm_decode's do. Vision and prefix stay eager. The
causal mask over the static cache is the eager one: the prefix sees itself causally, each expert
token the prefix and the expert tokens up to itself; the slots after it are masked.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .decode_loop import cache_argument, compiled_step
from .state_layers import cache_state_bytes, declared_state_layers, formula_state_bytes
from .vla_presets import build_lm_config

ACTION_BINS = 256


class VLAPolicy(nn.Module):
    def __init__(self, preset: dict[str, Any], head: str, action_dim: int, chunk_len: int, flow_steps: int, instruction_len: int) -> None:
        super().__init__()
        from transformers import AutoModel, AutoModelForCausalLM, SiglipVisionConfig, SiglipVisionModel

        self.head, self.action_dim, self.chunk_len, self.flow_steps = head, action_dim, chunk_len, flow_steps
        vcfg = SiglipVisionConfig(**preset["vision"])
        self.vision = SiglipVisionModel(vcfg)
        patches = (vcfg.image_size // vcfg.patch_size) ** 2
        self.shuffle = int(round(math.sqrt(patches / preset["tokens_per_image"])))
        if self.shuffle**2 * preset["tokens_per_image"] != patches:
            raise ValueError(f"tokens_per_image {preset['tokens_per_image']} does not divide {patches} patches by a square factor")
        self.image_size = vcfg.image_size
        bcfg = build_lm_config(preset["backbone"])
        width = bcfg.hidden_size
        self.projector = nn.Sequential(nn.Linear(vcfg.hidden_size * self.shuffle**2, width), nn.GELU(), nn.Linear(width, width))
        self.backbone = (AutoModelForCausalLM if head == "discrete" else AutoModel).from_config(bcfg)
        self.instruction_len = instruction_len
        if head == "flow":
            ecfg = build_lm_config(preset["expert"])
            for attr in ("num_hidden_layers", "num_key_value_heads"):
                if getattr(ecfg, attr) != getattr(bcfg, attr):
                    raise ValueError(f"the action expert must match the backbone's {attr} to attend to its KV cache")
            self.expert = AutoModel.from_config(ecfg)
            e = ecfg.hidden_size
            self.action_in = nn.Linear(action_dim, e)
            self.time_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
            self.action_out = nn.Linear(e, action_dim)
            self.expert_width = e
        self.static_cache: Any = None
        self.step: Any = None

    def compile_head(self, mode: str, prefix_tokens: int) -> None:
        """From now on, `infer` runs over one StaticCache and calls the action head's step compiled
        (torch.compile(mode=mode, fullgraph=True), eager under a dispatch mode: see decode_loop.compiled_step)."""
        from transformers import StaticCache

        self.prefix_tokens = prefix_tokens
        # discrete: prefix + action_dim (llm_decode's prompt + gen; the last token's KV is never written)
        self.cache_tokens = prefix_tokens + (self.action_dim if self.head == "discrete" else self.chunk_len)
        self.static_cache = StaticCache(config=self.backbone.config, max_cache_len=self.cache_tokens)
        dtype_bytes = next(self.backbone.parameters()).element_size()
        self.state_layers = declared_state_layers(self.backbone.config, dtype_bytes)
        self.expert_cache_kw = cache_argument(type(self.expert)) if self.head == "flow" else None
        self.step = compiled_step(self.backbone if self.head == "discrete" else self._flow_step, mode)

    # ------------------------------------------------------------------ one inference call

    @torch.inference_mode()
    def infer(self, pixels: torch.Tensor, instruction_ids: torch.Tensor, noise: torch.Tensor | None, mark: Any) -> tuple[torch.Tensor, dict[str, int]]:
        """pixels [cams, 3, S, S] -> actions [chunk_len, action_dim] on the host, and the state attributes of
        the call: `state_bytes` (measured from the cache; with a static cache its filled part from the per-layer
        formula, and `state_allocated_bytes` measured)."""
        from transformers import DynamicCache

        with mark("vision"):
            feats = self.vision(pixel_values=pixels).last_hidden_state  # [cams, N, Dv]
            tokens = self.projector(self._pixel_shuffle(feats)).reshape(1, -1, self.projector[-1].out_features)  # [1, cams*T, D]
            _sync(pixels)
        static = self.static_cache is not None
        if static:
            self.static_cache.reset()  # write position 0 (and the slots zeroed): the prefix KV is rebuilt every call
        cache = self.static_cache if static else DynamicCache(config=self.backbone.config)
        cache_kw = cache_argument(type(self.backbone))
        with mark("prefix"):
            text = self.backbone.get_input_embeddings()(instruction_ids)  # [1, L, D]
            embeds = torch.cat([tokens, text.to(tokens.dtype)], dim=1)
            extra = {"logits_to_keep": 1} if self.head == "discrete" else {}
            if static:
                extra["cache_position"] = torch.arange(embeds.shape[1], device=embeds.device)
            out = self.backbone(inputs_embeds=embeds, **{cache_kw: cache}, use_cache=True, **extra)
            _sync(pixels)
        with mark("action", chunk_len=self.chunk_len):
            if self.head == "discrete":
                actions = self._discrete(out, cache, cache_kw)
            else:
                actions = self._flow_static(noise) if static else self._flow(noise, cache)
            actions = actions.float().cpu()  # the chunk reaches the controller
        if not static:
            return actions, {"state_bytes": cache_state_bytes(cache)}
        # the tokens written: prefix + the expert's chunk (flow), prefix + action_dim - 1 (discrete); the eager
        # DynamicCache holds as many (its crop leaves a view over the last step's storage)
        filled = self.prefix_tokens + (self.action_dim - 1 if self.head == "discrete" else self.chunk_len)
        return actions, {"state_bytes": formula_state_bytes(self.state_layers, filled, 1), "state_allocated_bytes": cache_state_bytes(cache)}

    def _pixel_shuffle(self, feats: torch.Tensor) -> torch.Tensor:
        """[cams, N, D] -> [cams, N / r^2, D * r^2] (SmolVLM's pixel shuffle; r = 1 is a no-op)."""
        r = self.shuffle
        if r == 1:
            return feats
        cams, n, d = feats.shape
        side = int(math.isqrt(n))
        x = feats.reshape(cams, side // r, r, side // r, r, d).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(cams, (side // r) ** 2, d * r * r)

    def _discrete(self, out: Any, cache: Any, cache_kw: str) -> torch.Tensor:
        token = out.logits[:, -1].argmax(-1)  # [1]
        tokens = [token]
        step = self.step or self.backbone
        for i in range(self.action_dim - 1):
            # a static cache: each token's cache_position, as decode_loop.greedy_decode passes it (transformers 5.17 and
            # 5.24 place the keys by the cache's own write position and take it as an extra keyword)
            where = {"cache_position": torch.tensor([self.prefix_tokens + i], device=token.device)} if self.step else {}
            out = step(input_ids=token[:, None], **{cache_kw: cache}, **where, use_cache=True)
            token = out.logits[:, -1].argmax(-1)
            tokens.append(token)
        ids = self.action_tokens = torch.stack(tokens, dim=-1)  # [1, action_dim]; kept: the last call's tokens
        vocab = self.backbone.config.vocab_size
        bins = (vocab - 1 - ids).clamp(0, ACTION_BINS - 1)  # OpenVLA: actions are the last 256 ids
        return (-1 + (bins.float() + 0.5) * 2 / ACTION_BINS).reshape(1, self.action_dim)

    def _flow(self, noise: torch.Tensor, cache: Any) -> torch.Tensor:
        cache_kw = cache_argument(type(self.expert))
        x = noise  # [1, H, action_dim]
        dt = 1.0 / self.flow_steps
        for k in range(self.flow_steps):
            t = torch.full((1,), 1.0 - k * dt, device=x.device, dtype=x.dtype)
            emb = self.action_in(x) + self.time_mlp(_sinusoid(t, self.expert_width).to(x.dtype))[:, None, :]  # [1, H, E]
            hidden = self.expert(inputs_embeds=emb, **{cache_kw: cache}, use_cache=True).last_hidden_state
            cache.crop(-x.shape[1])  # drop the expert's own keys (negative: tokens to remove); the prefix KV stays
            x = x - dt * self.action_out(hidden)  # Euler step from t = 1 (noise) towards t = 0 (actions)
        return x[0]

    def _flow_static(self, noise: torch.Tensor) -> torch.Tensor:
        """`_flow` over the static cache: one compiled call per Euler step."""
        x = noise.clone()  # [1, H, action_dim]; an inference tensor as every later step's x is: one graph serves all steps
        dt = 1.0 / self.flow_steps
        for k in range(self.flow_steps):
            t = torch.full((1,), 1.0 - k * dt, device=x.device, dtype=x.dtype)
            x = self.step(x, t).clone()  # a copy out of the graph's output (CUDA graphs reuse it at the next replay; gpt-fast clones too)
        return x[0]

    def _flow_step(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """One Euler step over the static cache: x [1, H, action_dim] at time t [1] -> x at t - dt."""
        cache, prefix, chunk = self.static_cache, self.prefix_tokens, self.chunk_len
        # The write position back to the end of the prefix, in place (transformers 5.17 and 5.24 keep it in each
        # StaticLayer's `cumulative_length` tensor, a static address, and place the keys and the mask's query offset
        # by it): the expert's keys go to the last `chunk` slots every step, replacing the previous step's.
        for layer in cache.layers:
            layer.cumulative_length.fill_(prefix)
        positions = torch.arange(prefix, prefix + chunk, device=x.device)
        dt = 1.0 / self.flow_steps
        emb = self.action_in(x) + self.time_mlp(_sinusoid(t, self.expert_width).to(x.dtype))[:, None, :]  # [1, H, E]
        hidden = self.expert(
            inputs_embeds=emb, **{self.expert_cache_kw: cache}, cache_position=positions, position_ids=positions[None], use_cache=True
        ).last_hidden_state
        return x - dt * self.action_out(hidden)


def _sinusoid(t: torch.Tensor, width: int) -> torch.Tensor:
    half = width // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :] * 1000.0
    return torch.cat([angles.sin(), angles.cos()], dim=-1)  # [1, width]


def _sync(t: torch.Tensor) -> None:
    if t.is_cuda:
        torch.cuda.synchronize()
