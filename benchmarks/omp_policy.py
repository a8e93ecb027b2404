"""torch's CPU threads against other processes on the same cores (a benchmark, not a test).

On CPU, torch's intra-op work runs on OpenMP threads (libgomp in the PyPI wheels). Between parallel regions an
OpenMP worker spin-waits for a while before it sleeps (OMP_WAIT_POLICY / GOMP_SPINCOUNT); when another process
holds one of the cores, a region's threads wait for a thread that is not running, and a decode step can take many
times longer. This prints, for the llama-tiny decode loop (the overhead benchmark's bare loop), the median per-token
latency with 1 thread and with one per core, under OMP_WAIT_POLICY unset, PASSIVE and ACTIVE, quiet and with one
busy-looping process per core minus one (contended), each configuration in a fresh process (the policy is read when
the OpenMP runtime starts). The profiler's default follows from it (profiler/run/child.py) and every run records it.

Usage: python benchmarks/omp_policy.py [--rounds 20] [--gen-len 32]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time

POLICIES = (None, "PASSIVE", "ACTIVE")


def measure(threads: int, rounds: int, gen_len: int) -> float:
    """Median per-token latency (ms) of `rounds` decode loops of llama-tiny with `threads` intra-op threads."""
    import tempfile

    import torch
    from transformers import DynamicCache

    from benchmarks.overhead import bare_iteration
    from profiler.run.child import SetupContextImpl
    from workloads.decode_loop import cache_argument
    from workloads.llm_decode import LLMDecode

    torch.set_num_threads(threads)
    workload = LLMDecode(LLMDecode.Params(preset="llama-tiny", prompt_len=64, gen_len=gen_len))
    workload.setup(SetupContextImpl("cpu", 0, tempfile.gettempdir()))
    cache_kw = cache_argument(type(workload.model))
    latencies = []
    with torch.inference_mode():
        for r in range(rounds + 2):
            lat, _ = bare_iteration(workload.model, workload.input_ids, gen_len, DynamicCache, cache_kw)
            if r >= 2:  # two warm-up loops
                latencies.extend(lat)
    return statistics.median(latencies) * 1e3


def busy() -> None:
    while True:
        pass


def run_config(policy: str | None, threads: int, args: argparse.Namespace) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    code = f"from benchmarks.omp_policy import measure; print(measure({threads}, {args.rounds}, {args.gen_len}))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--gen-len", type=int, default=32)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    results = []
    for contended in (False, True):
        hogs = [mp.Process(target=busy, daemon=True) for _ in range(max(1, cores - 1))] if contended else []
        for hog in hogs:
            hog.start()
        time.sleep(0.5 if hogs else 0)
        try:
            for threads in sorted({1, cores}):
                for policy in POLICIES:
                    ms = run_config(policy, threads, args)
                    results.append({"contended": contended, "threads": threads, "policy": policy or "unset", "tpot_ms": ms})
                    where = "contended" if contended else "quiet"
                    print(f"{where:9s}  threads {threads}  OMP_WAIT_POLICY {policy or 'unset':7s}  per-token median {ms:8.2f} ms", flush=True)
        finally:
            for hog in hogs:
                hog.kill()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
