"""The Ray executor on a local 2-CPU Ray cluster (started once for this module with `ray start --head`): the same
suite gives the same run layout and summary structure as the local executor, each point's node and environment
are recorded, points run pinned to cores of their own, a killed worker is recorded like a failed child while the
rest of the sweep completes, and bad executor input is one line."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A 2-CPU Ray head on this machine, as `ray start --head` makes one; its address."""
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    port = _free_port()
    temp = tmp_path_factory.mktemp("ray")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    start = [ray_bin, "start", "--head", f"--port={port}", "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats"]
    done = subprocess.run([*start, f"--temp-dir={temp}"], env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 and "temp-dir" in done.stderr:  # older Ray: no --temp-dir on a head started this way
        done = subprocess.run(start, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    yield f"127.0.0.1:{port}"
    subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)


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
