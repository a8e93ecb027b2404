"""Regenerate tests/data/golden-run from golden_suite.yaml (CPU, about a minute).

Report tests read this directory instead of running models. Traces are dropped (the report
does not read them) to keep the repository small.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env_path = f"{ROOT}"
        done = subprocess.run(
            [sys.executable, "-m", "profiler", "run", str(HERE / "golden_suite.yaml"), "-o", tmp, "--no-report"],
            cwd=ROOT,
            env={**__import__("os").environ, "PYTHONPATH": env_path},
        )
        if done.returncode != 1:  # 1: the suite's `broken` workload fails on purpose
            raise SystemExit(f"the golden suite exited {done.returncode}, expected 1 (its broken workload fails)")
        (run_dir,) = Path(tmp).iterdir()
        for trace in run_dir.rglob("trace.json.gz"):
            trace.unlink()
        target = HERE / "golden-run"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(run_dir, target)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
