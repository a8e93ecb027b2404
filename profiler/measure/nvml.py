"""NVML through nvidia-ml-py: GPU readings that are measured or marked unavailable, never faked.

Each reading is tried once when a GPU is attached; one that the driver does not support (or no
NVML at all) is recorded as unavailable with NVML's own reason, and stored as null afterwards.
`utilization.gpu` is NVML's "fraction of time one or more kernels ran": we call it
kernel-active time, not SM occupancy (metrics.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

MIN_WINDOW_S = 1.0
"""The shortest window an energy-counter difference is taken over (metrics.md: at least one second)."""

# column -> (NVML call on a handle, conversion to SI storage units)
GPU_COLUMNS: dict[str, tuple[str, Callable[[Any], float]]] = {
    "gpu_kernel_active_percent": ("utilization", lambda r: float(r.gpu)),
    "gpu_memory_used_bytes": ("memory", lambda r: float(r.used)),
    "gpu_power_w": ("power", lambda mw: mw / 1e3),
    "gpu_energy_j": ("energy", lambda mj: mj / 1e3),
    "gpu_sm_clock_hz": ("sm_clock", lambda mhz: mhz * 1e6),
    "gpu_temperature_c": ("temperature", float),
}


class Nvml:
    """A handle on NVML for the parent process; `reason` says why it is unavailable."""

    def __init__(self) -> None:
        self.nv: Any = None
        self.reason: str | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nv = pynvml
        except ImportError:
            self.reason = "nvidia-ml-py (pynvml) is not installed"
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded...
            self.reason = f"NVML unavailable: {_nvml_message(exc)} (no NVIDIA GPU or driver on this machine)"

    @property
    def ok(self) -> bool:
        return self.nv is not None

    def driver_version(self) -> str | None:
        return _text(self.nv.nvmlSystemGetDriverVersion()) if self.ok else None

    def devices(self) -> list[dict[str, Any]]:
        if not self.ok:
            return []
        out = []
        for i in range(self.nv.nvmlDeviceGetCount()):
            h = self.nv.nvmlDeviceGetHandleByIndex(i)
            out.append(
                {
                    "index": i,
                    "name": _text(self.nv.nvmlDeviceGetName(h)),
                    "uuid": _text(self.nv.nvmlDeviceGetUUID(h)),
                    "memory_total_bytes": int(self.nv.nvmlDeviceGetMemoryInfo(h).total),
                }
            )
        return out

    def open_cuda_index(self, index: int) -> GpuReader:
        """The NVML device behind torch's cuda:index, honouring CUDA_VISIBLE_DEVICES (indexes or UUIDs)."""
        import os

        visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        if not visible:
            return GpuReader(self.nv, self.nv.nvmlDeviceGetHandleByIndex(index))
        chosen = visible[index]
        if chosen.isdigit():
            return GpuReader(self.nv, self.nv.nvmlDeviceGetHandleByIndex(int(chosen)))
        return self.open(chosen)

    def open(self, uuid: str) -> GpuReader:
        nv = self.nv
        uuid = uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
        handle = nv.nvmlDeviceGetHandleByUUID(uuid.encode() if isinstance(uuid, str) else uuid)
        return GpuReader(nv, handle)

    def shutdown(self) -> None:
        if self.ok:
            try:
                self.nv.nvmlShutdown()
            except Exception:
                pass


class GpuReader:
    """Reads the supported GPU columns of one device; knows why the others are missing."""

    def __init__(self, nv: Any, handle: Any) -> None:
        self.nv, self.handle = nv, handle
        self.calls: dict[str, Callable[[], Any]] = {
            "utilization": lambda: nv.nvmlDeviceGetUtilizationRates(handle),
            "memory": lambda: nv.nvmlDeviceGetMemoryInfo(handle),
            "power": lambda: nv.nvmlDeviceGetPowerUsage(handle),
            "energy": lambda: nv.nvmlDeviceGetTotalEnergyConsumption(handle),
            "sm_clock": lambda: nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_SM),
            "temperature": lambda: nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU),
        }
        self.unavailable: dict[str, str] = {}
        self.columns: dict[str, tuple[Callable[[], Any], Callable[[Any], float]]] = {}
        for column, (call, convert) in GPU_COLUMNS.items():
            try:
                convert(self.calls[call]())
                self.columns[column] = (self.calls[call], convert)
            except Exception as exc:
                self.unavailable[column] = f"NVML: {_nvml_message(exc)}"

    def energy_j(self) -> float:
        return GPU_COLUMNS["gpu_energy_j"][1](self.calls["energy"]())

    def read(self) -> dict[str, float | None]:
        row: dict[str, float | None] = dict.fromkeys(GPU_COLUMNS)
        for column, (call, convert) in self.columns.items():
            try:
                row[column] = convert(call())
            except Exception:
                row[column] = None  # a transient failure is a gap, never a zero
        return row

    def other_processes(self, pid: int, own: set[int] | frozenset[int] = frozenset()) -> float | None:
        """Compute and graphics processes on this GPU other than `pid`, the workload's own local server `own` and this
        profiler (contention on the device); None when the driver does not list them (the reason is in `unavailable`)."""
        if "gpu_other_processes" in self.unavailable:
            return None
        try:
            pids = {p.pid for call in (self.nv.nvmlDeviceGetComputeRunningProcesses, self.nv.nvmlDeviceGetGraphicsRunningProcesses) for p in call(self.handle)}
        except Exception as exc:
            self.unavailable["gpu_other_processes"] = f"NVML: {_nvml_message(exc)}"
            return None
        return float(len(pids - {pid, os.getpid()} - set(own)))


def _nvml_message(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def idle_power(nvml: Nvml, device: str, seconds: float = 2.0) -> dict[str, Any]:
    """GPU idle power before any workload runs, from the energy counter over `seconds` (at least
    MIN_WINDOW_S), for energy above idle; {"unavailable": why} on the CPU or without NVML."""
    if not device.startswith("cuda"):
        return {"unavailable": "the run is on the CPU"}
    if not nvml.ok:
        return {"unavailable": nvml.reason}
    try:
        reader = nvml.open_cuda_index(int(device.split(":")[1]) if ":" in device else 0)
        seconds = max(seconds, MIN_WINDOW_S)
        t0, e0 = time.monotonic(), reader.energy_j()
        time.sleep(seconds)
        t1, e1 = time.monotonic(), reader.energy_j()
    except Exception as exc:
        return {"unavailable": f"NVML energy counter: {exc}"}
    return {"idle_power_w": (e1 - e0) / (t1 - t0), "window_s": t1 - t0, "method": "NVML total-energy counter difference, GPU idle before the run"}
