"""VLA control loop: real pacing makes deadline misses appear with load and disappear without it,
and async inference misses fewer deadlines than sync at the same load and rate."""

from __future__ import annotations

import pandas as pd
import pytest

from profiler.analysis import deadline_metrics
from profiler.child import SetupContextImpl
from profiler.spans import SpanRecorder
from profiler.store import SPANS, PartWriter, merge_parts
from tests.conftest import assert_bad_params
from workloads.vla import VLA

SMALL_FRAMES = {"camera_resolution": [64, 64]}  # the tiny encoder's own size: no resize cost


def episodes(tmp_path, iterations=2, **params) -> tuple[pd.DataFrame, dict]:
    """Run `iterations` episodes in process; the first is warmup (as the runner does)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    workload = VLA(VLA.Params(**params))
    ctx = SetupContextImpl("cpu", 0, str(tmp_path))
    workload.setup(ctx)
    recorder = SpanRecorder(PartWriter(tmp_path, SPANS))
    try:
        for i in range(iterations):
            recorder.run_iteration(workload, i, warmup=i == 0)
    finally:
        workload.teardown()
    recorder.flush()
    merge_parts(tmp_path, SPANS)
    return pd.read_parquet(tmp_path / "spans.parquet"), ctx.facts


def miss_rate(spans: pd.DataFrame) -> float:
    return float(deadline_metrics(spans)["deadline_miss_rate"].mean())


@pytest.mark.parametrize("head", ["flow", "discrete"])
def test_light_load_misses_nothing(tmp_path, head):
    chunk = {"chunk_len": 3} if head == "flow" else {}
    spans, facts = episodes(tmp_path, head=head, control_hz=5, ticks=6, mode="sync", **chunk, **SMALL_FRAMES)
    assert miss_rate(spans) == 0.0
    ticks = spans.query("phase == 'tick' and not warmup")
    assert len(ticks) == 6 and (ticks["units"] == 1).all()
    m = deadline_metrics(spans)
    assert m["control_rate_hz"] == pytest.approx([5.0], rel=0.02)
    assert facts["chunk_len"] == (1 if head == "discrete" else 3)
    infer = spans.query("phase == 'infer'")
    assert set(spans["phase"]) >= {"tick", "perceive", "infer", "vision", "prefix", "action"}
    assert infer["state_bytes"].nunique() == 1  # the prefix KV is rebuilt each call: no growth


def test_overload_misses_deadlines(tmp_path):
    spans, _ = episodes(tmp_path, head="flow", control_hz=500, ticks=30, chunk_len=5, mode="sync", **SMALL_FRAMES)
    assert miss_rate(spans) > 0.1
    assert deadline_metrics(spans)["lateness_s"].max() > 0


def test_async_misses_fewer_than_sync_at_the_same_load(tmp_path):
    common = dict(head="flow", control_hz=200, ticks=80, chunk_len=20, **SMALL_FRAMES)
    sync, _ = episodes(tmp_path / "s", mode="sync", **common)
    async_, facts = episodes(tmp_path / "a", mode="async", **common)
    assert facts["replan_every"] == 10
    assert miss_rate(sync) > 0
    assert miss_rate(async_) < miss_rate(sync)
    # async executes actions from older observations less often than it replans, but never stale beyond a chunk
    assert deadline_metrics(async_)["staleness_s"].max() < 20 / 200 + 0.1


@pytest.mark.parametrize("params, needle", [
    ("{chunk_len: 100, ticks: 50}", "longer than the episode horizon"),
    ("{control_hz: 0}", "control_hz"),
    ("{replan_every: 30, chunk_len: 20}", "run out of actions"),
    ("{cameras: 4}", "cameras"),
    ("{head: discrete, chunk_len: 5}", "chunk_len must be 1"),
])
def test_bad_vla_params(write_suite, params, needle):
    assert_bad_params(write_suite, "vla", params, needle)


def test_published_policy_sizes():
    import torch

    from workloads.vla_policy import VLAPolicy
    from workloads.vla_presets import VLA_PRESETS

    built = {}
    for name in ("openvla-7b", "pi0", "smolvla"):
        preset = VLA_PRESETS[name]
        with torch.device("meta"):
            policy = VLAPolicy(preset, preset["head"], preset["action_dim"], preset["chunk_len"], 10, 16)
        built[name] = sum(p.numel() for p in policy.parameters())
    assert built["pi0"] == pytest.approx(3.3e9, rel=0.03)
    assert built["smolvla"] == pytest.approx(450e6, rel=0.1)
    assert built["openvla-7b"] == pytest.approx(7.54e9 - 0.30e9, rel=0.03)  # DINOv2-L (~0.3B) is not built
