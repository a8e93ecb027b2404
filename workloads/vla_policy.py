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
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .decode_loop import cache_argument
from .state_layers import cache_state_bytes
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

    # ------------------------------------------------------------------ one inference call

    @torch.inference_mode()
    def infer(self, pixels: torch.Tensor, instruction_ids: torch.Tensor, noise: torch.Tensor | None, mark: Any) -> tuple[torch.Tensor, int]:
        """pixels [cams, 3, S, S] -> actions [chunk_len, action_dim] on the host, and state bytes."""
        from transformers import DynamicCache

        with mark("vision"):
            feats = self.vision(pixel_values=pixels).last_hidden_state  # [cams, N, Dv]
            tokens = self.projector(self._pixel_shuffle(feats)).reshape(1, -1, self.projector[-1].out_features)  # [1, cams*T, D]
            _sync(pixels)
        cache = DynamicCache(config=self.backbone.config)
        cache_kw = cache_argument(type(self.backbone))
        with mark("prefix"):
            text = self.backbone.get_input_embeddings()(instruction_ids)  # [1, L, D]
            embeds = torch.cat([tokens, text.to(tokens.dtype)], dim=1)
            extra = {"logits_to_keep": 1} if self.head == "discrete" else {}
            out = self.backbone(inputs_embeds=embeds, **{cache_kw: cache}, use_cache=True, **extra)
            _sync(pixels)
        with mark("action", chunk_len=self.chunk_len):
            actions = self._discrete(out, cache, cache_kw) if self.head == "discrete" else self._flow(noise, cache)
            actions = actions.float().cpu()  # the chunk reaches the controller
        return actions, cache_state_bytes(cache)

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
        for _ in range(self.action_dim - 1):
            step = self.backbone(input_ids=token[:, None], **{cache_kw: cache}, use_cache=True)
            token = step.logits[:, -1].argmax(-1)
            tokens.append(token)
        ids = torch.stack(tokens, dim=-1)  # [1, action_dim]
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


def _sinusoid(t: torch.Tensor, width: int) -> torch.Tensor:
    half = width // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :] * 1000.0
    return torch.cat([angles.sin(), angles.cos()], dim=-1)  # [1, width]


def _sync(t: torch.Tensor) -> None:
    if t.is_cuda:
        torch.cuda.synchronize()
