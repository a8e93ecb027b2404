"""rl_step (workloads/rl_step.py): one GRPO step's phase structure, memory measured from the tensors, the
tail read from its rollout, and bad input, on qwen-tiny (the Qwen2 layout of Qwen2.5) on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from profiler.characterize.sync_batch import batch_tails, stage_shares
from profiler.plugin import ITERATION
from tests.integration.test_llm_decode import run_with_recorder
from workloads.rl_step import BREAKDOWN, RLStep

SMALL = dict(preset="qwen-tiny", group_size=2, prompts=2, prompt_len=8, max_response_len=12, response_median=6, response_sigma=0.8, micro_batch_size=3)


@pytest.fixture(scope="module")
def one_step(tmp_path_factory):
    workload = RLStep(RLStep.Params(**SMALL))
    spans, facts = run_with_recorder(tmp_path_factory.mktemp("rl"), workload)
    return spans, facts


def _inside(inner, outer) -> bool:
    return bool((inner["start_ns"] >= outer["start_ns"]) and (inner["end_ns"] <= outer["end_ns"]))


def test_one_step_has_its_stages_in_order_with_their_parts_inside(one_step):
    spans, _ = one_step
    top = spans[spans["phase"].isin(BREAKDOWN)].sort_values("start_ns")
    assert list(top["phase"]) == list(BREAKDOWN)
    assert (top["start_ns"].iloc[1:].to_numpy() >= top["end_ns"].iloc[:-1].to_numpy()).all()  # stages do not overlap
    stage = {row["phase"]: row for _, row in top.iterrows()}
    parts = {"rollout_step": "rollout", "logprobs_old": "scoring", "logprobs_ref": "scoring", "forward_backward": "training", "optimizer_step": "training"}
    for phase, parent in parts.items():
        rows = spans[spans["phase"] == phase]
        assert len(rows) and all(_inside(r, stage[parent]) for _, r in rows.iterrows()), phase
    # 4 sequences in micro-batches of 3: two of each per-micro-batch phase, one optimizer step
    assert [len(spans[spans["phase"] == p]) for p in ("logprobs_old", "logprobs_ref", "forward_backward", "optimizer_step")] == [2, 2, 2, 1]
    shares = stage_shares(spans, BREAKDOWN).iloc[0]
    assert 0 <= shares["other"] < 0.05 and shares[list(BREAKDOWN)].sum() == pytest.approx(1 - shares["other"])
    assert spans.loc[spans["phase"] == "weight_sync", "units"].tolist() == [1.0]  # the step delivers one updated policy
    assert spans.loc[spans["phase"] == ITERATION].shape[0] == 1


def test_rollout_generates_the_drawn_lengths_and_its_tail_is_read(one_step):
    spans, facts = one_step
    steps = spans[spans["phase"] == "rollout_step"]
    rollout = spans[spans["phase"] == "rollout"].iloc[0]
    # the engine generated exactly the drawn lengths: the longest decides the number of steps
    workload = RLStep(RLStep.Params(**SMALL))
    workload.seed, workload.vocab, workload.step_index = 0, 16384, 0
    _, lengths = workload._lengths_and_prompts()
    assert rollout["tokens"] == lengths.sum() == steps["tokens"].sum()
    assert steps["finished"].sum() == 4 and len(steps) == lengths.max()
    assert steps["sequences"].iloc[0] == 4 and steps["sequences"].iloc[-1] == (lengths == lengths.max()).sum()
    tail = batch_tails(spans, "rollout_step").iloc[0]
    assert tail["requests"] == 4 and tail["tail_steps"] == lengths.max() - sorted(lengths.flatten())[1]
    per_token = 2 * 3 * 1 * 64 * 4  # qwen-tiny: 2 (K, V) x 3 layers x 1 KV head x head_dim 64 x float32
    assert facts["kv_bytes_per_token"] == per_token
    # prompt 8 + at most 12 tokens fit one 32-token page per request: 4 pages held after the first step, none after the last
    assert steps["memory_kv_cache_bytes"].iloc[0] == 4 * 32 * per_token and steps["memory_kv_cache_bytes"].iloc[-1] == 0


def test_memory_by_kind_equals_the_tensors_sizes(one_step):
    spans, facts = one_step
    step = spans[spans["phase"] == "optimizer_step"].iloc[0]
    weights = facts["param_bytes"]  # float32 master weights
    tensors = len(list(_policy_parameters()))
    assert step["memory_weights_bytes"] == weights and step["memory_gradients_bytes"] == weights
    # AdamW: exp_avg and exp_avg_sq of each parameter's size and dtype, and a float32 scalar `step` per parameter tensor
    assert step["memory_optimizer_state_bytes"] == 2 * weights + 4 * tensors
    sync = spans[spans["phase"] == "weight_sync"].iloc[0]
    assert sync["memory_rollout_weights_bytes"] == sync["memory_reference_weights_bytes"] == weights  # float32 on the CPU
    assert (spans.loc[spans["phase"] == "forward_backward", "memory_activations_bytes"] > 0).all()


def _policy_parameters():
    import torch

    from workloads.decode_loop import build_causal_lm
    from workloads.llm_presets import build_config

    return build_causal_lm(build_config("qwen-tiny"), None, torch.float32, "cpu").parameters()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"group_size": 0}, "group_size: Input should be greater than or equal to 1"),
        ({"prompts": 0}, "prompts: Input should be greater than or equal to 1"),
        ({"max_response_len": 5000}, "exceeds the model's max_position_embeddings (4096)"),
        ({"micro_batch_size": 9}, "micro_batch_size 9 is larger than the batch of 8 sequences"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, change, message):
    suite = {"name": "rl", "workloads": [{"name": "grpo", "type": "rl_step", "params": {"preset": "qwen-tiny", "group_size": 4, "prompts": 2, **change}}]}
    path = tmp_path / "rl.yaml"
    path.write_text(yaml.safe_dump(suite))
    r = subprocess.run([sys.executable, "-m", "profiler", "validate", str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_max_positions_of_a_pretrained_directory_are_read_without_torch(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2", "max_position_embeddings": 64}))
    with pytest.raises(ValueError, match=r"exceeds the model's max_position_embeddings \(64\)"):
        RLStep.Params(pretrained=str(tmp_path), prompt_len=32, max_response_len=33)


def test_rl_suite_runs_and_its_report_shows_the_breakdown_the_tail_memory_and_differences(tmp_path):
    """configs/rl.yaml, shortened: both LLM baselines and one GRPO step per measured iteration, end to end."""
    from profiler import load_run
    from tests.conftest import ROOT, run_cli

    shorter = [
        "measure.warmup_iters=1",
        "measure.min_iters=2",
        "measure.min_seconds=0",
        "workloads.0.params.gen_len=8",
        "workloads.1.load.requests=6",
        "workloads.2.params.max_response_len=24",
        "workloads.2.params.response_median=8",
    ]
    result = run_cli("run", ROOT / "configs" / "rl.yaml", "-o", tmp_path, "--device", "cpu", *[a for s in shorter for a in ("--set", s)])
    assert result.returncode == 0, result.stderr
    (run_dir,) = tmp_path.iterdir()
    s = load_run(run_dir).workloads["grpo"].summary
    assert s.status == "ok" and s.problems == []
    assert list(s.breakdown) == [*BREAKDOWN, "other"] and s.breakdown["rollout"].tokens_per_s > 0 and s.breakdown["training"].tokens_per_s > 0
    assert s.batch_tail is not None and s.batch_tail.requests.median == 8 and s.batch_tail.iterations >= 2
    kinds = s.memory.by_kind
    assert kinds["gradients"] == kinds["weights"] == s.facts["param_bytes"] and kinds["optimizer_state"] > 2 * kinds["weights"]
    assert {p for p in ("rollout_step", "forward_backward", "training") if s.work.phases.get(p) and s.work.phases[p].flops > 0} == {
        "rollout_step",
        "forward_backward",
        "training",
    }  # generation is counted on the calling thread, like training
    page = (run_dir / "report.html").read_text()
    assert 'id="stages"' in page and "Seer, arXiv 2511.14617" in page and "bytes per parameter" in page
    rows = {(r["workload"], r["characteristic"]): r for r in json.loads((run_dir / "differences.json").read_text())}
    assert rows[("grpo", "training_state_per_param")]["verdict"] == "present"
    assert rows[("grpo", "straggler_tail_share")]["verdict"] == "present"
    assert rows[("grpo", "objective")]["verdict"] == "differs"
    # all at once against any open arrival process, whatever the serving baseline's burstiness class
    assert rows[("grpo", "arrival_burstiness")]["verdict"] == "differs"
    assert "ZeRO" in rows[("grpo", "training_state_per_param")]["reading"] and "Seer" in rows[("grpo", "straggler_tail_share")]["reading"]


@pytest.mark.parametrize(
    "config, message",
    [
        ("[1, 2]", "holds a list, not a model config"),
        ('{"max_position_embeddings": "4096"}', "max_position_embeddings is '4096', not a positive integer"),
        ("{not json", "not a readable JSON file"),
    ],
)
def test_a_bad_pretrained_config_is_one_line(tmp_path, config, message):
    (tmp_path / "config.json").write_text(config)
    with pytest.raises(ValueError, match=message):
        RLStep.Params(pretrained=str(tmp_path))


def test_kv_cache_smaller_than_one_request_is_refused():
    with pytest.raises(ValueError, match="kv_cache_tokens 100 cannot hold one request at its longest"):
        RLStep.Params(prompt_len=32, max_response_len=128, kv_cache_tokens=100)
