"""A test workload whose phases share no name with any built-in, to prove the comparisons read the
declaration and never a phase name.

It is a small attention decoder with a key/value cache of its own, so it has everything the
baseline has under other names: `serve` is the request (a span around the whole generation,
whose latency runs from `obs_ns`, when the request arrived), `ingest` reads the prompt, `refine`
is the step (one token attended over the cache; `position` is the context length and
`state_bytes` the cache, growing by one token per step), and `emit` delivers the tokens (the
head, the argmax, the copy to the host). Real torch matmuls, so the counting pass finds FLOPs
and bytes and the traced pass finds operators. `unmarked_inference` declares an inference phase
the workload never marks, for the summary's declaration check.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from profiler.plugin import Declaration, Mark, Resources, SetupContext, Trait
from profiler.plugin import Params as BaseParams


class CustomPhases:
    """Attention decoding under phase names of its own: serve > ingest, then refine + emit per token."""

    class Params(BaseParams):
        batch_size: int = Field(1, ge=1, le=1024, description="Sequences decoded together.")
        prompt_len: int = Field(16, ge=1, le=100_000, description="Prompt tokens per sequence.")
        steps: int = Field(12, ge=0, le=100_000, description="refine steps per request (each adds one token to the cache).")
        width: int = Field(128, ge=1, le=16_384, description="Model width.")
        vocab_size: int = Field(512, ge=2, le=1_000_000, description="Tokens in the vocabulary.")
        unmarked_inference: bool = Field(False, description="Declare an inference phase that is never marked (a stale declaration).")

    @classmethod
    def declaration(cls, params: CustomPhases.Params) -> Declaration:
        """The request is `serve`, the step `refine`, the deliveries `emit`: no built-in name anywhere."""
        return Declaration(
            output_unit="token",
            request="serve",
            step="refine",
            deliveries=("emit",),
            inference="actuate" if params.unmarked_inference else None,
            position_unit="token of context",
            state="key/value cache of its own",
            traits=frozenset({Trait.AUTOREGRESSIVE, Trait.KV_CACHE}),
            resources=Resources(cpu_cores=1, gpus=1),
        )

    def __init__(self, params: CustomPhases.Params) -> None:
        self.p = params
        self.layers: Any = None

    def setup(self, ctx: SetupContext) -> None:
        import torch

        p = self.p
        torch.manual_seed(ctx.seed)
        with torch.device(ctx.device):
            self.embed = torch.nn.Embedding(p.vocab_size, p.width)  # [V, D]
            self.qkv = torch.nn.Linear(p.width, 3 * p.width)  # [.., D] -> [.., 3D]
            self.out = torch.nn.Linear(p.width, p.width)
            self.head = torch.nn.Linear(p.width, p.vocab_size)  # [B, D] -> [B, V]
            self.prompt = torch.randint(0, p.vocab_size, (p.batch_size, p.prompt_len))  # [B, S]
        self.layers = (self.embed, self.qkv, self.out, self.head)
        weights = [t for m in self.layers for t in m.parameters()]
        ctx.declare(
            param_count=sum(t.numel() for t in weights),
            param_bytes=sum(t.numel() * t.element_size() for t in weights),
            dtype="float32",
            state_bytes_per_token_per_seq=2 * p.width * 4,
        )

    def _attend(self, x: Any, keys: Any, values: Any) -> tuple[Any, Any, Any]:
        """x [B, T, D] -> (last hidden [B, D], keys and values [B, T_cache + T, D])."""
        import torch

        q, k, v = self.qkv(x).chunk(3, dim=-1)  # each [B, T, D]
        keys, values = torch.cat([keys, k], dim=1), torch.cat([values, v], dim=1)  # the cache grows
        scores = q[:, -1:] @ keys.transpose(1, 2) / keys.shape[-1] ** 0.5  # [B, 1, T_all]
        hidden = self.out(torch.softmax(scores, dim=-1) @ values)  # [B, 1, D]
        return hidden[:, 0], keys, values

    def run_once(self, mark: Mark) -> None:
        import torch

        p = self.p
        arrived = time.monotonic_ns()  # the request arrives; its latency runs from here
        prompt = self.prompt.clone()
        with torch.inference_mode(), mark("serve", obs_ns=arrived):
            empty = prompt.new_zeros((p.batch_size, 0, p.width), dtype=torch.float32)
            with mark("ingest", position=p.prompt_len) as span:
                hidden, keys, values = self._attend(self.embed(prompt), empty, empty)
            span.attrs["state_bytes"] = keys.nbytes + values.nbytes
            for i in range(p.steps + 1):
                with mark("emit", units=p.batch_size):
                    token = self.head(hidden).argmax(-1)  # [B]
                    token.cpu()  # the tokens reach the host inside the delivering span
                if i == p.steps:
                    break
                with mark("refine", position=p.prompt_len + i + 1) as span:
                    hidden, keys, values = self._attend(self.embed(token)[:, None], keys, values)
                span.attrs["state_bytes"] = keys.nbytes + values.nbytes  # 2 * B * position * D * 4

    def teardown(self) -> None:
        self.layers = self.embed = self.qkv = self.out = self.head = self.prompt = None
