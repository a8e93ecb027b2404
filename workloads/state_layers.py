"""Per-request state of a transformers decoder, declared per layer from the model's own config and
measured from the storages alive behind its cache.

Declared (metrics.md, "State and memory"): transformers itself decides each layer's cache type
from the config (`cache_utils.get_layer_types_and_kwargs`: full, sliding or chunked attention,
linear/conv/recurrent state, hybrids, layers without a cache); each type's growth per token per
sequence is
- full attention: 2 * kv_heads * head_dim * dtype_bytes (K and V), for every token;
- latent attention (MLA, `kv_lora_rank` in the config): (kv_lora_rank + qk_rope_head_dim) *
  dtype_bytes, the compressed latent and the shared rope key transformers caches;
- sliding-window or chunked attention: the same per token, up to the window (chunk) of tokens,
  then 0;
- SSM, conv and linear-attention (recurrent) state: 0, a constant size;
- a hybrid layer (a recurrent state beside an attention cache): its attention part.
Measured: the bytes of every storage behind the cache's tensors, each storage once. transformers
keeps views over larger storages (a windowed layer still holds the whole prompt's K/V until the
next step): a view costs its storage, not its elements.
"""

from __future__ import annotations

from typing import Any

from profiler.plugin import StateLayer

STATE_ATTRIBUTES = ("keys", "values", "conv_states", "recurrent_states", "ssm_states", "key_cache", "value_cache")
GROWING = {"full_attention": "full_attention", "hybrid": "full_attention", "indexed_attention": "full_attention"}
BOUNDED = {
    "sliding_attention": "sliding_window",
    "reference_sliding_attention": "sliding_window",
    "hybrid_sliding": "sliding_window",
    "chunked_attention": "chunked_attention",
}
CONSTANT = ("conv", "linear_attention")
NO_STATE = ("dummy", "moe", "mlp")


def declared_state_layers(config: Any, dtype_bytes: int) -> list[StateLayer]:
    """One StateLayer per decoder layer of `config` (a transformers config; its text/decoder part
    is used), merged into runs of identical layers. Raises ValueError naming a layer type whose
    growth this module does not know (compressed attention), so nothing is declared wrongly."""
    from transformers.cache_utils import get_layer_types_and_kwargs

    decoder = config.get_text_config(decoder=True)
    layer_types, kwargs = get_layer_types_and_kwargs(decoder)
    layers: list[StateLayer] = []
    for layer_type, layer_config, layer_kwargs in zip(layer_types, decoder.per_layer_config, kwargs, strict=True):
        layers.append(_layer(layer_type, layer_config, layer_kwargs, dtype_bytes, decoder))
    return merge_runs(layers)


def _layer(layer_type: str, layer_config: Any, layer_kwargs: dict[str, Any], dtype_bytes: int, decoder: Any) -> StateLayer:
    if layer_type in NO_STATE:
        return StateLayer(kind="none", bytes_per_token=0)
    if layer_type in CONSTANT:
        return StateLayer(kind="recurrent", bytes_per_token=0)
    per_token = attention_bytes_per_token(layer_config, dtype_bytes)
    if layer_type in GROWING:
        kind = "latent_attention" if getattr(layer_config, "kv_lora_rank", None) else "full_attention"
        return StateLayer(kind=kind, bytes_per_token=per_token, with_recurrent=layer_type == "hybrid")
    if layer_type in BOUNDED:
        return StateLayer(
            kind=BOUNDED[layer_type], bytes_per_token=per_token, bound_tokens=int(layer_kwargs["sliding_window"]), with_recurrent=layer_type == "hybrid_sliding"
        )
    raise ValueError(f"{decoder.model_type}: the growth of a '{layer_type}' cache layer is not modelled; its state would be declared wrongly")


def attention_bytes_per_token(layer_config: Any, dtype_bytes: int) -> int:
    """Bytes one token adds to one attention layer's cache, per sequence (see the module docstring)."""
    rank = getattr(layer_config, "kv_lora_rank", None)
    if rank:
        return int((rank + layer_config.qk_rope_head_dim) * dtype_bytes)
    heads = _first(layer_config, "num_attention_heads", "n_head", "num_heads")
    kv_heads = _first(layer_config, "num_key_value_heads", "num_kv_heads", "n_head_kv", default=heads)
    head_dim = getattr(layer_config, "head_dim", None) or _first(layer_config, "hidden_size", "n_embd") // heads
    return int(2 * kv_heads * head_dim * dtype_bytes)


def _first(cfg: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(cfg, name, None)
        if value is not None:
            return value
    if default is None:
        raise ValueError(f"{getattr(cfg, 'model_type', 'config')}: none of {', '.join(names)} in the config")
    return default


def merge_runs(layers: list[StateLayer]) -> list[StateLayer]:
    """Consecutive identical layers as one StateLayer with a count (26 layers read as a few lines)."""
    out: list[StateLayer] = []
    for layer in layers:
        if out and out[-1].model_copy(update={"count": 1}) == layer.model_copy(update={"count": 1}):
            out[-1] = out[-1].model_copy(update={"count": out[-1].count + layer.count})
        else:
            out.append(layer)
    return out


def cache_state_bytes(cache: Any) -> int:
    """Bytes of the storages alive behind a transformers cache's state tensors, each storage once.

    Attention layers hold `keys`/`values` (the KV cache); recurrent layers hold `conv_states` and
    `recurrent_states` (or `ssm_states`), as tensors or dicts/lists of tensors.
    """
    storages: dict[int, int] = {}
    holders = getattr(cache, "layers", None) or [cache]
    for holder in holders:
        for name in STATE_ATTRIBUTES:
            _collect(getattr(holder, name, None), storages)
    return sum(storages.values())


def _collect(value: Any, storages: dict[int, int]) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        for v in value.values():
            _collect(v, storages)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _collect(v, storages)
    elif hasattr(value, "untyped_storage"):
        storage = value.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()


def formula_state_bytes(layers: list[StateLayer], tokens: int, batch: int) -> int:
    """The per-layer formula's state for `tokens` of context in each of `batch` sequences: sum over layers of
    min(tokens, bound) x bytes_per_token x count (bytes). What a static cache holds filled (it allocates all of
    max_cache_len up front), labelled as a formula wherever it is stored."""
    return batch * sum(min(tokens, layer.bound_tokens or tokens) * layer.bytes_per_token * layer.count for layer in layers)
