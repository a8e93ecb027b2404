"""The parent's sampler: reads the child process and the GPU from outside, at `sample_hz`.

Sampling from the parent costs the measured process nothing (optimum-benchmark's habit). Rows
carry the same monotonic clock as spans. Process CPU% is psutil's (100 = one core busy), RSS is
the child's resident set; GPU columns come from NVML once the child reports which GPU it uses,
and stay null with a reason otherwise.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psutil
import pyarrow as pa

from .nvml import GPU_COLUMNS, GpuReader
from .store import PartWriter

SAMPLE_SCHEMA = pa.schema(
    [("t_ns", pa.int64()), ("proc_cpu_percent", pa.float64()), ("proc_rss_bytes", pa.int64()), ("sys_cpu_percent", pa.float64())]
    + [(column, pa.float64()) for column in GPU_COLUMNS]
)


class ProcessSampler(threading.Thread):
    def __init__(self, pid: int, hz: float, writer: PartWriter) -> None:
        super().__init__(name="profiler-sampler", daemon=True)
        self.pid = pid
        self.period_s = 1.0 / hz
        self.writer = writer
        self.gpu: GpuReader | None = None
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.error: str | None = None

    def attach_gpu(self, reader: GpuReader) -> None:
        self.gpu = reader

    def run(self) -> None:
        try:
            proc = psutil.Process(self.pid)
            proc.cpu_percent(None)
            psutil.cpu_percent(None)
        except psutil.Error as exc:
            self.error = f"cannot sample process {self.pid}: {exc}"
            return
        next_t = time.monotonic()
        while not self.stop_event.is_set():
            row = self._read(proc)
            if row is None:
                break
            with self.lock:
                self.writer.append(row)
                if self.writer.full:
                    self.writer.flush()
            next_t += self.period_s
            delay = next_t - time.monotonic()
            if delay < 0:  # fell behind (a stalled machine): skip ticks instead of bursting
                next_t = time.monotonic()
                delay = 0
            self.stop_event.wait(delay)

    def _read(self, proc: psutil.Process) -> dict[str, Any] | None:
        t_ns = time.monotonic_ns()
        try:
            with proc.oneshot():
                if proc.status() == psutil.STATUS_ZOMBIE:
                    return None  # exited, not yet reaped: its zeros are not readings
                cpu = proc.cpu_percent(None)
                rss = proc.memory_info().rss
        except psutil.Error:
            return None  # the child is gone
        row: dict[str, Any] = {
            "t_ns": t_ns,
            "proc_cpu_percent": cpu,
            "proc_rss_bytes": rss,
            "sys_cpu_percent": psutil.cpu_percent(None),
        }
        row.update(self.gpu.read() if self.gpu else dict.fromkeys(GPU_COLUMNS))
        return row

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)
        with self.lock:
            self.writer.flush()
