"""`python -m profiler calibrate`: this machine's ceilings, measured, never hard-coded.

- Peak matmul FLOP/s per dtype: the best of several large square matmuls (2*n^3 FLOPs each)
  on random data, after warmup, with the device synchronised around the timed region.
- Copy bandwidth: the best of several device-to-device copies of a large buffer, counting bytes
  read plus bytes written (2 x size), the convention for "achieved bandwidth".
Results are cached per machine (CPU model, GPU name, torch version, thread count) under
~/.cache/ml-workload-profiler/ and copied into every run directory, so MFU and MBU in a report are
always against the ceilings of the machine that ran it. Datasheet figures may be shown beside
them, labelled as such; they never replace the measurement.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

CACHE_DIR = Path(os.environ.get("PROFILER_CACHE_DIR", Path.home() / ".cache" / "ml-workload-profiler"))


def machine_key(device: str) -> dict[str, Any]:
    import torch

    from .env import cpu_model

    key = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__, "device": "cpu"}
    if device.startswith("cuda"):
        key["device"] = torch.cuda.get_device_name(torch.device(device))
    return key


def cache_path(key: dict[str, Any]) -> Path:
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return CACHE_DIR / f"calibration-{digest}.json"


def measure(device: str, dtypes: tuple[str, ...] = ("float32", "bfloat16"), budget_s: float = 20.0) -> dict[str, Any]:
    """Measure peak matmul FLOP/s per dtype and copy bandwidth on `device`."""
    import torch

    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    result: dict[str, Any] = {"device": device, "matmul_flops_per_s": {}, "method": {}}
    n = 8192 if cuda else 1024
    for name in dtypes:
        dtype = getattr(torch, name)
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        best = 0.0
        deadline = time.monotonic() + budget_s / (2 * len(dtypes))
        for i in range(30):
            sync()
            t = time.perf_counter()
            a @ b
            sync()
            dt = time.perf_counter() - t
            if i >= 2:  # warmup
                best = max(best, 2 * n**3 / dt)
            if i >= 5 and time.monotonic() > deadline:
                break
        result["matmul_flops_per_s"][name] = best
    result["method"]["matmul"] = f"best of up to 28 timed {n}x{n}x{n} matmuls on random data, 2*n^3 FLOPs each"
    size = (2 << 30) if cuda else (256 << 20)
    src = torch.empty(size, dtype=torch.uint8, device=device)
    src.fill_(1)
    dst = torch.empty_like(src)
    best = 0.0
    for i in range(12):
        sync()
        t = time.perf_counter()
        dst.copy_(src)
        sync()
        dt = time.perf_counter() - t
        if i >= 2:
            best = max(best, 2 * size / dt)
    result["copy_bytes_per_s"] = best
    result["method"]["copy"] = f"best of 10 copies of {size >> 20} MiB, counting read + write (2 x size)"
    return result


def load_or_measure(device: str, force: bool = False) -> dict[str, Any]:
    key = machine_key(device)
    path = cache_path(key)
    if path.exists() and not force:
        try:
            return {**json.loads(path.read_text()), "cache_file": str(path), "from_cache": True}
        except ValueError:
            pass
    result = {"key": key, "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **measure(device)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
        result["cache_file"] = str(path)
    except OSError as exc:
        result["cache_error"] = f"could not cache at {path}: {exc}"
    return result


def calibrate_in_subprocess(device: str, timeout_s: float = 600) -> tuple[dict[str, Any] | None, str | None]:
    """(ceilings, None) or (None, why): `python -m profiler calibrate --json` in a subprocess, so
    no CUDA context or allocation lingers in the parent that supervises the workloads."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "profiler", "calibrate", "--device", device, "--json"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        result = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
        reason = None if result else (done.stderr.strip().splitlines() or ["no output"])[-1]
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        result, reason = None, f"{type(exc).__name__}: {exc}"
    return result, None if result else f"calibration failed: {reason}"
