"""A streaming model's context bounded by a policy: eviction over a transformers DynamicCache.

Why: an always-on assistant appends a camera frame's visual tokens to its language model's context
every fraction of a second, so the KV cache grows without end unless a policy bounds it (issue 15;
shared/guide/domain-facts.md section 7: StreamingVLM keeps attention sinks plus a window).
transformers has no sink cache, so the eviction is written here, over the cache's own tensors.

Policies (applied after each chunk of tokens is appended; the cache holds at most the bound plus
that chunk while the chunk's forward runs):
- `none`: nothing is evicted; the cache grows with every token.
- `sink_window`: keep the first `sink_tokens` tokens (attention sinks, StreamingLLM, Xiao et al.
  ICLR 2024) and the most recent `window_tokens - sink_tokens`.
- `visual_budget`: keep every text token and the most recent visual tokens up to `visual_tokens`,
  evicting the oldest frames' tokens first.

Positions: transformers caches keys after RoPE, so a kept key keeps the rotation of its original
position. New tokens continue the absolute position count (`position_ids`), so the distance
between a new query and a kept key is the true one, with a gap where tokens were evicted.
StreamingLLM instead re-assigns positions inside the cache (it caches keys before RoPE); that is
not emulated here. Over a long stream the absolute position passes the model's
max_position_embeddings and RoPE extrapolates: the caller states it.
"""

from __future__ import annotations

from typing import Any, Literal

Policy = Literal["none", "sink_window", "visual_budget"]
VISUAL, TEXT = "visual", "text"


class BoundedContext:
    """A DynamicCache, the kind of each cached token, the next absolute position, and the eviction policy."""

    def __init__(self, cache: Any, policy: Policy, window_tokens: int | None = None, sink_tokens: int = 4, visual_tokens: int | None = None) -> None:
        if policy == "sink_window" and (window_tokens is None or not 0 <= sink_tokens < window_tokens):
            raise ValueError(f"sink_window needs window_tokens > sink_tokens >= 0 (got window {window_tokens}, sinks {sink_tokens})")
        if policy == "visual_budget" and (visual_tokens is None or visual_tokens < 1):
            raise ValueError(f"visual_budget needs visual_tokens >= 1 (got {visual_tokens})")
        if policy not in ("none", "sink_window", "visual_budget"):
            raise ValueError(f"unknown context policy '{policy}': none, sink_window or visual_budget")
        self.cache = cache
        self.policy = policy
        self.window_tokens, self.sink_tokens, self.visual_tokens = window_tokens, sink_tokens, visual_tokens
        self.kinds: list[tuple[str, int]] = []
        """(kind, chunk number) of every cached token, in cache order."""
        self.position = 0
        """The absolute position the next token gets."""
        self.evicted = 0
        self._chunk = 0

    def positions(self, tokens: int, device: Any = None) -> Any:
        """[1, tokens] position ids for the next chunk (absolute, continuing the stream)."""
        import torch

        return torch.arange(self.position, self.position + tokens, device=device)[None]

    def appended(self, tokens: int, kind: str) -> int:
        """Record a chunk of `tokens` the model just appended to the cache, then evict by the policy; returns tokens evicted."""
        self.kinds.extend([(kind, self._chunk)] * tokens)
        self._chunk += 1
        self.position += tokens
        keep = self._keep()
        if keep is None:
            return 0
        import torch

        dropped = len(self.kinds) - len(keep)
        index = None
        for layer in self.cache.layers:
            if getattr(layer, "keys", None) is None or layer.keys.numel() == 0:
                continue
            if index is None:
                index = torch.tensor(keep, device=layer.keys.device)
            layer.keys = layer.keys.index_select(-2, index)
            layer.values = layer.values.index_select(-2, index)
        self.kinds = [self.kinds[i] for i in keep]
        self.evicted += dropped
        return dropped

    def _keep(self) -> list[int] | None:
        """Cache indices to keep, in order; None when nothing is evicted."""
        n = len(self.kinds)
        if self.policy == "sink_window" and n > self.window_tokens:
            recent = self.window_tokens - self.sink_tokens
            return list(range(self.sink_tokens)) + list(range(n - recent, n))
        if self.policy == "visual_budget":
            visual = [i for i, (kind, _) in enumerate(self.kinds) if kind == VISUAL]
            if len(visual) > self.visual_tokens:
                drop = set(visual[: len(visual) - self.visual_tokens])
                return [i for i in range(n) if i not in drop]
        return None

    @property
    def length(self) -> int:
        """Tokens held now."""
        return len(self.kinds)

    def bound_tokens(self) -> int | None:
        """The most tokens held after an update (None: unbounded; visual_budget: its visual part only)."""
        return self.window_tokens if self.policy == "sink_window" else self.visual_tokens if self.policy == "visual_budget" else None
