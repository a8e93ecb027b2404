"""Compiled decode over a static KV cache (llm_decode `cache: static`, `compile: true`): the same tokens as eager
decode over a growing DynamicCache, and an honest state record (the static cache's filled part from the per-layer
formula, labelled; its measured allocation beside it). On CPU torch.compile's inductor compiles C++ too."""

from __future__ import annotations

from profiler.plugin import StateLayer
from tests.conftest import assert_bad_params
from workloads.state_layers import formula_state_bytes


class Record:
    """A `mark` that keeps each span's attributes (no timing needed here)."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, dict]] = []

    def __call__(self, phase: str, units: float = 0, **attrs):
        record = self

        class Span:
            def __init__(self) -> None:
                self.attrs = dict(attrs)
                self.units = units

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                record.spans.append((phase, self.attrs))
                return False

        return Span()


def decode(params: dict) -> tuple:
    """One iteration of llm_decode (llama-tiny, 12 + 10 tokens): its tokens [1, 10], spans' attributes, facts."""
    import torch

    from profiler.run.child import SetupContextImpl
    from workloads.llm_decode import LLMDecode

    torch.manual_seed(0)  # the runner seeds torch before setup: the same random weights on both sides
    workload = LLMDecode(LLMDecode.Params(preset="llama-tiny", prompt_len=12, gen_len=10, **params))
    ctx = SetupContextImpl("cpu", 0, "/tmp")
    workload.setup(ctx)
    mark = Record()
    workload.run_once(mark)
    return workload.tokens, mark.spans, ctx.facts


def test_compiled_static_decode_gives_eager_tokens_and_labels_its_state():
    eager, eager_spans, _ = decode({})
    compiled, spans, facts = decode({"cache": "static", "compile": True})
    assert compiled.tolist() == eager.tolist()  # greedy tokens; random weights make near-ties rare at float32
    assert "torch.compile" in facts["compiled"] and facts["state_bytes_source"].startswith("formula")
    filled = [a["state_bytes"] for _, a in spans]
    assert filled == [a["state_bytes"] for _, a in eager_spans]  # the formula equals the dynamic cache's measured bytes
    allocated = {a["state_allocated_bytes"] for _, a in spans}
    assert allocated == {filled[0] // 12 * 22}  # measured: the whole prompt + gen allocated up front


def test_formula_state_bytes_stops_at_a_window():
    layers = [StateLayer(kind="full_attention", bytes_per_token=10, count=2), StateLayer(kind="sliding_window", bytes_per_token=10, bound_tokens=4)]
    assert formula_state_bytes(layers, 3, 1) == 3 * 20 + 3 * 10
    assert formula_state_bytes(layers, 8, 2) == 2 * (8 * 20 + 4 * 10)


def test_compile_needs_a_static_cache(write_suite):
    assert_bad_params(write_suite, "llm_decode", "{compile: true}", "compile: true needs cache: static")


def test_static_cache_runs_eager_too():
    eager, _, _ = decode({})
    static, spans, facts = decode({"cache": "static"})
    assert static.tolist() == eager.tolist()
    assert facts["compiled"] is None


def test_compiled_mamba_decode_gives_eager_tokens():
    """A pure SSM's state keeps one shape, so one compiled graph serves every decode step over its DynamicCache."""
    import torch

    from profiler.run.child import SetupContextImpl
    from workloads.mamba import Mamba

    tokens = {}
    for compile in (False, True):
        torch.manual_seed(0)
        workload = Mamba(Mamba.Params(preset="mamba-tiny", prompt_len=12, gen_len=10, compile=compile))
        ctx = SetupContextImpl("cpu", 0, "/tmp")
        workload.setup(ctx)
        workload.run_once(Record())
        tokens[compile] = workload.tokens.tolist()
    assert tokens[True] == tokens[False]
    assert "torch.compile" in ctx.facts["compiled"]


def test_a_hybrid_is_not_compiled(write_suite, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "jamba"}')
    assert_bad_params(write_suite, "mamba", f"{{pretrained: {tmp_path}, compile: true}}", "hybrid whose attention KV cache grows")
