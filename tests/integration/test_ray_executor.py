"""The Ray executor on a local 2-CPU Ray cluster (started once for this module): the same
suite gives the same run layout and summary structure as the local executor, each point's node and environment
are recorded, points run pinned to cores of their own, a killed worker is recorded like a failed child while the
rest of the sweep completes, and bad executor input is one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, assert_one_line_error, run_cli, run_suite_text

pytest.importorskip("ray")

QUIET = "measure: {warmup_iters: 1, min_iters: 3, min_seconds: 0, max_seconds: 30, sample_hz: 50, count_work: false, trace_ops: false}"
SWEEP = f"""\
name: toy-sweep
device: cpu
{QUIET}
workloads:
  - name: toy
    type: toy
    params: {{first_s: 0.002, step_s: 0.002}}
    sweep: {{steps: [4, 8]}}
"""


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray cluster started in this process (ray.init), its GCS address for `--executor ray:ADDRESS`; only this
    cluster is stopped afterwards (`ray stop` would stop every cluster on the machine)."""
    import ray

    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "RAY_USAGE_STATS_ENABLED")}
    os.environ.update(PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0")  # the workers import tests.plugins
    try:
        context = ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    yield context.address_info["gcs_address"]
    ray.shutdown()


def _tree(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


def _keys(obj, prefix="") -> set[str]:
    """Every key path of a JSON object (list items merged), values ignored."""
    if isinstance(obj, dict):
        return {f"{prefix}.{k}" for k in obj} | {p for k, v in obj.items() for p in _keys(v, f"{prefix}.{k}")}
    if isinstance(obj, list):
        return {p for v in obj for p in _keys(v, f"{prefix}[]")}
    return set()


def test_same_suite_gives_the_same_layout_and_statistics_structure_locally_and_on_ray(tmp_path, cluster):
    (tmp_path / "local").mkdir()
    (tmp_path / "ray").mkdir()
    _, local = run_suite_text(tmp_path / "local", SWEEP)
    result, ray = run_suite_text(tmp_path / "ray", SWEEP, "--executor", f"ray:{cluster}")
    assert f"executor: ray: cluster at {cluster}" in result.stdout
    assert sorted(ray.workloads) == sorted(local.workloads) == ["toy[steps=4]", "toy[steps=8]"]
    nodes = {f"{w.path.relative_to(ray.path)}/node.json" for w in ray.workloads.values()}
    assert _tree(ray.path) == _tree(local.path) | nodes  # a cluster node's ceilings and idle power are its own
    for name, w in ray.workloads.items():
        mine, theirs = w.summary.model_dump(mode="json"), local.workloads[name].summary.model_dump(mode="json")
        structure = {k for k in _keys(mine) if not k.startswith((".placement", ".contention"))}
        assert structure == {k for k in _keys(theirs) if not k.startswith((".placement", ".contention"))}
        assert w.status == "ok" and len(w.spans.query("phase == 'step' and not warmup")) == 3 * w.summary.params["steps"]
        assert w.summary.metrics.e2e_s.median > 0
    run = json.loads((ray.path / "run.json").read_text())
    assert run["cluster"]["resources"]["CPU"] == 2.0 and run["executor"].startswith("ray")


def test_each_point_records_its_node_environment_and_pinned_cores(tmp_path, cluster):
    _, run = run_suite_text(tmp_path, SWEEP.replace("name: toy-sweep", "name: placed"), "--executor", f"ray:{cluster}")
    cores = []
    for w in run.workloads.values():
        p = w.summary.placement
        assert p.executor == "ray" and p.host == socket.gethostname() and len(p.node_id) > 20 and p.worker_pid != os.getpid()
        assert p.cpus == 1.0 and len(p.cores) == 1  # the toy declares one core: the child ran pinned to one
        assert p.env["packages"]["ml-workload-profiler"] and p.env["python"] == sys.version.split()[0]
        assert "never shared" in p.policy
        assert json.loads((w.path / "child.json").read_text())["cpu_affinity"] == p.cores  # the child ran on them
        cores.append(tuple(p.cores))
    assert (run.path / "node.json").exists() is False  # per point, not per run


def test_a_killed_worker_is_recorded_and_the_sweep_completes(tmp_path, cluster):
    suite = f"""\
name: faults
device: cpu
{QUIET.replace("min_iters: 3", "min_iters: 60")}
workloads:
  - name: before
    type: toy
    params: {{steps: 4}}
  - name: dies
    type: tests.plugins.faulty:Faulty
    params: {{mode: kill_parent, ok_iters: 50, step_s: 0.01}}
  - name: after
    type: toy
    params: {{steps: 4}}
"""
    result, run = run_suite_text(tmp_path, suite, "--executor", f"ray:{cluster}", expect_ok=False)
    assert result.returncode == 1, result.stderr
    assert run.workloads["before"].status == "ok" and run.workloads["after"].status == "ok"
    dead = run.workloads["dies"]
    assert dead.status == "failed"
    assert "Ray worker running it died" in dead.summary.error.reason and dead.summary.error.phase == "measure"
    assert "failed: dies: failed in measure" in result.stderr
    # parts shipped while it ran (every second) are kept: 50 iterations of 50 ms ran before the kill
    assert len(dead.spans.query("phase == 'step'")) >= 5
    assert json.loads((run.path / "run.json").read_text())["status"] == "complete"


def test_executor_input_errors_are_one_line(tmp_path, write_suite):
    suite = write_suite(f"name: s\ndevice: cpu\n{QUIET}\nexecutor: slurm\nworkloads:\n  - name: t\n    type: toy\n")
    assert_one_line_error(run_cli("validate", suite), "executor 'slurm' is not local, ray or ray:ADDRESS")
    suite = write_suite(f"name: s\ndevice: cpu\n{QUIET}\nexecutor: {{kind: local, gpu_share: 2}}\nworkloads:\n  - name: t\n    type: toy\n")
    assert_one_line_error(run_cli("validate", suite), "apply to the ray executor")
    ok = write_suite(f"name: s\ndevice: cpu\n{QUIET}\nworkloads:\n  - name: t\n    type: toy\n")
    assert_one_line_error(run_cli("run", ok, "--executor", "kubernetes", "-o", tmp_path), "'kubernetes' is not local, ray or ray:ADDRESS")


def test_a_gpu_index_is_refused_on_a_cluster(tmp_path, write_suite, cluster):
    suite = write_suite(f"name: s\n{QUIET}\nworkloads:\n  - name: t\n    type: toy\n")
    assert_one_line_error(run_cli("run", suite, "--executor", f"ray:{cluster}", "--device", "cuda:1", "-o", tmp_path), "Ray assigns each point its GPU")
    assert_one_line_error(run_cli("run", suite, "--executor", f"ray:{cluster}", "--device", "cuda", "-o", tmp_path), "no node of the Ray cluster has a GPU")


LONG = f"""\
name: long
device: cpu
{QUIET.replace("min_iters: 3, min_seconds: 0, max_seconds: 30", "min_iters: 1000, min_seconds: 60, max_seconds: 120")}
workloads:
  - {{name: toy, type: toy, params: {{steps: 20, step_s: 0.005}}, sweep: {{first_s: [0.001, 0.002, 0.003]}}}}
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_cluster_run_and_keeps_what_was_shipped(tmp_path, cluster, signum):
    """Ray's init replaces the process's SIGTERM handler; the profiler's must stay: exit 128 + signal, the running points
    interrupted with the parts shipped so far, the queued one left pending, the run marked interrupted, a report."""
    (tmp_path / "suite.yaml").write_text(LONG)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "profiler", "run", str(tmp_path / "suite.yaml"), "-o", str(tmp_path / "runs"), "--executor", f"ray:{cluster}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len({p.parent for p in (tmp_path / "runs").glob("*/toy/*/spans.part-*.parquet")}) < 2:
        time.sleep(0.2)  # two points measuring (two cores), each with a part shipped (one point on a busy core starts later)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, (out, err)
    (run_dir,) = (tmp_path / "runs").iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "interrupted" and (run_dir / "report.html").exists()
    assert sorted(w["status"] for w in run["workloads"]) == ["interrupted", "interrupted", "pending"]
    for w in run["workloads"]:
        if w["status"] == "interrupted":
            summary = json.loads((run_dir / w["dir"] / "summary.json").read_text())
            assert "its Ray task was cancelled" in summary["error"]["reason"] and summary["span_count"] > 0
