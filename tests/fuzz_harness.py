"""Run one generated hostile input through the CLI's entry point and judge it against its expected verdict.

Shared by tests/unit/test_fuzz_inputs.py (about 1,000 cases in CI) and benchmarks/fuzz.py (10,000+ cases, counts
printed). A case is files to write, the argv to run, and what must happen: `accept` (exit 0) or `refuse` (exit 2 with
exactly one `error: ` line on stderr containing every needle), plus what must never be printed (a secret of the
input, a raw control character, a forged line) and whether anything may be written. The run is in-process
(`profiler.cli.main`), with an interval timer as the hang detector.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from profiler.cli import main

HANG_S = 20.0
"""A case that has not returned after this long is a hang (generous: a busy 2-core machine, a cold import)."""

RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
"""Control characters (the newline and tab aside) and bidi overrides: what a user's text must never put on a terminal."""

OUTCOMES = ("as_expected", "traceback", "wrong_exit", "hang", "leak")


class Hang(BaseException):
    """Raised by the interval timer inside the case (a BaseException, so no `except Exception` swallows it)."""


@dataclass
class Case:
    """One generated input and its expected verdict."""

    kind: str  # the class of input, for the counts: 'number', 'yaml', 'trace', 'output', 'rundir', 'text'
    argv: list[str]  # relative paths are under the case's folder
    expect: str  # 'accept' | 'refuse'
    files: dict[str, bytes | str] = field(default_factory=dict)  # relative path -> content
    needles: tuple[str, ...] = ()  # each must be in the one error line (refuse) or in the output (accept)
    secret: str | None = None  # must appear nowhere in the output
    setup: Callable[[Path], None] | None = None  # makes what files cannot (FIFOs, symlinks, run directories)
    writes_nothing: bool = True  # a refused case writes nothing under its folder except the files it was given
    check: Callable[[Path], str] | None = None  # after the run: '' when what the case made is intact, else what happened
    label: str = ""  # what was generated, for a failure's message

    def describe(self) -> str:
        command = " ".join(a if len(a) <= 60 else f"{a[:40]}...({len(a)} chars)" for a in self.argv)
        return f"{self.kind}: {self.label[:200]} -> expected {self.expect} ({command})"


@dataclass
class Outcome:
    """What happened, and whether it is what the case expected."""

    verdict: str  # one of OUTCOMES
    code: int | None
    stdout: str
    stderr: str
    why: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict == "as_expected"


def run_case(case: Case, folder: Path) -> Outcome:
    """Write the case under `folder` (emptied first), run it in-process from that folder, judge the result."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for rel, content in case.files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    if case.setup is not None:
        case.setup(folder)
    before = _listing(folder)
    code, out, err, crash = _call(case.argv, folder)
    if crash == "hang":
        return Outcome("hang", None, out, err, f"no answer within {HANG_S:.0f} s")
    if crash is not None or "Traceback (most recent call last)" in out + err:
        return Outcome("traceback", code, out, err, crash or "a traceback was printed")
    leak = _leak(case, out + err)
    if leak:
        return Outcome("leak", code, out, err, leak)
    why = _judge(case, code, out, err)
    if not why and case.expect == "refuse" and case.writes_nothing and _listing(folder) != before:
        why = f"a refused input wrote {sorted(_listing(folder) - before)[:3]}"
    if not why and case.check is not None:
        why = case.check(folder)
    return Outcome("wrong_exit" if why else "as_expected", code, out, err, why)


def _call(argv: list[str], folder: Path) -> tuple[int | None, str, str, str | None]:
    out, err = io.StringIO(), io.StringIO()
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGALRM)
    cwd = os.getcwd()

    def on_alarm(*_: object) -> None:
        raise Hang()

    code: int | None = None
    crash = None
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        os.chdir(folder)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except Hang:
        crash = "hang"
    except SystemExit as exc:  # argparse's own exit (a usage error) is an answer, not a crash
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # noqa: BLE001 - any escaping exception is the finding
        crash = f"{type(exc).__name__}: {str(exc)[:200]} at {traceback.extract_tb(exc.__traceback__)[-1]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        os.chdir(cwd)
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
        signal.signal(signal.SIGALRM, handlers[2])
    return code, out.getvalue(), err.getvalue(), crash


def _leak(case: Case, text: str) -> str:
    if case.secret and case.secret in text:
        return f"the input's secret {case.secret!r} was printed"
    bad = RAW_CONTROL.search(text)
    if bad:
        return f"a raw control character {bad.group()!r} was printed"
    return ""


def _judge(case: Case, code: int | None, out: str, err: str) -> str:
    """'' when the result is the expected verdict, else why not."""
    lines = [line for line in err.splitlines() if line.strip()]
    if case.expect == "accept":
        if code != 0:
            return f"exit {code}, expected 0: {err.strip()[:300]}"
        missing = [n for n in case.needles if n not in out + err]
        return f"the output lacks {missing}: {err.strip()[:300]}" if missing else ""
    if code != 2:
        return f"exit {code}, expected 2 (refused): {(err or out).strip()[:300]}"
    if len(lines) != 1 or not lines[0].startswith("error: "):
        return f"expected one 'error: ' line, got {len(lines)}: {err.strip()[:300]}"
    missing = [n for n in case.needles if n not in lines[0]]
    return f"the error line lacks {missing}: {lines[0][:300]}" if missing else ""


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}
