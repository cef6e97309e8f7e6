"""Grouped-query self-attention with RoPE, packing masks and a KV cache.

Two modes:
- full (`decode=False`): causal attention inside each packed segment, through the
  backend chosen by config (`xla`, `cudnn`, `splash`).
- cached (`decode=True`): keys/values are written into a per-layer cache at the
  running index and queries attend to every valid cached slot not after them. A
  prefill writes the prompt (any length), then each step writes one token. Rows may
  have different prompt lengths: slots whose segment id is 0 are never attended to.
  The cache is created by the first call (flax `init` with `mutable=["cache"]`),
  sized by that call's length, the maximum decode length.
"""

import flax.linen as nn
from jax.ad_checkpoint import checkpoint_name
import jax
import jax.numpy as jnp

from synergen_jax.model import attention_ops
from synergen_jax.model.layers import Dense, apply_rope


class Attention(nn.Module):
  num_heads: int
  num_kv_heads: int
  head_dim: int
  rope_theta: float = 10_000.0
  qkv_bias: bool = False
  backend: str = "xla"
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, positions, segment_ids, decode: bool = False):
    """x: [batch, length, embed]; positions, segment_ids: [batch, length] int."""
    embed = x.shape[-1]
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    q = Dense((self.num_heads, self.head_dim), ("embed", "heads", "head_dim"),
              use_bias=self.qkv_bias, name="query", **kw)(x)
    k = Dense((self.num_kv_heads, self.head_dim), ("embed", "kv_heads", "head_dim"),
              use_bias=self.qkv_bias, name="key", **kw)(x)
    v = Dense((self.num_kv_heads, self.head_dim), ("embed", "kv_heads", "head_dim"),
              use_bias=self.qkv_bias, name="value", **kw)(x)
    # Named for the remat policies that keep them (decoder.REMAT_POLICIES).
    q, k, v = (checkpoint_name(t, n) for t, n in ((q, "q_proj"), (k, "k_proj"), (v, "v_proj")))
    q = apply_rope(q, positions, self.rope_theta)  # [batch, length, heads, head_dim]
    k = apply_rope(k, positions, self.rope_theta)  # [batch, length, kv_heads, head_dim]
    q = nn.with_logical_constraint(
        q, ("activation_batch", "activation_length", "activation_heads", "head_dim"))

    if decode:
      out = self._cached_attention(q, k, v, segment_ids)
    elif self.backend == "splash":
      out = attention_ops.splash_attention(q, k, v, segment_ids)
    elif self.backend == "cudnn":
      out = attention_ops.cudnn_attention(q, k, v, segment_ids)
    else:
      mask = attention_ops.causal_segment_mask(segment_ids, segment_ids)
      out = attention_ops.xla_attention(q, k, v, mask)
    out = nn.with_logical_constraint(
        out, ("activation_batch", "activation_length", "activation_heads", "head_dim"))
    return Dense((embed,), ("heads", "head_dim", "embed"), in_axes=2, name="out", **kw)(out)

  def _cached_attention(self, q, k, v, segment_ids):
    batch, length = q.shape[:2]
    initialized = self.has_variable("cache", "cached_key")
    cache_shape = (batch, length, self.num_kv_heads, self.head_dim)
    cached_k = self.variable("cache", "cached_key", jnp.zeros, cache_shape, k.dtype)
    cached_v = self.variable("cache", "cached_value", jnp.zeros, cache_shape, v.dtype)
    cached_seg = self.variable("cache", "cached_segment_ids", jnp.zeros, (batch, length), jnp.int32)
    index = self.variable("cache", "cache_index", lambda: jnp.zeros((), jnp.int32))
    if not initialized:
      # Creating the cache: its length is this call's length (the maximum).
      mask = attention_ops.causal_segment_mask(segment_ids, segment_ids)
      return attention_ops.xla_attention(q, k, v, mask)

    max_len = cached_k.value.shape[1]
    start = index.value
    cached_k.value = jax.lax.dynamic_update_slice(cached_k.value, k.astype(cached_k.value.dtype),
                                                  (0, start, 0, 0))
    cached_v.value = jax.lax.dynamic_update_slice(cached_v.value, v.astype(cached_v.value.dtype),
                                                  (0, start, 0, 0))
    cached_seg.value = jax.lax.dynamic_update_slice(
        cached_seg.value, segment_ids.astype(jnp.int32), (0, start))
    index.value = start + length
    # Query t sits at slot start + t; it sees valid slots up to its own.
    slot = jnp.arange(max_len)[None, :]  # [1, max_len]
    q_slot = start + jnp.arange(length)[:, None]  # [length, 1]
    visible = (slot <= q_slot)[None] & (cached_seg.value > 0)[:, None, :]  # [b, len, max]
    visible = visible | ~jnp.any(visible, axis=-1, keepdims=True)  # padding queries: no NaN
    return attention_ops.xla_attention(
        q, cached_k.value.astype(q.dtype), cached_v.value.astype(q.dtype), visible[:, None])
