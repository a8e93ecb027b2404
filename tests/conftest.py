"""Shared helpers: write suite files, run the CLI in a subprocess or in-process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def write_suite(tmp_path):
    def _write(text: str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return _write


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m profiler ARGS` as a user would; tests/ is importable for test plugins."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "profiler", *map(str, args)], cwd=cwd or ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, no traceback, exactly one line on stderr that contains every needle."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def assert_bad_params(write_suite, workload_type: str, params: str, needle: str) -> None:
    """A suite whose only workload has `params` fails validation with one line containing `needle`."""
    suite = write_suite(f"name: s\nworkloads:\n  - name: w\n    type: {workload_type}\n    params: {params}\n")
    assert_one_line_error(run_cli("validate", suite), needle)


FAST_MEASURE = "measure: {warmup_iters: 1, min_iters: 3, min_seconds: 0, max_seconds: 30, sample_hz: 50}"


def run_suite_text(tmp: Path, suite_text: str, *extra: str, timeout: float = 300, expect_ok: bool = True):
    """Write a suite into `tmp`, run it with the CLI, return (process result, loaded Run)."""
    from profiler import load_run

    (tmp / "suite.yaml").write_text(suite_text)
    result = run_cli("run", tmp / "suite.yaml", "-o", tmp / "runs", *extra, timeout=timeout)
    if expect_ok:
        assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp / "runs").iterdir()
    return result, load_run(run_dir)


def cli_in_process(*argv: str | Path) -> tuple[int, str, str]:
    """`python -m profiler ARGV` in this process (much faster than run_cli): (exit status, stdout, stderr). The
    SIGINT/SIGTERM handlers `run` installs are restored afterwards."""
    import contextlib
    import io
    import signal

    from profiler.cli import main

    out, err = io.StringIO(), io.StringIO()
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as exc:  # argparse's own exit for a malformed command line
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    return code, out.getvalue(), err.getvalue()
