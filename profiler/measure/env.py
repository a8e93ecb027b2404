"""env.json: what machine and software produced a run, so numbers are never read without it."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from .nvml import Nvml

PACKAGES = (
    "torch",
    "transformers",
    "diffusers",
    "numpy",
    "pandas",
    "pyarrow",
    "pydantic",
    "nvidia-ml-py",
    "psutil",
    "plotly",
    "rich",
    "PyYAML",
    "ml-workload-profiler",
)
PROJECT_DIR = Path(__file__).resolve().parent.parent


THREADING_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "MKL_NUM_THREADS")
"""The user's threading settings as the profiler found them (each child gets OMP_WAIT_POLICY=PASSIVE unless set here:
run/supervisor.py; its child.json says which was in force)."""


def collect_env(nvml: Nvml, argv: list[str]) -> dict[str, Any]:
    env: dict[str, Any] = {
        "command_line": argv,
        "cwd": os.getcwd(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_cores_logical": psutil.cpu_count(logical=True),
        "cpu_cores_physical": psutil.cpu_count(logical=False),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_total_bytes": psutil.virtual_memory().total,
        "threading_env": {name: os.environ.get(name) for name in THREADING_ENV},
        "packages": {name: _version(name) for name in PACKAGES},
        "git": git_revision(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch_cuda"] = torch.version.cuda
        env["torch_cuda_available"] = bool(torch.cuda.is_available())
        env["torch_num_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            env["cudnn"] = torch.backends.cudnn.version()
    env["nvidia_driver"] = nvml.driver_version()
    env["gpus"] = nvml.devices()
    if not nvml.ok:
        env["gpus_unavailable"] = nvml.reason
    return env


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_revision() -> dict[str, Any] | None:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=5)
        return {"revision": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
