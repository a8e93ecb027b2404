"""The parent's sampler: reads the child process and the GPU from outside, at `sample_hz`.

Sampling from the parent costs the measured process nothing (optimum-benchmark's habit). Rows
carry the same monotonic clock as spans. Process CPU% (100 = one core busy) and RSS come from
/proc/<pid>/stat read through file descriptors kept open (pread at offset 0), system CPU% and the
contention on the process's cores (other processes' CPU and steal time, ProcStatReader) from
/proc/stat: psutil reads the same files but opens them on every call, which costs several
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
    [
        ("t_ns", pa.int64()),
        ("proc_cpu_percent", pa.float64()),
        ("proc_rss_bytes", pa.int64()),
        ("sys_cpu_percent", pa.float64()),
        ("other_cpu_cores", pa.float64()),
        ("steal_cores", pa.float64()),
    ]
    + [(column, pa.float64()) for column in GPU_COLUMNS]
    + [("gpu_other_processes", pa.float64())]
)
CPU_BUSY_FIELDS = (0, 1, 2, 5, 6)  # user nice system irq softirq in a /proc/stat cpu line (guest time is inside user)
CPU_STEAL_FIELD = 7
STAT_LINE_BYTES = 192
"""An upper bound on one cpu line of /proc/stat (11 counters of at most 20 digits would be 230; real lines are under 120).
Only the cpu lines, which come first, are read: the kernel formats as much of the file as is read, and its interrupt
lines are long, so reading the whole file each tick costs several times more."""


class ProcStatReader:
    """One process's CPU% and RSS, system CPU%, and contention on the process's cores, from procfs
    with the files kept open.

    Contention (metrics.md, "Statistics"): on the cores in the process's affinity mask, the CPU
    time of every other process (the cores' busy time, minus this process's and the profiler's
    own), and the time the hypervisor stole, each in cores (1.0 = one core's worth). The
    process's own threads count as the process, never as contention. Counters tick at CLK_TCK
    (100 Hz), so a single interval is coarse; summaries take medians over the measured window.
    Process CPU% is bounded by 100 x the cores the process may use: a tick counted at an interval's
    edge cannot make one interval show more CPU than the cores exist.
    """

    TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def __init__(self, pid: int) -> None:
        self.cores = sorted(os.sched_getaffinity(pid)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
        self.is_self = pid == os.getpid()
        self.stat_bytes = STAT_LINE_BYTES * (max(self.cores, default=0) + 2)  # the total line and cpu0 .. the last core used
        self.fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        self.sys_fd = os.open("/proc/stat", os.O_RDONLY)
        self.self_fd = os.open("/proc/self/stat", os.O_RDONLY)
        self.last = self._raw()

    def _raw(self) -> dict[str, Any] | None:
        try:
            own = os.pread(self.fd, 2048, 0)
            system = os.pread(self.sys_fd, self.stat_bytes, 0)
            mine = os.pread(self.self_fd, 2048, 0)
        except OSError:
            return None
        fields = own[own.rfind(b")") + 2 :].split()  # after "pid (comm) "
        if not fields:
            return None
        lines = system.split(b"\n")[:-1]  # the last piece is cut where the read stopped (or empty): never a whole line
        counters = [int(x) for x in lines[0].split()[1:]]
        idle = counters[3] + (counters[4] if len(counters) > 4 else 0)
        busy_cores, steal = 0, 0
        wanted = {f"cpu{c}".encode() for c in self.cores}
        for line in lines[1:]:
            if not line.startswith(b"cpu"):
                break
            parts = line.split()
            if parts[0] in wanted:
                values = [int(x) for x in parts[1:]]
                busy_cores += sum(values[i] for i in CPU_BUSY_FIELDS if i < len(values))
                steal += values[CPU_STEAL_FIELD] if len(values) > CPU_STEAL_FIELD else 0
        me = mine[mine.rfind(b")") + 2 :].split()
        return {
            "t": time.monotonic(),
            "proc_ticks": int(fields[11]) + int(fields[12]),  # utime + stime of every thread of the process
            "rss": int(fields[21]) * self.PAGE,
            "sys_busy": sum(counters[:8]) - idle,
            "cores_busy": busy_cores,
            "steal": steal,
            "self_ticks": int(me[11]) + int(me[12]) if me else 0,
            "state": fields[0].decode(),
        }

    def read(self) -> dict[str, float] | None:
        """Readings since the last read (see SAMPLE_SCHEMA); None once the process is gone."""
        now = self._raw()
        if now is None or now["state"] == "Z":
            return None
        last, self.last = self.last, now
        dt = now["t"] - last["t"] if last is not None else 0.0
        if last is None or dt <= 0:  # the first reading (opening could not read one), or two at once
            return {"proc_cpu_percent": 0.0, "proc_rss_bytes": now["rss"], "sys_cpu_percent": 0.0}
        tick_s = 1.0 / self.TICKS
        proc_cores = (now["proc_ticks"] - last["proc_ticks"]) * tick_s / dt
        total = dt * self.TICKS * (os.cpu_count() or 1)
        return {
            "proc_cpu_percent": 100.0 * min(proc_cores, len(self.cores)),
            "proc_rss_bytes": now["rss"],
            "sys_cpu_percent": min(100.0, max(0.0, 100.0 * (now["sys_busy"] - last["sys_busy"]) / total)),
            "other_cpu_cores": self.other_cores(last, now),
            "steal_cores": max(0.0, (now["steal"] - last["steal"]) * tick_s / dt),
        }

    def other_cores(self, last: dict[str, Any], now: dict[str, Any]) -> float:
        """Other processes' CPU (in cores) on the process's cores between two raw readings (`last`, then `now`, as
        `self.last` holds them): the cores' busy ticks minus the process's and this profiler's own (not subtracted twice
        when the process is this one). 0.0 for readings at the same time."""
        dt = now["t"] - last["t"]
        if dt <= 0:
            return 0.0
        own = 0 if self.is_self else now["self_ticks"] - last["self_ticks"]
        others = (now["cores_busy"] - last["cores_busy"]) - (now["proc_ticks"] - last["proc_ticks"]) - own
        return max(0.0, others / (self.TICKS * dt))

    def close(self) -> None:
        for fd in (self.fd, self.sys_fd, self.self_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class PsutilReader:
    """The portable fallback (no per-core contention: those columns stay null)."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.proc.cpu_percent(None)
        psutil.cpu_percent(None)
        self.cores = list(range(psutil.cpu_count() or 1))

    def read(self) -> dict[str, float] | None:
        try:
            with self.proc.oneshot():
                if self.proc.status() == psutil.STATUS_ZOMBIE:
                    return None  # exited, not yet reaped: its zeros are not readings
                cpu = min(self.proc.cpu_percent(None), 100.0 * len(self.cores))
                return {"proc_cpu_percent": cpu, "proc_rss_bytes": self.proc.memory_info().rss, "sys_cpu_percent": psutil.cpu_percent(None)}
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
    """Samples process `pid` at `hz` into `writer`'s part files: a part when 8192 rows are buffered, and also every
    `flush_every_s` seconds when given (a cluster worker ships each part to the driver as it is written)."""

    def __init__(self, pid: int, hz: float, writer: PartWriter, flush_every_s: float | None = None) -> None:
        super().__init__(name="profiler-sampler", daemon=True)
        self.pid = pid
        self.period_s = 1.0 / hz
        self.writer = writer
        self.flush_every_s = flush_every_s
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
        next_t = last_flush = time.monotonic()
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
                    due = self.flush_every_s is not None and time.monotonic() - last_flush >= self.flush_every_s
                    if (self.writer.full or due) and not self._flush():
                        break
                    last_flush = time.monotonic() if due else last_flush
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
        row: dict[str, Any] = {"t_ns": t_ns, "other_cpu_cores": None, "steal_cores": None, **values}
        row.update(self.gpu.read() if self.gpu else dict.fromkeys(GPU_COLUMNS))
        row["gpu_other_processes"] = self.gpu.other_processes(self.pid) if self.gpu else None
        return row

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)
        with self.lock:
            self._flush()
