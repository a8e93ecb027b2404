"""Context bounds over a transformers DynamicCache (workloads/bounded_context.py): the KV cache stops growing
at the window, attention sinks are kept as they were, positions continue the stream, a visual budget keeps text."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache

from workloads.bounded_context import TEXT, VISUAL, BoundedContext
from workloads.decode_loop import cache_argument
from workloads.state_layers import cache_state_bytes

FRAME = 8  # visual tokens per frame


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = AutoConfig.for_model(
        "llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=128
    )
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def per_token(model) -> int:
    c = model.config
    return 2 * c.num_hidden_layers * c.num_key_value_heads * (c.hidden_size // c.num_attention_heads) * 4  # K and V, float32


def feed(model, ctx: BoundedContext, tokens: int, kind: str) -> None:
    embeds = torch.randn(1, tokens, model.config.hidden_size)
    with torch.inference_mode():
        model(inputs_embeds=embeds, **{cache_argument(type(model)): ctx.cache}, position_ids=ctx.positions(tokens), use_cache=True)
    ctx.appended(tokens, kind)


def test_sink_window_stops_the_kv_cache_at_the_window_and_keeps_the_sinks(model):
    ctx = BoundedContext(DynamicCache(config=model.config), "sink_window", window_tokens=32, sink_tokens=4)
    held = []
    sinks = None
    for frame in range(10):
        feed(model, ctx, FRAME, VISUAL)
        if frame == 0:
            sinks = ctx.cache.layers[0].keys[:, :, :4].clone()
        held.append(cache_state_bytes(ctx.cache))
    assert held == [min(FRAME * (f + 1), 32) * per_token(model) for f in range(10)]  # grows, then flat at the window
    assert ctx.cache.get_seq_length() == ctx.length == 32 and ctx.position == 80 and ctx.evicted == 48
    assert torch.equal(ctx.cache.layers[0].keys[:, :, :4], sinks)  # the sinks keep their original (rotated) keys
    assert ctx.positions(3).tolist() == [[80, 81, 82]]  # the stream's absolute positions continue


def test_visual_budget_evicts_the_oldest_frames_and_keeps_every_text_token(model):
    ctx = BoundedContext(DynamicCache(config=model.config), "visual_budget", visual_tokens=2 * FRAME)
    for _ in range(5):
        feed(model, ctx, FRAME, VISUAL)
        feed(model, ctx, 3, TEXT)
    kinds = [k for k, _ in ctx.kinds]
    assert kinds.count(TEXT) == 15 and kinds.count(VISUAL) == 2 * FRAME
    assert sorted({chunk for k, chunk in ctx.kinds if k == VISUAL}) == [6, 8]  # the last two frames (chunks 6 and 8)
    assert ctx.cache.get_seq_length() == 15 + 2 * FRAME


def test_no_policy_grows_with_every_token(model):
    ctx = BoundedContext(DynamicCache(config=model.config), "none")
    for _ in range(3):
        feed(model, ctx, FRAME, VISUAL)
    assert ctx.cache.get_seq_length() == 3 * FRAME and ctx.evicted == 0 and ctx.bound_tokens() is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"policy": "sink_window", "window_tokens": 4, "sink_tokens": 4}, "window_tokens > sink_tokens"),
        ({"policy": "visual_budget", "visual_tokens": 0}, "visual_tokens >= 1"),
        ({"policy": "lru"}, "unknown context policy 'lru'"),
    ],
)
def test_bad_bounds_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BoundedContext(None, **kwargs)
