"""`python -m profiler calibrate`: this machine's ceilings, measured, never hard-coded.

- Peak matmul FLOP/s per dtype: square matmuls of two sizes on random data (2*n^3 FLOPs each),
  the device synchronised around every timed trial; the best size's best trial.
- Copy bandwidth: device-to-device copies of a large buffer, counting bytes read plus bytes
  written (2 x size), the convention for "achieved bandwidth".

A ceiling is a maximum, so one lucky or unlucky trial must not set it: each measurement is
repeated until it is stable (`is_stable`: the best of the last STABLE_WINDOW trials within
STABLE_WITHIN of the best overall, and the best before them too: the peak was reached more than
once and stopped rising; and the median of the last STABLE_WINDOW trials within
STABLE_MEDIAN_WITHIN of the best: the trials settled near the peak, so a best reached in a few
lucky trials amid slow ones is not stable), within a time budget. Beside each ceiling the result
keeps its spread (best, median, trials, stable or not) and the method. A phase that still beats a
ceiling is flagged by the roofline (profiler/characterize/roofline.py), never shown above 100%.

Contention (ContentionMeter): other processes' CPU on the cores of the calibrating process's
affinity mask is measured over each measurement (Linux /proc, ProcStatReader; elsewhere "not
measured"). A calibration during which other processes used CONTENDED_CORES of a core or more in
any measurement says so in `contention`, and is not cached: its ceilings would be too low for
every run of the next days. `calibrate` warns and says to measure again on a quiet machine.

Uncontended results are cached per machine under PROFILER_CACHE_DIR (default
~/.cache/ml-workload-profiler/). The cache key is the machine and software (CPU model, GPU name,
torch thread count, torch version) and the profiler's version; a cached file is used only when
its key equals this machine's, its calibration method (CACHE_FORMAT) is the current one, its
contents are valid (`check_contents`: the Calibration model, every ceiling a positive finite
number, both methods, not measured under contention), and it is younger than
PROFILER_CALIBRATION_MAX_AGE_DAYS (default 7): anything else is measured again, and the result
says why. Every run copies the result into its directory with whether it came from the cache and
its age, and the contention, so MFU and MBU in a report are always against the ceilings of the
machine that ran it, and a report says when they were measured under contention.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import UserError
from ..runmodel import CONTENDED_CORES, RECALIBRATE, Calibration, age_text
from .sampler import ProcStatReader

CACHE_DIR_ENV = "PROFILER_CACHE_DIR"
MAX_AGE_ENV = "PROFILER_CALIBRATION_MAX_AGE_DAYS"
DEFAULT_MAX_AGE_DAYS = 7.0
CACHE_FORMAT = 2
"""Bumped when the calibration method changes: a file of another format is measured again."""
STABLE_WINDOW = 5
STABLE_WITHIN = 0.03
STABLE_MEDIAN_WITHIN = 0.10
"""Stable also needs the median of the last STABLE_WINDOW trials within this fraction of the best."""
WARMUP_TRIALS = 2
MAX_TRIALS = 200
MIN_TRIAL_S = 0.005
"""On CUDA a trial repeats the operation until it lasts about this long, so one sync and launch do not count against the peak."""
UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MIN_CONTENTION_S = 0.5
"""The shortest interval whose contention is kept: /proc counts CPU in ticks (10 ms), so a shorter one is too coarse;
its time counts toward the next measurement's interval instead."""


def cache_dir() -> Path:
    """Where calibrations are cached (PROFILER_CACHE_DIR, read at each call so a test or a shell can point it elsewhere)."""
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "ml-workload-profiler")


def max_age_s() -> float:
    """The age (seconds) beyond which a cached calibration is measured again: PROFILER_CALIBRATION_MAX_AGE_DAYS x 86400."""
    text = os.environ.get(MAX_AGE_ENV)
    if text is None or not text.strip():
        return DEFAULT_MAX_AGE_DAYS * 86400
    try:
        days = float(text)
    except ValueError:
        days = math.nan
    if not days >= 0:
        raise UserError(
            f"{MAX_AGE_ENV}={text!r}: must be a number of days >= 0; give e.g. {MAX_AGE_ENV}=7, or unset it for the default of {DEFAULT_MAX_AGE_DAYS:g}"
        )
    return days * 86400


def profiler_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("ml-workload-profiler")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def machine_key(device: str) -> dict[str, Any]:
    """What the ceilings depend on: CPU model, GPU name (or cpu), torch threads and version, and the profiler's version."""
    import torch

    from .env import cpu_model

    key = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__, "device": "cpu", "profiler": profiler_version()}
    if device.startswith("cuda"):
        key["device"] = torch.cuda.get_device_name(torch.device(device))
    return key


def cache_path(key: dict[str, Any]) -> Path:
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / f"calibration-{digest}.json"


# ---------------------------------------------------------------- repeated trials


@dataclass
class Trials:
    """The rates (units/s) of the timed trials of one ceiling, warmup excluded, and whether they settled."""

    rates: list[float]
    stable: bool
    budget_s: float

    @property
    def best(self) -> float:
        return max(self.rates) if self.rates else 0.0

    def spread(self) -> dict[str, Any]:
        """Best and median rate (units/s), the number of trials, and whether the best was stable within the budget."""
        return {"best": self.best, "median": statistics.median(self.rates) if self.rates else None, "trials": len(self.rates), "stable": self.stable}


def is_stable(rates: list[float], window: int = STABLE_WINDOW, within: float = STABLE_WITHIN, median_within: float = STABLE_MEDIAN_WITHIN) -> bool:
    """The peak rate has settled: the best of the last `window` trials is within `within` (a fraction) of the best
    overall, and so is the best of the trials before them (it was reached twice, and the last window did not raise it by
    more than `within`); and the median of the last `window` trials is within `median_within` of the best (the trials
    settled near the peak: a best reached in a few lucky trials amid slow ones is not stable). Needs 2 x window trials."""
    if len(rates) < 2 * window:
        return False
    best = max(rates)
    floor = best * (1 - within)
    last = rates[-window:]
    return max(last) >= floor and max(rates[:-window]) >= floor and statistics.median(last) >= best * (1 - median_within)


def repeat_until_stable(
    trial: Callable[[], float],
    work: float,
    budget_s: float,
    clock: Callable[[], float] = time.monotonic,
    warmup: int = WARMUP_TRIALS,
    max_trials: int = MAX_TRIALS,
) -> Trials:
    """Time `trial` (it runs `work` units, e.g. FLOPs or bytes, and returns the seconds it took) until `is_stable`, or
    until `budget_s` seconds of `clock` have passed, or `max_trials`. The first `warmup` trials are not kept."""
    deadline = clock() + budget_s
    for _ in range(warmup):
        trial()
    rates: list[float] = []
    while len(rates) < max_trials:
        seconds = trial()
        rates.append(work / seconds if seconds > 0 else 0.0)
        if is_stable(rates):
            return Trials(rates, True, budget_s)
        if clock() >= deadline:
            break
    return Trials(rates, False, budget_s)


def _timed(op: Callable[[], Any], sync: Callable[[], None], repeats: int) -> Callable[[], float]:
    """A trial: `repeats` calls of `op` between two device synchronisations; its seconds."""

    def trial() -> float:
        sync()
        t = time.perf_counter()
        for _ in range(repeats):
            op()
        sync()
        return time.perf_counter() - t

    return trial


def _repeats(op: Callable[[], Any], sync: Callable[[], None], cuda: bool) -> int:
    """How many calls make one trial: 1 on the CPU; on CUDA enough for about MIN_TRIAL_S (at most 50)."""
    if not cuda:
        return 1
    once = _timed(op, sync, 1)
    once()  # the first call pays for kernel selection
    return max(1, min(50, math.ceil(MIN_TRIAL_S / max(once(), 1e-9))))


def _repeated(budget_s: float) -> str:
    return (
        f"after {WARMUP_TRIALS} warmup trials, repeated until stable (the best of the last {STABLE_WINDOW} trials and the best before them "
        f"within {STABLE_WITHIN:.0%} of the best overall, and the median of the last {STABLE_WINDOW} within {STABLE_MEDIAN_WITHIN:.0%} of it) "
        f"or for {budget_s:.1f} s"
    )


# ---------------------------------------------------------------- contention


class ContentionMeter:
    """Other processes' CPU (in cores, 1.0 = one core's worth) on the cores of this process's affinity mask, over each
    measurement of a calibration (`mark` after each), from ProcStatReader's counters on this process (Linux /proc).
    This process's own threads count as itself, never as contention. Elsewhere than Linux: not measured (`why_not`)."""

    def __init__(self) -> None:
        self.cores_by_measurement: dict[str, float] = {}
        self.pending: list[str] = []
        self.why_not: str | None = None
        self.reader: ProcStatReader | None = None
        self.last: dict[str, Any] | None = None
        try:
            self.reader = ProcStatReader(os.getpid())
            self.last = self.reader.last
        except (OSError, AttributeError, ValueError, IndexError) as exc:  # no /proc (not Linux), or a /proc it cannot parse
            self.why_not = f"no per-core CPU counters here (Linux /proc: {type(exc).__name__})"
        if self.reader is not None and self.last is None:
            self.why_not = "/proc could not be read"
        self.cores = len(self.reader.cores) if self.reader is not None else None

    def mark(self, name: str) -> None:
        """Other processes' CPU since the previous mark (or the start), kept as the contention during measurement `name`;
        an interval under MIN_CONTENTION_S is not kept alone: it counts toward the next (kept as 'NAME + NEXT')."""
        self.pending.append(name)
        self._read()

    def _read(self) -> None:
        """Keep the contention since the last kept interval, named by the measurements pending since then."""
        if self.reader is None or self.last is None:
            return
        last = self.last
        try:
            reading = self.reader.read()  # advances self.reader.last
        except (OSError, ValueError, IndexError):
            reading = None
        now = self.reader.last
        if reading is None or now is None or now is last:
            self.why_not = self.why_not or "/proc could not be read during calibration"
            return
        dt = now["t"] - last["t"]
        if dt < MIN_CONTENTION_S:
            self.why_not = self.why_not or f"the calibration was too short (under {MIN_CONTENTION_S} s) to measure it"
            return
        self.last = now
        self.cores_by_measurement[" + ".join(self.pending)] = self.reader.other_cores(last, now)  # since the last kept interval
        self.pending = []

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()

    def result(self) -> dict[str, Any]:
        """`other_cpu_cores` (per measurement, or None), `contention` (why the calibration is contended, or None) and
        `contention_check` (what was measured, for people). Takes one reading over the whole if no measurement was marked,
        and one for the measurements whose interval was too short to be kept alone."""
        if not self.cores_by_measurement and not self.pending:
            self.pending.append("calibration")
        if self.pending:
            self._read()
        if not self.cores_by_measurement:
            return {"other_cpu_cores": None, "contention": None, "contention_check": f"contention not measured ({self.why_not or 'no reading'})"}
        worst = max(self.cores_by_measurement.values())
        each = ", ".join(f"{name} {cores:.2f}" for name, cores in self.cores_by_measurement.items())
        where = f"on the calibrating process's {self.cores} core{'s' if self.cores != 1 else ''} during calibration ({each}; contended from {CONTENDED_CORES})"
        used = f"other processes used {'up to ' if len(self.cores_by_measurement) > 1 else ''}{worst:.2f} of a core {where}"
        contended = worst >= CONTENDED_CORES
        return {
            "other_cpu_cores": dict(self.cores_by_measurement),
            "contention": used if contended else None,
            "contention_check": f"CONTENDED: {used}" if contended else f"not contended: {used}",
        }


# ---------------------------------------------------------------- the ceilings


def measure(device: str, dtypes: tuple[str, ...] = ("float32", "bfloat16"), budget_s: float = 30.0, meter: ContentionMeter | None = None) -> dict[str, Any]:
    """Measure peak matmul FLOP/s per dtype and copy bandwidth (bytes/s) on `device`, each repeated until stable
    (repeat_until_stable), within `budget_s` seconds in all (shared equally among the measurements); `meter` is marked
    after each ceiling's measurement (its contention)."""
    import torch

    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sizes = (4096, 8192) if cuda else (1024, 2048)
    each_s = budget_s / (len(dtypes) * len(sizes) + 1)
    result: dict[str, Any] = {"device": device, "matmul_flops_per_s": {}, "matmul_spread": {}, "method": {}}
    for name in dtypes:
        dtype = getattr(torch, name)
        best: tuple[float, int, Trials] | None = None
        for n in sizes:
            a = torch.randn(n, n, device=device).to(dtype)
            b = torch.randn(n, n, device=device).to(dtype)
            op = lambda a=a, b=b: a @ b  # noqa: E731
            repeats = _repeats(op, sync, cuda)
            trials = repeat_until_stable(_timed(op, sync, repeats), repeats * 2 * n**3, each_s)
            if best is None or trials.best > best[0]:
                best = (trials.best, n, trials)
            del a, b
        assert best is not None
        _, n, trials = best
        result["matmul_flops_per_s"][name] = trials.best
        result["matmul_spread"][name] = {**trials.spread(), "n": n}
        if meter is not None:
            meter.mark(f"matmul {name}")
    result["method"]["matmul"] = (
        f"square matmuls on random data, n = {' and '.join(map(str, sizes))} (2*n^3 FLOPs each), {_repeated(each_s)} per size; the best size's best trial"
    )
    size = (2 << 30) if cuda else (256 << 20)
    src = torch.empty(size, dtype=torch.uint8, device=device)
    src.fill_(1)
    dst = torch.empty_like(src)
    op = lambda: dst.copy_(src)  # noqa: E731
    repeats = _repeats(op, sync, cuda)
    trials = repeat_until_stable(_timed(op, sync, repeats), repeats * 2 * size, each_s)
    result["copy_bytes_per_s"] = trials.best
    result["copy_spread"] = trials.spread()
    if meter is not None:
        meter.mark("copy")
    result["method"]["copy"] = f"copies of {size >> 20} MiB counting read + write (2 x size), {_repeated(each_s)}; the best trial"
    return result


def _positive_finite(value: Any) -> bool:
    """A JSON number (not a bool, not a string) above 0 and finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value)) and value > 0
    except OverflowError:  # an integer too large for a float
        return False


def check_contents(data: dict[str, Any]) -> list[str]:
    """What is wrong with a calibration's contents ([] when nothing): it must validate as a Calibration
    (profiler/runmodel.py), have a positive finite matmul ceiling for at least one dtype and a positive finite copy
    bandwidth (and nothing else in their place), a method for both, a machine key, and not have been measured under
    contention."""
    problems = []
    try:
        Calibration.model_validate(data)
    except ValidationError as exc:
        problems += [f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}" for e in exc.errors(include_url=False)[:3]]
    peaks = data.get("matmul_flops_per_s")
    if not isinstance(peaks, dict) or not peaks:
        problems.append("matmul_flops_per_s: no matmul ceiling")
    else:
        problems += [f"matmul_flops_per_s.{name}: {value!r} is not a positive number" for name, value in peaks.items() if not _positive_finite(value)]
    if not _positive_finite(data.get("copy_bytes_per_s")):
        problems.append(f"copy_bytes_per_s: {data.get('copy_bytes_per_s')!r} is not a positive number")
    method = data.get("method")
    missing = [k for k in ("matmul", "copy") if not isinstance(method, dict) or not isinstance(method.get(k), str)]
    if missing:
        problems.append(f"method: no {' or '.join(missing)} method")
    if not isinstance(data.get("key"), dict):
        problems.append("key: no machine key")
    if data.get("contention"):
        problems.append(f"measured under contention ({data['contention']})")
    return problems


def load_cached(path: Path, key: dict[str, Any], now: float, limit_s: float) -> tuple[dict[str, Any] | None, str | None]:
    """(the cached calibration with its `age_s`, None) when it may be used; (None, why not) when it is missing,
    unreadable, of another calibration method (CACHE_FORMAT), of invalid contents (check_contents), for another machine
    or setup (its key differs), or older than `limit_s` seconds. `now`: seconds since the epoch."""
    if not path.exists():
        return None, "no cached calibration for this machine"
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            return None, f"the cached file {path} has invalid contents (a JSON {type(data).__name__}, not an object)"
        measured = datetime.strptime(data["measured_utc"], UTC_FORMAT).replace(tzinfo=timezone.utc).timestamp()
    except (OSError, ValueError, KeyError, TypeError, OverflowError) as exc:
        return None, f"the cached file {path} is unreadable ({type(exc).__name__})"
    if data.get("format") != CACHE_FORMAT:
        return None, f"the cached file {path} was written by another calibration method (format {data.get('format', 1)!r}, now {CACHE_FORMAT})"
    problems = check_contents(data)
    if problems:
        return None, f"the cached file {path} has invalid contents ({'; '.join(problems)})"
    cached_key = data["key"]
    changed = [f"{k} {cached_key.get(k)!r} -> {key.get(k)!r}" for k in sorted(set(key) | set(cached_key)) if cached_key.get(k) != key.get(k)]
    if changed:
        return None, f"the cached file {path} is for another machine or setup ({', '.join(changed)})"
    age_s = now - measured
    if age_s > limit_s or age_s < -60:  # a date in the future: a clock that was wrong then or now
        return None, f"the cached calibration is stale: measured {age_text(age_s)} ago, limit {limit_s / 86400:g} days ({MAX_AGE_ENV})"
    return {**data, "age_s": max(0.0, age_s)}, None


def load_or_measure(device: str, force: bool = False, now: Callable[[], float] = time.time) -> dict[str, Any]:
    """This machine's ceilings: from the cache when it is valid (load_cached), else measured (with the contention
    during the measurement, ContentionMeter) and cached unless contended. The result says which (`from_cache`), its age
    in seconds (`age_s`), the cache file or why it was not written (`cache_error`), why a cached file was not used
    (`cache_note`), and the contention (`contention` when contended, `contention_check` always)."""
    key = machine_key(device)
    path = cache_path(key)
    note = "--force"
    if not force:
        cached, note = load_cached(path, key, now(), max_age_s())
        if cached is not None:
            return {**cached, "cache_file": str(path), "from_cache": True}
    meter = ContentionMeter()
    try:
        measured = measure(device, meter=meter)
        contention = meter.result()
    finally:
        meter.close()
    result = {"format": CACHE_FORMAT, "key": key, "measured_utc": time.strftime(UTC_FORMAT, time.gmtime(now())), **measured, **contention}
    if result["contention"]:
        result["cache_error"] = f"not cached: measured under contention, its ceilings likely too low; measure again on a quiet machine: {RECALIBRATE}"
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=2))
            result["cache_file"] = str(path)
        except OSError as exc:
            result["cache_error"] = f"could not cache at {path}: {exc}"
    return {**result, "from_cache": False, "age_s": 0.0, "cache_note": note}


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
