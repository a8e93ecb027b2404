"""Record every step of a real vLLM engine for vllm_serve's bookkeeping test (tests/data/vllm_steps.json).

Runs in vLLM's own environment (see benchmarks/vllm_cpu.py): 6 requests of known sizes submitted at once to the v1
LLMEngine (4 running at most, greedy, ignore_eos, streamed as deltas) over a local model directory, and writes, per
step, when its outputs reached this process (time.monotonic_ns), each output's new tokens, whether it finished and
its RequestStateStats.

    /tmp/vllm-venv/bin/python benchmarks/vllm_record_steps.py MODEL_DIR tests/data/vllm_steps.json
"""

from __future__ import annotations

import json
import os
import sys
import time

SIZES = [(5, 8), (6, 40), (7, 100), (5, 100), (9, 3), (5, 12)]
METRICS = ("arrival_time", "queued_ts", "scheduled_ts", "first_token_ts", "last_token_ts", "num_generation_tokens", "num_preemptions")


def main(model_dir: str, out: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    import vllm
    from vllm import EngineArgs, SamplingParams
    from vllm.sampling_params import RequestOutputKind
    from vllm.v1.engine.llm_engine import LLMEngine

    args = EngineArgs(
        model=model_dir,
        skip_tokenizer_init=True,
        dtype="float32",
        max_model_len=256,
        max_num_seqs=4,
        enforce_eager=True,
        disable_log_stats=False,
        block_size=32,
        num_gpu_blocks_override=9,
    )
    engine = LLMEngine.from_engine_args(args)
    for i, (n_in, n_out) in enumerate(SIZES):
        params = SamplingParams(max_tokens=n_out, ignore_eos=True, temperature=0.0, output_kind=RequestOutputKind.DELTA)
        engine.add_request(str(i), {"prompt_token_ids": list(range(4, 4 + n_in))}, params)
    steps = []
    while engine.has_unfinished_requests():
        outputs = engine.step()
        now = time.monotonic_ns()
        rows = []
        for o in outputs:
            m = o.metrics
            rows.append(
                {
                    "request_id": o.request_id,
                    "new_tokens": len(o.outputs[0].token_ids) if o.outputs else 0,
                    "finished": o.finished,
                    "finish_reason": o.outputs[0].finish_reason if o.outputs else None,
                    "metrics": None if m is None else {k: getattr(m, k, None) for k in METRICS},
                }
            )
        steps.append({"now_ns": now, "outputs": rows})
    with open(out, "w") as f:
        json.dump({"vllm": vllm.__version__, "sizes": SIZES, "steps": steps}, f, indent=0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
