"""The workload's processes as one group: started apart from the terminal, ended together, never outliving the profiler.

Why: a workload may start processes of its own (subprocess.Popen, fork, a compile worker pool). If they outlive it,
the next workload is measured beside them; if the profiler itself is killed (SIGKILL, the out-of-memory killer), its
child must not run on unsupervised. And a terminal's Ctrl-C goes to the whole foreground process group: a child that
receives it dies wherever it is (in its own imports, or while writing child.json) instead of being stopped in order.

So each child puts itself in a process group of its own as it starts (`enter_own_group`, first thing in
run/child.py: child_entry); a terminal's Ctrl-C then reaches the parent only, which stops the child with SIGTERM
(run/supervisor.py). Until the child has left the parent's group, SIGINT is blocked (`signals_blocked` around the
spawn: the mask is inherited through fork and exec) and a Ctrl-C in that window waits for the parent. A thread of
the child waits on multiprocessing's parent sentinel (a pipe the parent holds open) and kills the whole group when
it closes: the parent has died. After the child ends, the supervisor ends whatever is left in its group
(`end_group`) and names it. A process that leaves the group itself (a new session: `start_new_session=True`,
`setsid`) is not followed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

GROUP_EXIT_GRACE_S = 1.0
"""How long processes left in a finished child's group may take to exit on their own (a pool's workers see their
pipe close) before they are counted as left behind and stopped."""
TERM_GRACE_S = 2.0
"""Between SIGTERM and SIGKILL to processes left behind."""
INTERRUPTS = {signal.SIGINT}


@contextmanager
def signals_blocked() -> Iterator[None]:
    """SIGINT held (not lost) in the calling thread while a child starts: the child inherits the mask, so a
    terminal's Ctrl-C in the window before it leaves the parent's process group cannot reach it. The parent receives
    a held SIGINT when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals go to the main thread: another thread's mask holds nothing back
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def enter_own_group() -> None:
    """In the child, first thing: a process group of its own, SIGINT taken back from the block it started with (one
    already pending is dropped: it was meant for the parent, which stops the child in order), and a thread that kills
    the group when the parent dies."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a pending Ctrl-C, from before the group changed, is discarded
    signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # one sent to this process itself still stops it
    _watch_parent()


def _watch_parent() -> None:
    """A daemon thread blocked (GIL released) on the parent's sentinel: readable once the parent has exited."""
    import multiprocessing
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os.killpg(os.getpgid(0), signal.SIGKILL)  # this process and every one it started that stayed in its group

    threading.Thread(target=watch, name="profiler-parent-watch", daemon=True).start()


def end_group(pgid: int) -> list[str]:
    """End the processes left in process group `pgid` (a child that has exited, and was its group's leader) and
    describe each ("pid 4242: sleep 600"). They get GROUP_EXIT_GRACE_S to exit on their own, then SIGTERM, then
    SIGKILL after TERM_GRACE_S. [] when none was left (or the child never formed its group)."""
    deadline = time.monotonic() + GROUP_EXIT_GRACE_S
    members = group_members(pgid)
    while members and time.monotonic() < deadline:
        time.sleep(0.05)
        members = group_members(pgid)
    if not members:
        return []
    left = [_describe(p) for p in members]
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + TERM_GRACE_S
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)
    return left


def group_members(pgid: int) -> list[psutil.Process]:
    """The live (not zombie) processes of group `pgid`."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (OSError, psutil.Error):
            continue  # gone meanwhile
    return members


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _describe(proc: psutil.Process) -> str:
    try:
        command = " ".join(proc.cmdline()) or proc.name()
    except psutil.Error:
        command = "its command is unreadable"
    return f"pid {proc.pid}: {command[:120]}"
