"""`rl_step`: one GRPO step of RL post-training per iteration (rollout, scoring, update, weight sync).

Why: RL post-training differs from LLM serving on every axis the report compares. Its objective is
the throughput of whole steps, not a request's latency; its requests arrive all at once as G
samples for each of P prompts, and the step waits for the longest (the straggler tail); its state
is weights, gradients and optimizer state beside a rollout KV cache; and it alternates between
memory-bound generation and compute-bound training. Published breakdowns: Seer (arXiv
2511.14617, Table 1) 84/14/2% rollout/train/weight update on one model, 63/31/6% on another
(shared/guide/domain-facts.md section 6).

One iteration (one step), each stage a top-level span (the declaration's `breakdown`):
- `rollout`: G x P requests through transformers' continuous batching (cb_batcher.py), stepped on
  this thread, one `rollout_step` span per forward (rollout.py: batch occupancy, finished
  requests, KV cache held). Sampling at `temperature`. Random weights never stop by themselves
  (EOS is disabled), so each response's length is drawn, per sample, from
  lognormal(ln response_median, response_sigma) rounded and capped at max_response_len: a long
  tail with stated parameters, as reasoning responses have (DAPO, DeepSeek-R1-Zero).
- `scoring`: old-policy and reference log-probabilities, forward passes over prompt + response in
  micro-batches (`logprobs_old`, `logprobs_ref`).
- `training`: the GRPO loss (grpo.py: group-normalised advantages, clipped ratio, k3 KL to the
  reference) with backward per micro-batch (`forward_backward`), then one AdamW step
  (`optimizer_step`).
- `weight_sync`: the rollout engine holds its own copy of the weights, as when trainer and
  rollout engine are separate; the new weights are copied into it. Its span delivers the step's
  output (units=1: the updated policy is in the engine).

Precision: the policy's master weights, gradients and AdamW state are float32 (4 + 4 + 8 = 16
bytes per parameter, as mixed-precision Adam's 2 + 2 + 12 in the ZeRO accounting); forward passes
run under autocast in `dtype` where that is not float32 (bfloat16 on CUDA by default); the
reference and rollout copies are held in `dtype`. Memory by kind is measured from the tensors
(`memory_<kind>_bytes` on the spans): weights, gradients, optimizer state, activations saved for
backward (a saved-tensors hook sums the storages each micro-batch's forward keeps, parameters
excluded), the reference and rollout copies, and the KV cache.

The reward is a rule-based stand-in (grpo.stand_in_reward): random weights answer nothing.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
from typing import Annotated, Any

from pydantic import Field, model_validator

from profiler.plugin import Declaration, Mark, OneOf, Resources, SetupContext, Trait

from .decode_loop import build_causal_lm, parameter_facts, resolve_dtype
from .grpo import group_advantages, grpo_loss, pack, response_logprobs, stand_in_reward
from .llm_presets import LLM_PRESETS, build_config
from .params import ModelParams
from .rollout import run_rollout
from .state_layers import declared_state_layers

BREAKDOWN = ("rollout", "scoring", "training", "weight_sync")


def max_positions_of(preset: str | None, pretrained: str | None) -> int | None:
    """The model's max_position_embeddings, from the preset or the local config.json (no torch)."""
    if pretrained is not None:
        path = os.path.join(pretrained, "config.json")
        try:
            with open(path) as f:
                config = json.load(f)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable JSON file ({str(exc).splitlines()[0][:120]}); give a model directory's config.json") from None
        if not isinstance(config, dict):
            raise ValueError(f"{path}: holds a {type(config).__name__}, not a model config (a JSON object)")
        config = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
        limit = config.get("max_position_embeddings") or config.get("n_positions")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise ValueError(f"{path}: max_position_embeddings is {limit!r}, not a positive integer")
        return limit
    return LLM_PRESETS[preset]["max_position_embeddings"] if preset else None


class RLStep:
    """One GRPO step per iteration: rollout through continuous batching, scoring, update, weight sync."""

    class Params(ModelParams):
        DEFAULT_PRESET = "qwen-tiny"

        preset: Annotated[str, OneOf(LLM_PRESETS)] | None = Field(
            None, description=f"Published architecture, random weights: {', '.join(LLM_PRESETS)}. Default qwen-tiny unless `pretrained` is set."
        )
        group_size: int = Field(4, ge=1, le=1024, description="G: responses sampled per prompt (DeepSeekMath 64, R1-Zero and DAPO 16).")
        prompts: int = Field(2, ge=1, le=65536, description="P: prompts per step (R1-Zero 32, DAPO 512).")
        prompt_len: int = Field(32, ge=1, le=1_000_000, description="Prompt tokens (random ids, new prompts every step).")
        max_response_len: int = Field(128, ge=1, le=1_000_000, description="Longest response; drawn lengths above it are capped (R1-Zero 32768).")
        response_median: float = Field(
            32, ge=1, le=1_000_000, allow_inf_nan=False, description="Median response length in tokens (the lognormal's exp(mu)), 1 to 1M."
        )
        response_sigma: float = Field(
            1.0,
            ge=0,
            le=10,
            allow_inf_nan=False,
            description="Standard deviation of ln(response length), 0 to 10: the tail's weight (0: every response the median).",
        )
        micro_batch_size: int = Field(4, ge=1, le=65536, description="Sequences per forward/backward in scoring and training (gradients accumulate).")
        learning_rate: float = Field(
            1e-6,
            ge=1e-10,
            le=1.0,
            allow_inf_nan=False,
            description="AdamW learning rate, 1e-10 to 1 (DeepSeekMath GRPO: 1e-6; below 1e-10 an AdamW step is lost in fp32 rounding).",
        )
        clip_eps: float = Field(0.2, ge=0, le=1.0, allow_inf_nan=False, description="Clip range of the probability ratio, 0 to 1.")
        kl_coef: float = Field(
            0.04, ge=0, le=100.0, allow_inf_nan=False, description="Weight of the KL penalty to the reference, 0 to 100 (DeepSeekMath: 0.04)."
        )
        temperature: float = Field(
            1.0,
            ge=0.01,
            le=100.0,
            allow_inf_nan=False,
            description="Sampling temperature of the rollout, 0.01 to 100 (0.01 is greedy in effect; far below, logits / T overflow).",
        )
        page_size: int = Field(32, ge=1, le=65536, description="Tokens per KV-cache page of the rollout engine.")
        kv_cache_tokens: int | None = Field(
            None, ge=1, le=100_000_000, description="Rollout KV-cache capacity in tokens; default: every request of a step at its longest, page-rounded."
        )
        max_batch_tokens: int = Field(2048, ge=1, le=10_000_000, description="Most tokens (prompt chunks and decode tokens) in one rollout forward.")

        @model_validator(mode="after")
        def _fits(self) -> RLStep.Params:
            batch = self.group_size * self.prompts
            if self.micro_batch_size > batch:
                raise ValueError(f"micro_batch_size {self.micro_batch_size} is larger than the batch of {batch} sequences (group_size x prompts)")
            limit = max_positions_of(self.preset_name, self.pretrained)
            if limit is not None and self.prompt_len + self.max_response_len > limit:
                raise ValueError(
                    f"prompt_len + max_response_len = {self.prompt_len + self.max_response_len} exceeds the model's max_position_embeddings ({limit}); "
                    "lower prompt_len or max_response_len"
                )
            longest = self.prompt_len + self.max_response_len
            if self.kv_cache_tokens is not None and self.kv_cache_tokens < longest:
                raise ValueError(
                    f"kv_cache_tokens {self.kv_cache_tokens} cannot hold one request at its longest (prompt_len + max_response_len = {longest}); "
                    "raise it or leave it out (default: every request of a step)"
                )
            return self

    @classmethod
    def declaration(cls, params: RLStep.Params) -> Declaration:
        """One request = one step (the iteration); step = one rollout forward; the step delivers one updated policy."""
        return Declaration(
            output_unit="training step",
            step="rollout_step",
            deliveries=("weight_sync",),
            breakdown=BREAKDOWN,
            objective="throughput of whole training steps (rollout, scoring, update, weight sync)",
            state="rollout KV cache; weights, gradients and AdamW state in training",
            traits=frozenset({Trait.AUTOREGRESSIVE, Trait.KV_CACHE, Trait.TRAINING}),
            resources=Resources(cpu_cores=1, gpus=1),
        )

    def __init__(self, params: RLStep.Params) -> None:
        self.p = params
        self.policy: Any = None
        self.reference: Any = None
        self.rollout_model: Any = None
        self.optimizer: Any = None
        self.batcher: Any = None
        self.step_index = 0

    def setup(self, ctx: SetupContext) -> None:
        import torch

        from .cb_batcher import TransformersBatcher

        p = self.p
        self.device, self.seed = ctx.device, ctx.seed
        self.dtype = resolve_dtype(p.dtype, ctx.device)
        config = None if p.pretrained else build_config(p.preset_name)
        policy = self.policy = build_causal_lm(config, p.pretrained, torch.float32, ctx.device).train()
        self.reference = copy.deepcopy(policy).to(self.dtype).eval().requires_grad_(False)
        self.rollout_model = copy.deepcopy(policy).to(self.dtype).eval().requires_grad_(False)
        self.optimizer = torch.optim.AdamW(policy.parameters(), lr=p.learning_rate)
        text = policy.config.get_text_config(decoder=True)
        self.vocab = int(text.vocab_size)
        batch = p.group_size * p.prompts
        per_request = math.ceil((p.prompt_len + p.max_response_len) / p.page_size) * p.page_size
        kv_tokens = p.kv_cache_tokens or batch * per_request
        self.batcher = TransformersBatcher(
            self.rollout_model,
            page_size=p.page_size,
            kv_cache_tokens=kv_tokens,
            max_batch_tokens=p.max_batch_tokens,
            temperature=p.temperature,
            seed=ctx.seed,
            prefix_caching=False,
        )
        self.autocast = (
            (lambda: torch.autocast(device_type=torch.device(ctx.device).type, dtype=self.dtype)) if self.dtype != torch.float32 else contextlib.nullcontext
        )
        self.sync = torch.cuda.synchronize if ctx.device.startswith("cuda") else (lambda: None)
        dtype_bytes = torch.empty((), dtype=self.dtype).element_size()
        layers = declared_state_layers(policy.config, dtype_bytes)
        ctx.declare_state(layers)
        facts = parameter_facts(policy)
        ctx.declare(
            model_type=text.model_type,
            weights=f"pretrained: {p.pretrained}" if p.pretrained else f"random, from preset {p.preset_name}",
            algorithm="GRPO (DeepSeekMath eq. 3): group-normalised advantages, clipped ratio, k3 KL to the reference; one update per rollout",
            group_size=p.group_size,
            prompts=p.prompts,
            sequences_per_step=batch,
            micro_batches_per_step=math.ceil(batch / p.micro_batch_size),
            response_lengths=(
                f"lognormal(median {p.response_median:g}, sigma {p.response_sigma:g}) rounded, capped at {p.max_response_len} tokens, drawn per sample: "
                "random weights never stop by themselves (EOS disabled), so each response is exactly its drawn length"
            ),
            reward="rule-based stand-in: share of even token ids in the response (random weights answer nothing)",
            master_dtype="float32 (weights, gradients, AdamW exp_avg and exp_avg_sq)",
            dtype=str(self.dtype).removeprefix("torch."),  # the forwards' dtype (autocast where not float32): the peak FLOP/s that applies
            autocast=self.dtype != torch.float32,
            optimizer="torch.optim.AdamW",
            rollout_engine="transformers ContinuousBatchingManager, stepped on the calling thread (one span per forward)",
            rollout_kv_pages=self.batcher.kv_pages,
            rollout_kv_cache_bytes=self.batcher.kv_bytes_total,
            kv_bytes_per_token=sum(layer.growth_at(1) for layer in layers),
            state_kind="paged KV cache in rollout; per layer: " + ", ".join(f"{x.count} x {x.kind}" for x in layers),
            **facts,
            model_state_bytes_per_param_zero=(
                "16 (mixed-precision Adam: 2 weights + 2 gradients + 12 fp32 master, momentum, variance; ZeRO, Rajbhandari et al. 2020)"
            ),
        )

    def _lengths_and_prompts(self) -> tuple[list[list[int]], Any]:
        import numpy as np

        p = self.p
        rng = np.random.default_rng([self.seed, self.step_index])
        prompts = [rng.integers(1, self.vocab, p.prompt_len).tolist() for _ in range(p.prompts)]
        drawn = rng.lognormal(mean=math.log(p.response_median), sigma=p.response_sigma, size=(p.prompts, p.group_size))
        return prompts, np.clip(np.rint(drawn), 1, p.max_response_len).astype(int)

    def run_once(self, mark: Mark) -> None:
        import torch

        p = self.p
        prompts, lengths = self._lengths_and_prompts()
        self.step_index += 1
        keys = [(i, j) for i in range(p.prompts) for j in range(p.group_size)]
        requests = {f"{self.step_index}-{i}-{j}": (prompts[i], int(lengths[i, j])) for i, j in keys}

        with mark("rollout", requests=len(keys)) as span:
            outputs = run_rollout(self.batcher, requests, mark)
        responses = [outputs[f"{self.step_index}-{i}-{j}"] for i, j in keys]
        span.attrs["tokens"] = sum(len(r) for r in responses)

        seq_prompts = [prompts[i] for i, _ in keys]
        rewards = torch.tensor([stand_in_reward(r) for r in responses], dtype=torch.float32).view(p.prompts, p.group_size)
        advantages = group_advantages(rewards).flatten().to(self.device)  # [G*P]
        batches = [list(range(s, min(s + p.micro_batch_size, len(keys)))) for s in range(0, len(keys), p.micro_batch_size)]
        packed = [pack([seq_prompts[k] for k in b], [responses[k] for k in b], self.device) for b in batches]
        tokens = sum(len(x) + len(r) for x, r in zip(seq_prompts, responses, strict=True))

        old, ref = [], []
        with mark("scoring", tokens=2 * tokens) as span, torch.no_grad(), self.autocast():
            for b, (ids, attention, mask, starts) in zip(batches, packed, strict=True):
                with mark("logprobs_old", sequences=len(b)):
                    old.append(response_logprobs(self.policy, ids, attention, starts, mask.shape[1]))
                    self.sync()
                with mark("logprobs_ref", sequences=len(b)):
                    ref.append(response_logprobs(self.reference, ids, attention, starts, mask.shape[1]))
                    self.sync()

        meter = SavedTensorMeter(self.policy)
        activations = 0
        with mark("training", tokens=tokens) as span:
            self.optimizer.zero_grad(set_to_none=True)
            for b, (ids, attention, mask, starts), o, r in zip(batches, packed, old, ref, strict=True):
                with mark("forward_backward", sequences=len(b), tokens=int(attention.sum())) as fb:
                    with meter, self.autocast():
                        new = response_logprobs(self.policy, ids, attention, starts, mask.shape[1])
                        loss = grpo_loss(new, o, r, advantages[b], mask, p.clip_eps, p.kl_coef) * (len(b) / len(keys))
                    loss.backward()
                    self.sync()
                fb.attrs.update(memory_activations_bytes=meter.bytes, loss=float(loss.detach()))
                activations = max(activations, meter.bytes)
            with mark("optimizer_step") as step:
                self.optimizer.step()
                self.sync()
        # counted after the stage: the gradients stay alive until the next step's zero_grad
        gradients = tensor_bytes(t.grad for t in self.policy.parameters() if t.grad is not None)
        step.attrs.update(
            memory_weights_bytes=tensor_bytes(self.policy.parameters()),
            memory_gradients_bytes=gradients,
            memory_optimizer_state_bytes=optimizer_state_bytes(self.optimizer),
        )

        with mark("weight_sync", units=1) as span, torch.no_grad():
            for (name, dst), (src_name, src) in zip(self.rollout_model.named_parameters(), self.policy.named_parameters(), strict=True):
                if name != src_name:
                    raise RuntimeError(f"the rollout copy's parameters differ from the policy's ({name} vs {src_name})")
                dst.copy_(src)
            self.sync()
        span.attrs.update(
            bytes=tensor_bytes(self.rollout_model.parameters()),
            memory_rollout_weights_bytes=tensor_bytes(self.rollout_model.parameters()),
            memory_reference_weights_bytes=tensor_bytes(self.reference.parameters()),
        )

    def teardown(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self.batcher = self.policy = self.reference = self.rollout_model = self.optimizer = None


def tensor_bytes(tensors: Any) -> int:
    """Bytes of the tensors' elements (each tensor once: parameters() already skips tied ones)."""
    return sum(t.numel() * t.element_size() for t in tensors)


def optimizer_state_bytes(optimizer: Any) -> int:
    """Bytes of every tensor in the optimizer's state (AdamW: exp_avg, exp_avg_sq and the step count per parameter)."""
    return sum(v.numel() * v.element_size() for state in optimizer.state.values() for v in state.values() if hasattr(v, "element_size"))


class SavedTensorMeter:
    """Bytes of the storages autograd saves for backward inside the `with` block, parameters excluded:
    the activations one micro-batch's forward keeps alive until its backward (reusable; reset on entry)."""

    def __init__(self, model: Any) -> None:
        self.params = {t.untyped_storage().data_ptr() for t in model.parameters()}
        self.bytes = 0
        self._hooks: Any = None

    def __enter__(self) -> SavedTensorMeter:
        import torch

        self._storages: dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def _pack(self, t: Any) -> Any:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self.params:
            self._storages[ptr] = storage.nbytes()
        return t

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)
        self.bytes = sum(self._storages.values())
