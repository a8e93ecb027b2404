"""The example in docs/plugins.md works exactly as written, loaded by 'module:Class'."""

from __future__ import annotations

import re

from profiler.rundir import load_run
from tests.conftest import ROOT, run_cli


def code_blocks(lang: str) -> list[str]:
    text = (ROOT / "docs" / "plugins.md").read_text()
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_documented_plugin_runs_from_a_temporary_directory(tmp_path):
    python, = code_blocks("python")
    suite, = code_blocks("yaml")
    (tmp_path / "matmul_chain.py").write_text(python)
    (tmp_path / "suite.yaml").write_text(suite)
    assert run_cli("validate", tmp_path / "suite.yaml", cwd=tmp_path).returncode == 0
    result = run_cli("run", tmp_path / "suite.yaml", "-o", tmp_path / "runs", "--no-report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir, = (tmp_path / "runs").iterdir()
    run = load_run(run_dir)
    chain = run.workloads["chain"]
    assert chain.status == "ok"
    layers = chain.spans.query("phase == 'layer' and not warmup")
    assert set(layers["layer"]) == {0, 1, 2}
    assert chain.summary["metrics"]["ttft_s"]["count"] >= 3
    assert chain.summary["facts"]["param_count"] == 3 * 128 * 128
