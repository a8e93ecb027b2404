"""What scraping a server's Prometheus /metrics costs (workloads/endpoint_metrics.py), against a real `vllm serve`.

Starts `vllm serve MODEL` on 127.0.0.1 (its own process group, always stopped), waits for /health, then scrapes
/metrics N times back to back with the endpoint workload's own Scraper and prints, as JSON: the client's GET time
(p50, max), the bytes and the parse of the mapped lines per scrape (the figures a run's facts carry), and the
server's CPU per scrape: the API server process's CPU time (psutil) over the N scrapes, minus its CPU over the same
wall time without scrapes, / N; the same for its whole process tree. CPU times tick at 10 ms: N = 200 keeps that
under 0.05 ms per scrape.

    python benchmarks/endpoint_scrape_cost.py --vllm /tmp/vllm-venv/bin/vllm --model DIR [--scrapes 200]

MODEL: a model directory vLLM serves (benchmarks/vllm_endpoint.py builds a small random one); vLLM's CPU build as
benchmarks/vllm_endpoint.py's docstring sets it up. Nothing is downloaded (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cpu_s(processes: list) -> float:
    """User + system CPU seconds of these processes (those gone count nothing)."""
    import psutil

    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def wait_healthy(port: int, timeout_s: float = 300) -> None:
    import httpx2

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"vllm serve did not answer /health on port {port} within {timeout_s:g} s")


def measure(port: int, model: str, pid: int, n: int) -> dict:
    import psutil

    from workloads.endpoint_metrics import Scraper

    api = psutil.Process(pid)
    tree = [api, *api.children(recursive=True)]
    scraper = Scraper(f"http://127.0.0.1:{port}/metrics", 2.0, model, {}, None)
    try:
        scraper.once()  # the first: the names tell the map, the whole text is parsed
        a0, t0, start = cpu_s([api]), cpu_s(tree), time.perf_counter()
        for _ in range(n):
            scraper.once()
        wall = time.perf_counter() - start
        a1, t1 = cpu_s([api]), cpu_s(tree)
        time.sleep(0.5)
        b0, q0 = cpu_s([api]), cpu_s(tree)
        time.sleep(wall)
        b1, q1 = cpu_s([api]), cpu_s(tree)
        cost = scraper.cost()
    finally:
        scraper.client.close()
    return {
        "scrapes": n,
        "failed": cost["failed"],
        "client_get_ms_p50": cost["seconds_p50"] * 1e3,
        "client_get_ms_max": cost["seconds_max"] * 1e3,
        "bytes_mean": cost["bytes_mean"],
        "client_parse_ms_p50": cost["parse_seconds_p50"] * 1e3,
        "server_api_cpu_ms_per_scrape": ((a1 - a0) - (b1 - b0)) * 1e3 / n,
        "server_tree_cpu_ms_per_scrape": ((t1 - t0) - (q1 - q0)) * 1e3 / n,
        "server_tree_processes": len(tree),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vllm", default="vllm")
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=8131)
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    command = [args.vllm, "serve", args.model, "--host", "127.0.0.1", "--port", str(args.port), "--max-model-len", "256", "--enable-prefix-caching"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_healthy(args.port)
        time.sleep(5)  # its start-up work done
        print(json.dumps(measure(args.port, args.model, server.pid, args.scrapes), indent=1))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
