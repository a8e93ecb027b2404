"""Eager against compiled LLM decode: TPOT, MBU and bound class of llm_decode's decode step with a growing
DynamicCache (eager, as transformers runs it by default) and with a static cache under torch.compile (CUDA graphs on
CUDA: how gpt-fast and production engines run decode). Issue 16's target on one H200: Llama-3.1-8B bf16 at batch 1
reaches an MBU of at least 60% compiled (16 GB of weights at the calibrated copy bandwidth) and is memory-bound.

Runs one suite of the two through the CLI (its own run directory, with the counting pass for MBU) and prints one line
per mode and the ratio of TPOTs.

    python benchmarks/compiled_decode.py [--device cpu|cuda] [--preset llama-tiny] [--prompt 128] [--gen 64] [-o DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

SUITE = """name: compiled-decode
device: {device}
measure: {{warmup_iters: 2, min_iters: 5, min_seconds: 2, max_seconds: 300, trace_ops: false}}
workloads:
  - name: eager
    type: llm_decode
    params: {{preset: {preset}, prompt_len: {prompt}, gen_len: {gen}}}
  - name: compiled
    type: llm_decode
    params: {{preset: {preset}, prompt_len: {prompt}, gen_len: {gen}, cache: static, compile: true}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default="llama-tiny")
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--gen", type=int, default=64)
    parser.add_argument("-o", "--out", default=None, help="where the run directory goes (default: a temporary directory)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="compiled-decode-"))
    suite = out / "suite.yaml"
    out.mkdir(parents=True, exist_ok=True)
    suite.write_text(SUITE.format(device=args.device, preset=args.preset, prompt=args.prompt, gen=args.gen))
    result = subprocess.run([sys.executable, "-m", "profiler", "run", str(suite), "-o", str(out / "runs")], capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stderr[-2000:], file=sys.stderr)
        return result.returncode
    from profiler import load_run

    (run_dir,) = (out / "runs").iterdir()
    run = load_run(run_dir)
    tpot = {}
    for name in ("eager", "compiled"):
        s = run.workloads[name].summary
        work = s.work.phases.get("decode_step") if s.work else None
        tpot[name] = s.metrics.tpot_s.median if s.metrics.tpot_s else None
        mbu = f"{work.mbu:.1%}" if work and work.mbu is not None else f"unavailable ({s.work.mfu_unavailable if s.work else s.unavailable.get('work')})"
        bound = work.bound.value if work and work.bound else "unavailable"
        contended = " (contended: inconclusive)" if s.contention and s.contention.contended else ""
        print(f"{name:9s} {args.preset} {args.device}: TPOT {tpot[name] * 1e3:.2f} ms, MBU {mbu}, decode step {bound}{contended}")
    if tpot["eager"] and tpot["compiled"]:
        print(f"compiled / eager TPOT: {tpot['compiled'] / tpot['eager']:.3f}  (run: {run_dir})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
