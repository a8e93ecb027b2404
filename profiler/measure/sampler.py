"""The parent's sampler: reads the child process and the GPU from outside, at `sample_hz`.

Sampling from the parent costs the measured process nothing (optimum-benchmark's habit). Rows
carry the same monotonic clock as spans. Process CPU% (100 = one core busy) and RSS come from
/proc/<pid>/stat read through file descriptors kept open (pread at offset 0), system CPU% and the
contention on the process's cores (other processes' CPU and steal time, ProcStatReader) from
/proc/stat: psutil reads the same files but opens them on every call, which costs several
times more CPU at 100 Hz (benchmarks/sampler.py). Elsewhere than Linux, psutil is used. GPU
columns come from NVML once the child reports which GPU it uses, and stay null with a reason
otherwise.

A local server (a process on this machine the workload sends its work to: found by the parent before the run,
run/child.py ChildSpec.local_server, or declared by the child at setup, plugin.SetupContext.declare_server) is read too,
as its process tree (the pid and its descendants, looked up again
every TREE_REFRESH_S): `server_cpu_percent` (100 = one core busy, summed over the tree) and `server_rss_bytes` (summed
RSS; pages shared between the tree's processes are counted once per process, so an upper bound). When the server does
the workload's work (`own`), its CPU is the workload's: it is taken out of `other_cpu_cores`, and the cores it may run
on join the cores contention is read on (the union of the child's and the server's affinity masks). When it is another
workload's server (ChildSpec.other_servers: the suite's other workloads' servers, alive beside this one), its tree is
read into the `other_server_*` columns (the trees of every such server together) and its CPU stays in
`other_cpu_cores`: it competes for the machine, idle or not.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
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
        ("server_cpu_percent", pa.float64()),
        ("server_rss_bytes", pa.float64()),
        ("server_processes", pa.float64()),
        ("other_server_cpu_percent", pa.float64()),
        ("other_server_rss_bytes", pa.float64()),
        ("other_server_processes", pa.float64()),
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


TREE_REFRESH_S = 1.0
"""How often a local server's process tree is listed again (a worker it starts later joins within this)."""


class TreeReader:
    """A local server's process tree (or several servers' trees read together): the CPU seconds its processes used since
    this reader opened, and their RSS.

    Members are the root pids and their descendants (psutil), listed again every TREE_REFRESH_S; a process that joins is
    counted from the moment it is first seen, one that exits keeps what it used while seen. Each member is read from
    /proc/<pid>/stat through a file descriptor kept open (as ProcStatReader; psutil where there is no procfs): about
    6 us a member a read, against 35 us through psutil (measured on a tree of 5, this branch's note). A root that cannot
    be read is left out (`skipped`, with why); raises psutil.Error when none can be (gone, or another user's process)."""

    TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def __init__(self, pids: int | Sequence[int], own: bool) -> None:
        wanted = [pids] if isinstance(pids, int) else list(dict.fromkeys(pids))
        self.own = own
        self.roots: list[psutil.Process] = []
        self.skipped: dict[int, str] = {}
        """Root pids that could not be read when opened, with why."""
        error: psutil.Error | None = None
        for pid in wanted:
            try:
                self.roots.append(psutil.Process(pid))
            except psutil.Error as exc:
                error = error or exc
                self.skipped[pid] = f"{type(exc).__name__} {exc}".strip()
        if not self.roots:
            raise error or psutil.NoSuchProcess(0)
        self.pids = [root.pid for root in self.roots]
        self.gone: set[int] = set()
        self.last_cpu: dict[int, float] = {}
        self.members: list[psutil.Process] = []
        self.fds: dict[int, int | None] = {}
        """pid -> an open /proc/<pid>/stat (None: read through psutil)."""
        self.listed = -TREE_REFRESH_S
        self.cpu_s = 0.0
        self.cores: set[int] = set()
        self.read()

    def _list(self) -> None:
        members: dict[int, psutil.Process] = {}
        for root in self.roots:
            if root.pid in self.gone:
                continue
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                tree = [root]
            members.update((proc.pid, proc) for proc in tree)
        self.members = list(members.values())
        cores: set[int] = set()
        for proc in self.members:
            try:
                cores.update(proc.cpu_affinity() or [])
            except (psutil.Error, AttributeError):  # gone, or no affinity on this platform
                pass
        self.cores = cores or set(range(os.cpu_count() or 1))
        pids = {proc.pid for proc in self.members}
        for pid in [p for p in self.fds if p not in pids]:
            self._close(pid)
        for pid in pids - set(self.fds):
            try:
                self.fds[pid] = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
            except OSError:
                self.fds[pid] = None
        self.listed = time.monotonic()

    def _usage(self, proc: psutil.Process) -> tuple[float, int] | None:
        """(CPU seconds, RSS bytes) of one member; None when it is gone."""
        fd = self.fds.get(proc.pid)
        if fd is None:
            try:
                with proc.oneshot():
                    t = proc.cpu_times()
                    return t.user + t.system, proc.memory_info().rss
            except psutil.Error:
                return None
        try:
            raw = os.pread(fd, 2048, 0)
        except OSError:
            return None
        fields = raw[raw.rfind(b")") + 2 :].split()
        if len(fields) < 22 or fields[0] == b"Z":
            return None
        return (int(fields[11]) + int(fields[12])) / self.TICKS, int(fields[21]) * self.PAGE

    def read(self) -> dict[str, float] | None:
        """{"cpu_s": CPU seconds of the trees since opened, "rss": summed RSS bytes, "processes": members read}; None
        once every root is gone."""
        if time.monotonic() - self.listed >= TREE_REFRESH_S:
            self._list()
        rss, seen, now = 0, 0, {}
        for proc in self.members:
            usage = self._usage(proc)
            if usage is None:
                if proc.pid in self.pids:
                    self.gone.add(proc.pid)
                continue
            used, size = usage
            rss += size
            now[proc.pid] = used
            self.cpu_s += used - self.last_cpu.get(proc.pid, used)
            seen += 1
        self.last_cpu = now
        if len(self.gone) == len(self.pids):
            return None
        return {"cpu_s": self.cpu_s, "rss": float(rss), "processes": float(seen)}

    def _close(self, pid: int) -> None:
        fd = self.fds.pop(pid, None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def close(self) -> None:
        for pid in list(self.fds):
            self._close(pid)


def tree_cores(pid: int) -> list[int]:
    """The union of the CPU affinity masks of process `pid` and its descendants (a member whose mask cannot be read is
    left out). Raises psutil.Error when `pid` cannot be read (gone, or another user's process)."""
    root = psutil.Process(pid)
    cores: set[int] = set()
    for proc in [root, *root.children(recursive=True)]:
        try:
            cores.update(proc.cpu_affinity() or [])
        except (psutil.Error, AttributeError):  # gone, or no affinity on this platform
            pass
    return sorted(cores)


def server_row(
    tree: TreeReader | None, last: dict[str, float] | None, now: dict[str, float] | None, dt: float, prefix: str = "server"
) -> dict[str, float | None]:
    """The server columns (`prefix`: "server" for the workload's own, "other_server" for other workloads') between two
    TreeReader readings `dt` seconds apart (all None without a server or a reading)."""
    if tree is None or now is None:
        return {f"{prefix}_cpu_percent": None, f"{prefix}_rss_bytes": None, f"{prefix}_processes": None}
    cpu = 100.0 * max(0.0, now["cpu_s"] - last["cpu_s"]) / dt if last is not None and dt > 0 else 0.0
    return {f"{prefix}_cpu_percent": cpu, f"{prefix}_rss_bytes": now["rss"], f"{prefix}_processes": now["processes"]}


def server_rows(reader: Any, last: dict[str, Any] | None, now: dict[str, Any], dt: float) -> dict[str, float | None]:
    """Both sets of server columns of a reader (`tree`: its own server, `others`: other workloads') between two raw
    readings holding their trees' readings under "tree" and "others"."""
    return {
        **server_row(reader.tree, last["tree"] if last else None, now["tree"], dt),
        **server_row(reader.others, last["others"] if last else None, now["others"], dt, prefix="other_server"),
    }


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
    tree: TreeReader | None = None
    """The workload's own local server's process tree read with each reading (attach_tree), None: none."""
    others: TreeReader | None = None
    """Other workloads' local servers' trees (attach_tree), None: none."""

    def __init__(self, pid: int) -> None:
        self.cores = sorted(os.sched_getaffinity(pid)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
        self.is_self = pid == os.getpid()
        self.stat_bytes = STAT_LINE_BYTES * (max(self.cores, default=0) + 2)  # the total line and cpu0 .. the last core used
        self.fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        self.sys_fd = os.open("/proc/stat", os.O_RDONLY)
        self.self_fd = os.open("/proc/self/stat", os.O_RDONLY)
        self.last = self._raw()

    def attach_tree(self, tree: TreeReader) -> None:
        """Read a local server's tree from now on (in place of one read before in the same role); when it is the
        workload's own (`tree.own`) its cores join the cores read (the next reading starts the intervals again)."""
        held = self.tree if tree.own else self.others
        if held is not None:
            held.close()
        if tree.own:
            self.tree = tree
            self.cores = sorted(set(self.cores) | tree.cores)
            self.stat_bytes = STAT_LINE_BYTES * (max(self.cores, default=0) + 2)
        else:
            self.others = tree
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
            "tree": self.tree.read() if self.tree is not None else None,
            "others": self.others.read() if self.others is not None else None,
        }

    def read(self) -> dict[str, float | None] | None:
        """Readings since the last read (see SAMPLE_SCHEMA); None once the process is gone."""
        now = self._raw()
        if now is None or now["state"] == "Z":
            return None
        last, self.last = self.last, now
        dt = now["t"] - last["t"] if last is not None else 0.0
        if last is None or dt <= 0:  # the first reading (opening could not read one), or two at once
            return {"proc_cpu_percent": 0.0, "proc_rss_bytes": now["rss"], "sys_cpu_percent": 0.0, **server_rows(self, None, now, 0.0)}
        tick_s = 1.0 / self.TICKS
        proc_cores = (now["proc_ticks"] - last["proc_ticks"]) * tick_s / dt
        total = dt * self.TICKS * (os.cpu_count() or 1)
        return {
            **server_rows(self, last, now, dt),
            "proc_cpu_percent": 100.0 * min(proc_cores, len(self.cores)),
            "proc_rss_bytes": now["rss"],
            "sys_cpu_percent": min(100.0, max(0.0, 100.0 * (now["sys_busy"] - last["sys_busy"]) / total)),
            "other_cpu_cores": self.other_cores(last, now),
            "steal_cores": max(0.0, (now["steal"] - last["steal"]) * tick_s / dt),
        }

    def other_cores(self, last: dict[str, Any], now: dict[str, Any]) -> float:
        """Other processes' CPU (in cores) on the process's cores between two raw readings (`last`, then `now`, as
        `self.last` holds them): the cores' busy ticks minus the process's and this profiler's own (not subtracted twice
        when the process is this one), and minus the local server tree's CPU when it is the workload's own
        (TreeReader.own; its cores are among the cores read). 0.0 for readings at the same time."""
        dt = now["t"] - last["t"]
        if dt <= 0:
            return 0.0
        own = 0 if self.is_self else now["self_ticks"] - last["self_ticks"]
        others = (now["cores_busy"] - last["cores_busy"]) - (now["proc_ticks"] - last["proc_ticks"]) - own
        if self.tree is not None and self.tree.own and now.get("tree") and last.get("tree"):
            others -= (now["tree"]["cpu_s"] - last["tree"]["cpu_s"]) * self.TICKS
        return max(0.0, others / (self.TICKS * dt))

    def close(self) -> None:
        for fd in (self.fd, self.sys_fd, self.self_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        for tree in (self.tree, self.others):
            if tree is not None:
                tree.close()


class PsutilReader:
    """The portable fallback (no per-core contention: those columns stay null)."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.proc.cpu_percent(None)
        psutil.cpu_percent(None)
        self.cores = list(range(psutil.cpu_count() or 1))
        self.tree: TreeReader | None = None
        self.others: TreeReader | None = None
        self.tree_last: dict[str, Any] = self._trees()

    def _trees(self) -> dict[str, Any]:
        return {
            "t": time.monotonic(),
            "tree": self.tree.read() if self.tree is not None else None,
            "others": self.others.read() if self.others is not None else None,
        }

    def attach_tree(self, tree: TreeReader) -> None:
        held = self.tree if tree.own else self.others
        if held is not None:
            held.close()
        if tree.own:
            self.tree = tree
        else:
            self.others = tree
        self.tree_last = self._trees()

    def _server(self) -> dict[str, float | None]:
        now = self._trees()
        last, self.tree_last = self.tree_last, now
        return server_rows(self, last, now, now["t"] - last["t"])

    def read(self) -> dict[str, float | None] | None:
        try:
            with self.proc.oneshot():
                if self.proc.status() == psutil.STATUS_ZOMBIE:
                    return None  # exited, not yet reaped: its zeros are not readings
                cpu = min(self.proc.cpu_percent(None), 100.0 * len(self.cores))
                row = {"proc_cpu_percent": cpu, "proc_rss_bytes": self.proc.memory_info().rss, "sys_cpu_percent": psutil.cpu_percent(None)}
            return {**row, **self._server()}
        except psutil.Error:
            return None

    def close(self) -> None:
        for tree in (self.tree, self.others):
            if tree is not None:
                tree.close()


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
        self.gpu_uuid: str | None = None
        """The GPU read, when the supervisor found it as a local server's (run/supervisor.py: server_gpu)."""
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.error: str | None = None
        self.pending: list[tuple[list[int], bool]] = []
        """Local servers to read from the next tick on: (root pids, own) (see the module's docstring)."""
        self.tree: TreeReader | None = None
        self.others: TreeReader | None = None
        self.server_error: str | None = None
        """Why a local server could not be read (gone, another user's process)."""

    def attach_gpu(self, reader: GpuReader) -> None:
        self.gpu = reader

    def attach_server(self, pid: int | Sequence[int], own: bool) -> None:
        """Read process `pid`'s tree too from the next tick (called from another thread): the workload's own server
        (`own`, in place of one read before), or other workloads' servers (a list of pids, read together)."""
        self.pending.append(([pid] if isinstance(pid, int) else list(pid), own))

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
                self._open_server(reader)
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

    def _open_server(self, reader: Any) -> None:
        while self.pending:
            pids, own = self.pending.pop(0)
            try:
                tree = TreeReader(pids, own)
            except psutil.Error as exc:
                self._server_problem(f"cannot read the local server's process {', '.join(map(str, pids))}: {type(exc).__name__} {exc}".strip())
                continue
            for pid, why in tree.skipped.items():
                self._server_problem(f"cannot read the local server's process {pid}: {why}")
            reader.attach_tree(tree)
            if own:
                self.tree = tree
            else:
                self.others = tree

    def _server_problem(self, why: str) -> None:
        self.server_error = f"{self.server_error}; {why}" if self.server_error else why

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
        row["gpu_other_processes"] = self.gpu.other_processes(self.pid, self._own_server_pids()) if self.gpu else None
        return row

    def _own_server_pids(self) -> set[int]:
        """The pids of the workload's own server tree (left out of the GPU's other processes); empty without one."""
        return set(self.tree.last_cpu) if self.tree is not None and self.tree.own else set()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)
        with self.lock:
            self._flush()
