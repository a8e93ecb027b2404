"""Issue 26, bytes and MBU: indexing ops are charged for the rows they touch (profiler/measure/work.py), and a
decode step's MBU is on the bytes it must read, the weights once + the state at its context
(profiler/characterize/roofline.py: MBU_BASIS_RULE), with the counted traffic's MBU beside it.

The models are built from the published config.json of meta-llama/Llama-3.2-1B (workloads/llm_presets.py), shrunk in
layers and width but with its 128,256-token vocabulary, so a whole-table charge (32.8 MB here) would stand out against
one row (256 B)."""

from __future__ import annotations

import pandas as pd
import pytest

from profiler.characterize.roofline import MBU_BASIS_RULE, required_bytes, work_by_phase
from profiler.characterize.summary import Passes, WorkloadOutcome, build_summary
from profiler.measure.work import make_byte_counter, op_bytes
from profiler.plugin import Declaration
from profiler.runmodel import ChildRecord, MbuBasis, PhaseWork, Status, Work
from workloads.decode_loop import step_weight_bytes
from workloads.llm_presets import build_config

HIDDEN, LAYERS, KV_HEADS, HEAD_DIM, BATCH, PROMPT = 64, 2, 2, 16, 3, 5
VOCAB = 128_256  # Llama-3.2-1B's


def shrunk_llama_3_2_1b():
    """Llama-3.2-1B's config (vocab 128,256, tied embeddings, GQA 4:1, llama3 RoPE) with 2 layers of width 64; random weights."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg = build_config("llama-3.2-1b")
    cfg.update({"hidden_size": HIDDEN, "intermediate_size": 128, "num_hidden_layers": LAYERS, "num_attention_heads": 4})
    cfg.update({"num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "max_position_embeddings": 64})
    assert cfg.vocab_size == VOCAB and cfg.tie_word_embeddings
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()


def count_one_decode_step(model, cache, positions: bool):
    """Prefill PROMPT tokens for BATCH sequences, then count one decode step's bytes by op."""
    import torch

    ids = torch.randint(0, VOCAB, (BATCH, PROMPT))
    where = {"cache_position": torch.arange(PROMPT)} if positions else {}
    with torch.inference_mode():
        token = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1, **where).logits[:, -1].argmax(-1)
        where = {"cache_position": torch.tensor([PROMPT])} if positions else {}
        with make_byte_counter() as counter:
            model(input_ids=token[:, None], cache=cache, use_cache=True, **where)
    return counter


@pytest.fixture(scope="module")
def model():
    return shrunk_llama_3_2_1b()


def test_a_decode_step_is_charged_one_embedding_row_per_sequence(model):
    from transformers import DynamicCache

    counter = count_one_decode_step(model, DynamicCache(config=model.config), positions=False)
    row = HIDDEN * 4  # fp32
    # read: 3 rows of 256 B + the [3, 1] int64 index; written: the [3, 1, 64] output. The whole table would be 32.8 MB.
    assert counter.read_by_op["embedding"] == BATCH * row + BATCH * 8
    assert counter.by_op["embedding"] == 2 * BATCH * row + BATCH * 8 == 1_560
    # the tied table is still read once whole, by the LM head (a linear), not twice
    table = VOCAB * HIDDEN * 4
    assert table < counter.total < 2 * table


def test_a_static_cache_one_token_write_is_charged_one_row_per_layer(model):
    """transformers 5's StaticCache writes a step's K and V with index_copy_ (index_put_ where a device lacks it)."""
    from transformers import StaticCache

    counter = count_one_decode_step(model, StaticCache(config=model.config, max_cache_len=16), positions=True)
    row = BATCH * KV_HEADS * 1 * HEAD_DIM * 4  # one token's K (or V) for the batch, [3, 2, 1, 16] fp32: 384 B
    # per layer, K and V: read the source row + the 8 B index, write the row; the whole [3, 2, 16, 16] cache is 6,144 B
    assert counter.by_op["index_copy_"] == LAYERS * 2 * (2 * row + 8) == 3_104
    assert "index_put_" not in counter.by_op


def test_indexing_rules_on_hand_computed_tensors():
    import torch

    x = torch.zeros(4, 8, 16)  # 2,048 B
    src = torch.ones(4, 1, 16)  # 256 B

    def charge(op, *args, **kwargs):
        """(read, written) of aten `op` ('name' or 'name.overload') run on the arguments."""
        name, _, overload = op.partition(".")
        out = getattr(getattr(torch.ops.aten, name), overload or "default")(*args, **kwargs)
        return op_bytes(name, args, kwargs, out, torch)

    index = torch.tensor([3])  # 8 B
    assert charge("index_select", x, 1, index) == (256 + 8, 256)
    assert charge("index.Tensor", x, [None, index]) == (256 + 8, 256)
    assert charge("gather", x, 1, torch.zeros(4, 2, 16, dtype=torch.long)) == (512 + 1024, 512)
    assert charge("index_put_", x, [None, index], src) == (256 + 8, 256)
    assert charge("index_put_", x, [None, index], src, True) == (256 + 8 + 256, 256)  # accumulate: the destination rows too
    mask = torch.tensor([True, False, True, False])  # 4 B; selects 2 x 8 x 16 elements
    assert charge("index_put_", x, [mask], torch.tensor(1.0)) == (4 + 4, 2 * 8 * 16 * 4)
    assert charge("scatter_.src", x, 1, torch.zeros(4, 1, 16, dtype=torch.long), src) == (256 + 512, 256)
    assert charge("scatter_add_", x, 1, torch.zeros(4, 1, 16, dtype=torch.long), src) == (256 + 512 + 256, 256)
    assert charge("copy_", x[:, 2:3], src) == (256, 256)  # a slice written in place: not the destination twice
    assert charge("index_copy", x, 1, index, src) == (2_048 + 8 + 256, 2_048)  # out of place: a new copy of the whole, charged in full


def test_step_weights_of_published_configs():
    """Llama-3.2-1B (tied): every parameter, 1,235,814,400 x 4 B = 4,943,257,600 B in fp32 (embedding 128,256 x 2,048 =
    262,668,288; per layer q, o 2,048^2, k, v 2,048 x 512, MLP 3 x 2,048 x 8,192, 2 norms: 60,821,504; x 16; final norm).
    Llama-3.1-8B (untied): 8,030,261,248 - 525,336,576 input-table parameters + one 4,096-wide row, x 2 B in bf16:
    15,009,857,536 B, where the whole model is 16,060,522,496 B: a real 56% MBU would read 59.9% on all parameters."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        small = AutoModelForCausalLM.from_config(build_config("llama-3.2-1b"), dtype=torch.float32)
        large = AutoModelForCausalLM.from_config(build_config("llama-3.1-8b"), dtype=torch.bfloat16)
    assert step_weight_bytes(small, batch=1) == step_weight_bytes(small, batch=8) == 1_235_814_400 * 4
    assert step_weight_bytes(large, batch=1) == (8_030_261_248 - 525_336_576) * 2 + 4_096 * 2 == 15_009_857_536
    assert step_weight_bytes(large, batch=4) == 15_009_857_536 + 3 * 4_096 * 2
    assert 0.56 * 16_060_522_496 / 15_009_857_536 == pytest.approx(0.599, abs=1e-3)


def test_step_weights_read_one_row_of_learned_positions():
    """GPT-2 (tied token table, a learned 128 x 64 position table): the position table is read one row per sequence."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(GPT2Config(n_embd=64, n_layer=1, n_head=2, n_positions=128, vocab_size=1000), dtype=torch.float32)
    total = sum(p.numel() for p in model.parameters()) * 4
    assert step_weight_bytes(model, batch=2) == total - 128 * 64 * 4 + 2 * 64 * 4


# Llama-3.2-1B in fp32, batch 1: weights 4,943,257,600 B; KV 2 x 16 layers x 8 heads x 64 x 4 B = 65,536 B per token
WEIGHTS, KV_PER_TOKEN, MS = 4_943_257_600, 65_536, 1_000_000


def decode_spans(steps=(1023, 1024, 1025), ms=(90, 100, 130)) -> pd.DataFrame:
    """One measured iteration of three decode steps at contexts 1,023 to 1,025 (state_bytes = context x 65,536 B)."""
    rows = [{"iteration": 0, "warmup": False, "phase": "iteration", "start_ns": 0, "end_ns": sum(ms) * MS, "units": 0.0, "error": None}]
    t = 0
    for position, step_ms in zip(steps, ms, strict=True):
        rows.append(
            {"iteration": 0, "warmup": False, "phase": "decode_step", "start_ns": t, "end_ns": t + step_ms * MS, "units": 1.0, "error": None}
            | {"sequences": 1.0, "position": float(position), "state_bytes": float(position * KV_PER_TOKEN)}
        )
        t += step_ms * MS
    return pd.DataFrame(rows)


def test_decode_mbu_is_on_the_bytes_a_step_must_read():
    """(weights + KV at the median context, 1,024 tokens) / median step time (100 ms) / bandwidth (100 GB/s):
    (4,943,257,600 + 67,108,864) B / 0.1 s / 1e11 B/s = 0.501036...; the counted 6.5 GB beside it: 0.65."""
    spans = decode_spans()
    need, why = required_bytes(spans, "decode_step", WEIGHTS)
    assert why is None and need == {"decode_step": {"bytes": WEIGHTS + 1024 * KV_PER_TOKEN, "weights": WEIGHTS, "state": 1024 * KV_PER_TOKEN}}
    work = pd.DataFrame([{"phase": "decode_step", "flops_counted": 2.5e9, "analytic_flops": 0.0, "bytes_moved": 6.5e9}])
    ceilings = {"matmul_flops_per_s": {"float32": 1e12}, "copy_bytes_per_s": 1e11}
    entry = work_by_phase(work, {"decode_step": {"latency_s": {"median": 0.1}}}, ceilings, "float32", required=need)["decode_step"]
    assert entry["required_bytes"] == 5_010_366_464
    assert entry["mbu"] == pytest.approx(5_010_366_464 / 0.1 / 1e11) == pytest.approx(0.5010366464)
    assert entry["mbu_basis"] == "required" and entry["mbu_counted"] == pytest.approx(0.65)

    outcome = WorkloadOutcome(
        name="llm",
        type="synthetic",
        plugin="tests",
        params={},
        declaration=Declaration(step="decode_step", output_unit="token", deliveries=("decode_step",)),
        device="cpu",
        seed=0,
        status=Status.OK,
        error=None,
        child=ChildRecord(facts={"dtype": "float32", "step_weight_bytes": WEIGHTS}),
        wall_s=1.0,
    )
    summary = build_summary(outcome, spans, pd.DataFrame(), len(spans), Passes(count_work=True, trace_ops=False, work=work, calibration=ceilings))
    assert summary.problems == []
    step = summary.work.phases["decode_step"]
    assert step.time_s == pytest.approx(0.1) and step.mbu_basis == MbuBasis.REQUIRED
    assert step.required_weight_bytes == WEIGHTS and step.required_state_bytes == 1024 * KV_PER_TOKEN
    assert step.mbu == pytest.approx(0.5010366464) and step.mbu_counted == pytest.approx(0.65)
    assert summary.work.mbu_basis_rule == MBU_BASIS_RULE and summary.work.required_unavailable is None
    assert Work.model_validate(summary.work.model_dump(mode="json")) == summary.work

    # without the weights fact: counted traffic, stated as the basis
    outcome.child = ChildRecord(facts={"dtype": "float32"})
    counted = build_summary(outcome, spans, pd.DataFrame(), len(spans), Passes(count_work=True, trace_ops=False, work=work, calibration=ceilings))
    step = counted.work.phases["decode_step"]
    assert step.mbu_basis == MbuBasis.COUNTED and step.mbu == step.mbu_counted == pytest.approx(0.65) and step.required_bytes is None
    # the fact without state_bytes on the step spans: counted traffic, and why
    need, why = required_bytes(spans.drop(columns="state_bytes"), "decode_step", WEIGHTS)
    assert need == {} and why == "the spans of 'decode_step' carry no state_bytes, so the state a step reads is not known"


def test_required_bytes_above_the_bandwidth_is_a_reason_not_an_mbu():
    need = {"s": {"bytes": 2e9, "weights": 2e9, "state": 0.0}}
    work = pd.DataFrame([{"phase": "s", "flops_counted": 1.0, "analytic_flops": 0.0, "bytes_moved": 1e9}])
    ceilings = {"matmul_flops_per_s": {"float32": 1e12}, "copy_bytes_per_s": 1e10}
    entry = work_by_phase(work, {"s": {"latency_s": {"median": 0.1}}}, ceilings, "float32", required=need)["s"]
    assert "mbu" not in entry and entry["mbu_counted"] == pytest.approx(1.0) and "bound" not in entry
    assert entry["ceiling_exceeded"].startswith("achieved 20.0 GB/s above the calibrated 10.0 GB/s (copy bandwidth, bytes a step must read;")


def test_an_older_summary_reads_its_mbu_as_counted_traffic():
    """Summaries written before the basis existed (tests/data/golden-run) computed MBU from counted traffic."""
    old = {"spans_counted": 1, "flops_counted": 1.0, "flops_analytic": 0.0, "flops": 1.0, "bytes": 1.0, "mbu": 0.4, "achieved_bytes_per_s": 4e9}
    phase = PhaseWork.model_validate(old)
    assert phase.mbu == phase.counted_mbu() == 0.4 and phase.basis() == MbuBasis.COUNTED and phase.required_bytes is None
    assert phase.model_dump(mode="json", exclude_unset=True) == old  # read as written
    assert PhaseWork.model_validate({k: v for k, v in old.items() if k != "mbu"}).basis() is None
