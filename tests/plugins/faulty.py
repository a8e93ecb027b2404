"""A workload that fails on purpose: raise, run out of memory, get killed or hang, in a chosen phase.

It delivers units like the toy for `ok_iters` iterations (so spans exist before the fault),
then faults in `fail_in`. `disk_full` does not raise: the child's file writes fail from then on.
"""

from __future__ import annotations

import os
import resource
import signal
import time
from typing import Literal

from pydantic import Field

from profiler.plugin import Params as BaseParams
from workloads.toy import busy_wait


class Faulty:
    """Fails on purpose (tests only)."""

    class Params(BaseParams):
        fail_in: Literal["setup", "run_once", "teardown", "nowhere"] = "run_once"
        mode: Literal["raise", "oom", "kill", "kill_parent", "hang", "disk_full", "exit", "orphan", "flood", "memory", "linger"] = "raise"
        ok_iters: int = Field(3, ge=0)
        exit_status: int = Field(0, ge=0, le=255)
        flood_bytes: int = Field(20_000_000, ge=0)
        step_s: float = Field(0.01, ge=0)
        steps: int = Field(5, ge=1)

    def __init__(self, params: Faulty.Params) -> None:
        self.p = params
        self.calls = 0

    def _fault(self) -> None:
        if self.p.mode == "raise":
            raise RuntimeError("planted failure")
        if self.p.mode == "oom":
            import torch

            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 TiB (planted)")
        if self.p.mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.p.mode == "kill_parent":  # the process that supervises this child (a Ray worker, in the executor's tests) dies
            os.kill(os.getppid(), signal.SIGKILL)
            os._exit(1)
        if self.p.mode == "disk_full":  # from now on every write of this process fails (EFBIG), as on a full disk
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
            self.p = self.p.model_copy(update={"fail_in": "nowhere"})  # then carry on as if nothing happened
            return
        if self.p.mode == "memory":  # a real MemoryError: the address space capped just above what is mapped now
            import psutil

            limit = psutil.Process().memory_info().vms + 256 * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
            self.hold = bytearray(4 * 2**30)
        if self.p.mode == "exit":  # ends the process without unwinding: no finally, no child.json
            os._exit(self.p.exit_status)
        if self.p.mode == "linger":  # a non-daemon thread and a multiprocessing child the interpreter would wait for at exit
            import multiprocessing
            import threading

            threading.Thread(target=time.sleep, args=(600,)).start()
            multiprocessing.get_context("fork").Process(target=time.sleep, args=(600,)).start()
            self.p = self.p.model_copy(update={"fail_in": "nowhere"})
            return
        if self.p.mode in ("orphan", "flood"):
            if self.p.mode == "orphan":  # a process of its own, left running; and a forked copy of itself, asleep
                import subprocess

                subprocess.Popen(["sleep", "600"])
                if os.fork() == 0:
                    time.sleep(600)
                    os._exit(0)
            else:
                line = b"x" * 999 + b"\n"
                for _ in range(self.p.flood_bytes // len(line)):
                    os.write(1, line)
                print("the last line of the flood", flush=True)
            self.p = self.p.model_copy(update={"fail_in": "nowhere"})
            return
        while True:  # hang
            time.sleep(0.05)

    def setup(self, ctx) -> None:
        ctx.declare(output_unit="unit")
        if self.p.fail_in == "setup":
            self._fault()

    def run_once(self, mark) -> None:
        self.calls += 1
        for k in range(self.p.steps):
            with mark("step", units=1, position=k):
                busy_wait(self.p.step_s)
        if self.p.fail_in == "run_once" and self.calls > self.p.ok_iters:
            self._fault()

    def teardown(self) -> None:
        if self.p.fail_in == "teardown":
            self._fault()


class NoRunOnce:
    """Missing run_once: must be rejected when resolved."""

    class Params(BaseParams):
        pass

    def setup(self, ctx) -> None:
        pass

    def teardown(self) -> None:
        pass
