"""The parent's sampler: reads the child process and the GPU from outside, at `sample_hz`.

Sampling from the parent costs the measured process nothing (optimum-benchmark's habit). Rows
carry the same monotonic clock as spans. Process CPU% (100 = one core busy) and RSS come from
/proc/<pid>/stat read through file descriptors kept open (pread at offset 0), and system CPU%
from /proc/stat: psutil reads the same files but opens them on every call, which costs several
times more CPU at 100 Hz (benchmarks/sampler.py). Elsewhere than Linux, psutil is used. GPU
columns come from NVML once the child reports which GPU it uses, and stay null with a reason
otherwise.
"""

from __future__ import annotations

import os
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


class ProcStatReader:
    """CPU% and RSS of one process and system CPU% from procfs, with the files kept open."""

    TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def __init__(self, pid: int) -> None:
        self.fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        self.sys_fd = os.open("/proc/stat", os.O_RDONLY)
        self.last = self._raw()

    def _raw(self) -> tuple[float, int, int, int, str] | None:
        try:
            own = os.pread(self.fd, 2048, 0)
            system = os.pread(self.sys_fd, 512, 0)
        except OSError:
            return None
        fields = own[own.rfind(b")") + 2 :].split()  # after "pid (comm) "
        if not fields:
            return None
        cpu = (int(fields[11]) + int(fields[12])) / self.TICKS  # utime + stime, seconds
        counters = [int(x) for x in system[: system.index(b"\n")].split()[1:]]
        idle = counters[3] + (counters[4] if len(counters) > 4 else 0)
        return time.monotonic(), cpu, int(fields[21]) * self.PAGE, sum(counters[:8]) - idle, fields[0].decode()

    def read(self) -> tuple[float, int, float] | None:
        """(process CPU %, RSS bytes, system CPU %) since the last read; None once the process is gone."""
        now = self._raw()
        if now is None or now[4] == "Z":
            return None
        t0, cpu0, _, busy0, _ = self.last
        t1, cpu1, rss, busy1, _ = now
        self.last = now
        total_ticks = (t1 - t0) * self.TICKS * (os.cpu_count() or 1)
        proc_pct = 100.0 * (cpu1 - cpu0) / (t1 - t0) if t1 > t0 else 0.0
        sys_pct = 100.0 * (busy1 - busy0) / total_ticks if total_ticks > 0 else 0.0
        return proc_pct, rss, min(100.0, max(0.0, sys_pct))

    def close(self) -> None:
        for fd in (self.fd, self.sys_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class PsutilReader:
    """The portable fallback."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.proc.cpu_percent(None)
        psutil.cpu_percent(None)

    def read(self) -> tuple[float, int, float] | None:
        try:
            with self.proc.oneshot():
                if self.proc.status() == psutil.STATUS_ZOMBIE:
                    return None  # exited, not yet reaped: its zeros are not readings
                return self.proc.cpu_percent(None), self.proc.memory_info().rss, psutil.cpu_percent(None)
        except psutil.Error:
            return None

    def close(self) -> None:
        pass


def open_reader(pid: int) -> Any:
    try:
        return ProcStatReader(pid)
    except OSError:
        return PsutilReader(pid)


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
            reader = open_reader(self.pid)
        except (psutil.Error, OSError) as exc:
            self.error = f"cannot sample process {self.pid}: {exc}"
            return
        next_t = time.monotonic()
        try:
            while not self.stop_event.is_set():
                next_t += self.period_s
                delay = next_t - time.monotonic()
                if delay < 0:  # fell behind (a stalled machine): skip ticks instead of bursting
                    next_t = time.monotonic()
                    delay = 0
                self.stop_event.wait(delay)
                row = self._read(reader)
                if row is None:
                    break
                with self.lock:
                    self.writer.append(row)
                    if self.writer.full and not self._flush():
                        break
        finally:
            reader.close()

    def _flush(self) -> bool:
        """Write the buffered rows; on a full disk record why and stop sampling (no thread traceback)."""
        try:
            self.writer.flush()
            return True
        except OSError as exc:
            self.error = f"sampler rows could not be written ({exc.strerror or exc}); sampling stopped, the rows in memory are lost"
            self.writer.rows.clear()
            return False

    def _read(self, reader: Any) -> dict[str, Any] | None:
        t_ns = time.monotonic_ns()
        values = reader.read()
        if values is None:
            return None  # the child is gone
        cpu, rss, system = values
        row: dict[str, Any] = {"t_ns": t_ns, "proc_cpu_percent": cpu, "proc_rss_bytes": rss, "sys_cpu_percent": system}
        row.update(self.gpu.read() if self.gpu else dict.fromkeys(GPU_COLUMNS))
        return row

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)
        with self.lock:
            self._flush()
