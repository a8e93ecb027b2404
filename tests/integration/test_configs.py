"""Every shipped suite in configs/ validates, and the VLA suite (sync, async and discrete loops
with work counting and tracing) runs end to end, shortened."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, run_cli

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_shipped_config_validates(config):
    result = run_cli("validate", config)
    assert result.returncode == 0, result.stderr


def test_vla_suite_runs_every_mode_with_work_and_trace(tmp_path):
    from profiler import load_run

    shorter = ["measure.warmup_iters=0", "measure.min_seconds=0", "measure.min_iters=1", *(f"workloads.{i}.params.ticks=24" for i in range(3))]
    result = run_cli("run", ROOT / "configs" / "vla.yaml", "-o", tmp_path, "--device", "cpu", *[a for s in shorter for a in ("--set", s)])
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "USDT" not in result.stderr  # kineto's lines are silenced
    (run_dir,) = tmp_path.iterdir()
    run = load_run(run_dir)
    s = {n: w.summary for n, w in run.workloads.items()}
    assert {n: v.status for n, v in s.items()} == {"vla-sync": "ok", "vla-async": "ok", "vla-discrete": "ok"}
    for summary in s.values():
        assert summary.problems == []
    sync, asyn = s["vla-sync"].work, s["vla-async"].work
    assert asyn.phases["infer"].flops == sync.phases["infer"].flops > 0  # the worker thread's calls are not zeros
    assert "tick" in asyn.partial_phases and not sync.partial_phases
