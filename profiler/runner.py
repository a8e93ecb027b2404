"""The parent: one spawned child per workload, sampled from outside, results kept on disk.

For each workload the runner spawns a fresh interpreter (`profiler.child`), starts the sampler
on its pid, and watches its progress messages. A workload that raises, runs out of memory, is
killed, or makes no progress for longer than its limit (setup_timeout_s in setup, max_seconds +
hang_grace_s afterwards) is recorded as failed with its phase and reason; the suite goes on.
After each child ends, its span and sample parts are merged and summary.json is written.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import socket
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import yaml

from .analysis import summarize
from .child import CHILD_JSON, ERROR_JSON, OPMIX_JSON, WORK, ChildSpec, child_entry
from .energy import energy_summary, measure_idle_power
from .env import collect_env
from .errors import UserError
from .nvml import GPU_COLUMNS, Nvml
from .resolve import ResolvedSuite, ResolvedWorkload
from .roofline import BOUND_RULE, work_by_phase
from .rundir import CALIBRATION_JSON, CONFIG_YAML, ENV_JSON, RUN_JSON, SUMMARY_JSON, SWEEPS_JSON, read_measured
from .sampler import SAMPLE_SCHEMA, ProcessSampler
from .store import (
    SAMPLES,
    SPANS,
    PartWriter,
    atomic_write_json,
    atomic_write_text,
    merge_parts,
    new_run_dir,
    read_frame,
    read_json,
)


class Listener(Protocol):
    """What the runner tells the terminal UI (the CLI's rich progress implements it)."""

    def workload_started(self, name: str) -> None: ...
    def phase(self, name: str, phase: str, total: int | None) -> None: ...
    def iteration(self, name: str, done: int, warmup: bool) -> None: ...
    def workload_finished(self, name: str, summary: dict[str, Any]) -> None: ...


class SilentListener:
    def workload_started(self, name: str) -> None: ...
    def phase(self, name: str, phase: str, total: int | None) -> None: ...
    def iteration(self, name: str, done: int, warmup: bool) -> None: ...
    def workload_finished(self, name: str, summary: dict[str, Any]) -> None: ...


def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda[:N]' must exist."""
    if requested == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if requested == "auto":
        return "cuda" if available else "cpu"
    if not available:
        build = f"torch {torch.__version__}" + (" (a CPU-only build)" if torch.version.cuda is None else "")
        raise UserError(f"--device {requested}: CUDA is not available on this machine ({build}); use --device cpu or auto")
    index = int(requested.split(":")[1]) if ":" in requested else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise UserError(f"--device {requested}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return requested


class SuiteRunner:
    def __init__(self, resolved: ResolvedSuite, out_root: str | Path, device: str, argv: list[str], listener: Listener | None = None) -> None:
        self.resolved = resolved
        self.suite = resolved.suite
        self.out_root = Path(out_root)
        self.device = device
        self.argv = argv
        self.listener = listener or SilentListener()
        self.run_dir: Path | None = None
        self.entries: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}

    def prepare(self) -> Path:
        """Create the run directory and write the config and environment. Errors are UserErrors."""
        try:
            self.run_dir = new_run_dir(self.out_root, self.suite.name)
            probe = self.run_dir / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"-o {self.out_root}: cannot create the run directory ({exc.strerror or exc}); choose a writable directory with -o") from None
        self.nvml = Nvml()
        resolved = self.resolved.resolved_dict()
        resolved["device_resolved"] = self.device
        atomic_write_text(self.run_dir / CONFIG_YAML, f"# resolved from {self.resolved.source.path}\n" + yaml.safe_dump(resolved, sort_keys=False))
        atomic_write_json(self.run_dir / ENV_JSON, collect_env(self.nvml, self.argv))
        self.calibration = self._calibrate() if self.suite.measure.count_work else None
        self.idle = self._idle_power()
        used: set[str] = set()
        for w in self.resolved.workloads:
            directory, n = w.directory, 1
            while directory in used:
                n += 1
                directory = f"{w.directory}-{n}"
            used.add(directory)
            entry = {"name": w.entry.name, "dir": directory, "type": w.entry.type, "status": "pending"}
            if w.sweep_group:
                entry.update(sweep_group=w.sweep_group, sweep_point=w.sweep_point)
            self.entries.append(entry)
        self.info = {
            "suite": self.suite.name,
            "baseline": self.suite.baseline_name,
            "device": self.device,
            "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "gpu_idle_power": self.idle,
            "status": "running",
            "profiler_pid": os.getpid(),  # a report of a run left `running` can tell whether this process still exists
            "host": socket.gethostname(),
            "workloads": self.entries,
        }
        atomic_write_json(self.run_dir / RUN_JSON, self.info)
        return self.run_dir

    def _idle_power(self) -> dict[str, Any]:
        """GPU idle power before any workload runs (for energy above idle); unavailable on CPU."""
        if not self.device.startswith("cuda"):
            return {"unavailable": "the run is on the CPU"}
        if not self.nvml.ok:
            return {"unavailable": self.nvml.reason}
        try:
            index = int(self.device.split(":")[1]) if ":" in self.device else 0
            return measure_idle_power(self.nvml.open_cuda_index(index))
        except Exception as exc:
            return {"unavailable": f"NVML energy counter: {exc}"}

    def _write_sweeps(self) -> None:
        """Fits across the points of each sweep (batching gain, latency growth) -> sweeps.json."""
        from .scaling import batch_fits

        groups: dict[str, list[dict[str, Any]]] = {}
        for w, entry in zip(self.resolved.workloads, self.entries, strict=True):
            if w.sweep_group and entry["status"] == "ok":
                spans, _, _ = read_measured(self.run_dir / entry["dir"] / f"{SPANS}.parquet")
                groups.setdefault(w.sweep_group, []).append(
                    {"name": w.entry.name, "params": w.params.model_dump(mode="json"), "point": w.sweep_point, "spans": spans})
        if groups:
            atomic_write_json(self.run_dir / SWEEPS_JSON, {g: {"batch": batch_fits(points, self.suite.seed),
                                                                "points": [p["name"] for p in points]} for g, points in groups.items()})

    def _calibrate(self) -> dict[str, Any] | None:
        """The machine's ceilings (cached per machine), measured in a subprocess so no CUDA
        context or allocation lingers in the parent; stored in the run as calibration.json."""
        cmd = [sys.executable, "-m", "profiler", "calibrate", "--device", self.device, "--json"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            result = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
            reason = None if result else (done.stderr.strip().splitlines() or ["no output"])[-1]
        except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
            result, reason = None, f"{type(exc).__name__}: {exc}"
        atomic_write_json(self.run_dir / CALIBRATION_JSON, result or {"unavailable": f"calibration failed: {reason}"})
        return result

    def run(self) -> Path:
        assert self.run_dir is not None, "call prepare() first"
        status = "complete"
        try:
            for w, entry in zip(self.resolved.workloads, self.entries, strict=True):
                entry["status"] = "running"
                try:
                    summary = self.run_workload(w, self.run_dir / entry["dir"])
                except KeyboardInterrupt:
                    entry["status"] = "interrupted"
                    raise
                entry["status"] = summary["status"]
                atomic_write_json(self.run_dir / RUN_JSON, self.info)
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except Exception as exc:  # a profiler bug: the run is marked failed, with why, and the caller still reports
            status = "failed"
            self.info["error"] = {"reason": f"the profiler itself failed: {type(exc).__name__}: {str(exc)[:300]}", "traceback": traceback.format_exc()}
            for entry in self.entries:
                if entry["status"] == "running":
                    entry["status"] = "not finished"
            raise
        finally:
            self._write_sweeps()
            self.info["status"] = status
            self.info["finished_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            atomic_write_json(self.run_dir / RUN_JSON, self.info)
            self.nvml.shutdown()
        return self.run_dir

    # ---------------------------------------------------------------- one workload

    def run_workload(self, w: ResolvedWorkload, workdir: Path) -> dict[str, Any]:
        workdir.mkdir(parents=True, exist_ok=True)  # parents: sweep points live under their group
        measure = self.suite.measure
        spec = ChildSpec(
            name=w.entry.name,
            type=w.entry.type,
            params=w.params.model_dump(mode="json"),
            plugin_paths=self.resolved.plugin_paths,
            device=self.device,
            seed=self.suite.seed,
            measure=measure.model_dump(),
            workdir=str(workdir),
        )
        self.listener.workload_started(w.entry.name)
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=child_entry, args=(spec, queue), name=f"profiler-{workdir.name}")
        started = time.monotonic()
        proc.start()
        sampler = ProcessSampler(proc.pid, measure.sample_hz, PartWriter(workdir, SAMPLES, schema=SAMPLE_SCHEMA))
        sampler.start()
        gpu_unavailable = self._gpu_unavailable_default()
        phase, killed_reason = "import", None
        done: dict[str, Any] = {}  # the child's last message: its error and info, even if it could not write them
        last_progress = time.monotonic()
        interrupted = False
        try:
            while True:
                try:
                    msg = queue.get(timeout=0.1)
                except queue_mod.Empty:
                    msg = None
                except (EOFError, OSError):
                    msg = None
                if msg is not None:
                    last_progress = time.monotonic()
                    phase = self._handle(msg, w.entry.name, phase, sampler, gpu_unavailable)
                    if msg.get("kind") == "done":
                        done = msg
                    continue
                if not proc.is_alive():
                    break
                limit = measure.setup_timeout_s if phase in ("import", "setup") else measure.max_seconds + measure.hang_grace_s
                if time.monotonic() - last_progress > limit:
                    killed_reason = f"hung: no progress for {limit:.0f} s in phase '{phase}' (limit: {'setup_timeout_s' if phase in ('import', 'setup') else 'max_seconds + hang_grace_s'}); the child was killed"
                    _stop(proc)
                    break
        except KeyboardInterrupt:
            interrupted = True
            killed_reason = f"interrupted by the user during phase '{phase}'"
            _stop(proc)
        finally:
            proc.join(timeout=10)
            sampler.stop()
        summary = self._finish(w, workdir, proc.exitcode, phase, killed_reason, gpu_unavailable, time.monotonic() - started, interrupted, done,
                               sampler.error)
        self.listener.workload_finished(w.entry.name, summary)
        if interrupted:
            raise KeyboardInterrupt
        return summary

    def _handle(self, msg: dict[str, Any], name: str, phase: str, sampler: ProcessSampler, gpu_unavailable: dict[str, str]) -> str:
        kind = msg.get("kind")
        if kind == "phase":
            phase = msg["phase"]
            self.listener.phase(name, phase, msg.get("total"))
        elif kind == "iter":
            self.listener.iteration(name, msg["done"], msg["warmup"])
        elif kind == "gpu":
            gpu_unavailable.clear()
            if self.nvml.ok:
                try:
                    reader = self.nvml.open(msg["uuid"])
                    sampler.attach_gpu(reader)
                    gpu_unavailable.update(reader.unavailable)
                except Exception as exc:
                    gpu_unavailable.update(dict.fromkeys(GPU_COLUMNS, f"NVML could not open GPU {msg['uuid']}: {exc}"))
            else:
                gpu_unavailable.update(dict.fromkeys(GPU_COLUMNS, self.nvml.reason))
        elif kind == "done":
            phase = "done"
        return phase

    def _gpu_unavailable_default(self) -> dict[str, str]:
        if self.device == "cpu":
            why = "workload ran on the CPU: no GPU to sample" + (f"; {self.nvml.reason}" if not self.nvml.ok else "")
        else:
            why = self.nvml.reason or "the workload never reported its GPU (it failed before choosing one)"
        return dict.fromkeys(GPU_COLUMNS, why)

    def _finish(self, w: ResolvedWorkload, workdir: Path, exitcode: int | None, phase: str, killed_reason: str | None,
                gpu_unavailable: dict[str, str], wall_s: float, interrupted: bool, done: dict[str, Any],
                sampler_error: str | None) -> dict[str, Any]:
        problems: list[str] = []
        for name in (SPANS, SAMPLES):
            try:
                merge_parts(workdir, name)
            except Exception as exc:
                problems.append(f"{name}: could not merge part files ({type(exc).__name__}: {exc}); the parts are kept")
        error = read_json(workdir / ERROR_JSON)
        if error is None and done.get("error"):  # the child could not write it (a full disk): it came through the queue
            error = done["error"]
            atomic_write_json(workdir / ERROR_JSON, error)
        if error is None and (killed_reason or exitcode != 0):
            error = {"phase": phase, "reason": killed_reason or _exit_reason(exitcode), "type": "ChildFailure", "traceback": None}
            atomic_write_json(workdir / ERROR_JSON, error)
        elif error is not None and killed_reason:
            error["reason"] = f"{killed_reason}; {error['reason']}"
            atomic_write_json(workdir / ERROR_JSON, error)
        child = read_json(workdir / CHILD_JSON) or done.get("info") or {"device": self.device}
        # only the columns the summary reads, and only measured spans: one table in memory, not two
        spans, _, span_count = read_measured(workdir / f"{SPANS}.parquet", problems)
        samples = _read_frame(workdir / f"{SAMPLES}.parquet")
        summary: dict[str, Any] = {
            "name": w.entry.name,
            "type": w.entry.type,
            "plugin": w.plugin.source,
            "status": "interrupted" if interrupted else ("failed" if error else "ok"),
            "error": {k: error[k] for k in ("phase", "reason")} if error else None,
            "device": self.device,
            "seed": self.suite.seed,
            "params": w.params.model_dump(mode="json"),
            "facts": child.get("facts", {}),
            "setup_s": child.get("setup_s"),
            "loop": child.get("loop"),
            "wall_s": wall_s,
            "sweep": {"group": w.sweep_group, "point": w.sweep_point} if w.sweep_group else None,
            "span_count": span_count,
            "sample_count": int(len(samples)),
        }
        # the analysis below must never cost the run: a bug in it becomes a stated problem, not a crash
        derived = _guarded("the summary", problems, summarize, spans, samples, {**child, "device": self.device}, self.suite.seed) or {
            "metrics": {}, "phases": {}, "memory": {}, "unavailable": {}, "warnings": [], "scaling": {}}
        derived["unavailable"].update(gpu_unavailable)
        if samples.shape[0]:
            sample_hz = _achieved_rate(samples)
            if sample_hz is not None:
                summary["sample_hz_achieved"] = sample_hz
        if sampler_error:
            problems.append(sampler_error)
        if child.get("flush_error"):
            problems.append(f"spans could not be written ({child['flush_error']}): the batch held in memory at the failure "
                            "(at most about one second of spans) is lost; every earlier batch is on disk")
        derived["warnings"] = list(child.get("warnings", [])) + derived["warnings"]
        for key, compute in (("work", lambda: self._work(workdir, derived["phases"], summary["facts"].get("dtype"), child)),
                             ("energy", lambda: energy_summary(spans, samples, self.idle.get("idle_power_w"))),
                             ("operator_mix", lambda: self._opmix(workdir, derived, child))):
            derived[key], why = _guarded(f"the {key.replace('_', ' ')} analysis", problems, compute) or ({}, "its analysis failed (see problems)")
            if why:
                derived["unavailable"][key] = why
        summary.update(derived)
        summary["problems"] = problems
        atomic_write_json(workdir / SUMMARY_JSON, summary)
        return summary

    def _work(self, workdir: Path, phases: dict[str, Any], dtype: str | None, child: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        if not self.suite.measure.count_work:
            return {}, "measure.count_work is off"
        work = _read_frame(workdir / f"{WORK}.parquet")
        if work.empty:
            return {}, child.get("work_error") or "the workload ended before the counting pass"
        table = work_by_phase(work, phases, self.calibration, dtype)
        why = None if self.calibration else "MFU, MBU and bound class need the machine's ceilings; calibration failed (see calibration.json)"
        result: dict[str, Any] = {"phases": table, "bound_rule": BOUND_RULE}
        if child.get("work_uncounted_phases"):
            result["uncounted_phases"] = {p: "its spans ran only on other threads; the counters (torch dispatch modes) see one thread"
                                          for p in child["work_uncounted_phases"]}
        if child.get("work_partial_phases"):
            result["partial_phases"] = {p: "other threads ran spans meanwhile (e.g. async inference); counted here: this thread's work only"
                                        for p in child["work_partial_phases"]}
        return result, why

    def _opmix(self, workdir: Path, derived: dict[str, Any], child: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        if not self.suite.measure.trace_ops:
            return {}, "measure.trace_ops is off"
        mix = read_json(workdir / OPMIX_JSON)
        if not mix:
            return {}, child.get("opmix_error") or "the workload ended before the traced pass"
        e2e = (derived["metrics"].get("e2e_s") or {}).get("median")
        if e2e:
            mix["traced_over_timed_e2e"] = mix["traced_iteration_s"] / e2e  # profiler-on / profiler-off
        return mix, None


def _stop(proc: Any) -> None:
    """SIGTERM, then SIGKILL if the child does not go within 5 s."""
    if proc.is_alive():
        proc.terminate()
        proc.join(timeout=5)
    if proc.is_alive():
        proc.kill()
        proc.join(timeout=5)


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "the child did not exit"
    if exitcode < 0:
        sig = signal.Signals(-exitcode).name
        hint = " (possibly the kernel's out-of-memory killer)" if sig == "SIGKILL" else ""
        return f"killed by {sig}{hint}"
    return f"the child exited with status {exitcode} without recording an error"


def _guarded(what: str, problems: list[str], fn: Any, *args: Any) -> Any:
    """fn(*args), or None with the failure added to the workload's problems."""
    try:
        return fn(*args)
    except Exception as exc:
        problems.append(f"{what} failed ({type(exc).__name__}: {str(exc)[:200]}): a profiler bug; the measurements are on disk")
        return None


def _read_frame(path: Path, columns: Any = None) -> pd.DataFrame:
    try:
        return read_frame(path, columns)
    except Exception:
        return pd.DataFrame()


def _achieved_rate(samples: pd.DataFrame) -> float | None:
    t = samples["t_ns"].to_numpy()
    if len(t) < 2 or t[-1] == t[0]:
        return None
    return float((len(t) - 1) / ((t[-1] - t[0]) / 1e9))


__all__ = ["SuiteRunner", "resolve_device"]
