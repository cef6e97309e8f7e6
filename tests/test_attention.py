"""Attention: GQA values vs a NumPy reference, causality, packing, KV cache, splash."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synergen_jax.model import attention_ops
from synergen_jax.model.attention import Attention
from synergen_jax.model.layers import apply_rope

H, KV, D, E = 4, 2, 8, 32


def _module(**kw):
  return Attention(num_heads=H, num_kv_heads=KV, head_dim=D, qkv_bias=True, **kw)


def _inputs(b=2, l=16, seed=0):
  x = jnp.asarray(np.random.default_rng(seed).normal(size=(b, l, E)), jnp.float32)
  pos = jnp.broadcast_to(jnp.arange(l), (b, l))
  seg = jnp.ones((b, l), jnp.int32)
  return x, pos, seg


def _numpy_attention(params, x, pos, seg, theta=10_000.0):
  p = params["params"]
  q = np.einsum("ble,ehd->blhd", x, p["query"]["kernel"]) + p["query"]["bias"]
  k = np.einsum("ble,ehd->blhd", x, p["key"]["kernel"]) + p["key"]["bias"]
  v = np.einsum("ble,ehd->blhd", x, p["value"]["kernel"]) + p["value"]["bias"]
  q = np.asarray(apply_rope(jnp.asarray(q), pos, theta))
  k = np.asarray(apply_rope(jnp.asarray(k), pos, theta))
  k = np.repeat(k, H // KV, axis=2)
  v = np.repeat(v, H // KV, axis=2)
  s = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(D)
  l = x.shape[1]
  mask = (np.arange(l)[:, None] >= np.arange(l)[None]) & (
      np.asarray(seg)[:, :, None] == np.asarray(seg)[:, None, :])[:, None]
  s = np.where(mask, s, -1e30)
  w = np.exp(s - s.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  o = np.einsum("bhqk,bkhd->bqhd", w, v)
  return np.einsum("bqhd,hde->bqe", o, p["out"]["kernel"])


def test_gqa_matches_numpy_reference_with_bias_and_packing():
  x, pos, _ = _inputs()
  seg = jnp.array([[1] * 10 + [2] * 6, [1] * 16])
  pos = jnp.array([list(range(10)) + list(range(6)), list(range(16))])
  m = _module()
  v = nn.unbox(m.init(jax.random.key(0), x, pos, seg))
  v = jax.tree.map(lambda a: a + 0.1, v)  # non-zero biases
  got = m.apply(v, x, pos, seg)
  np.testing.assert_allclose(got, _numpy_attention(v, np.asarray(x), pos, seg), rtol=1e-4,
                             atol=1e-5)


def test_causal_later_tokens_do_not_change_earlier_outputs():
  x, pos, seg = _inputs()
  m = _module()
  v = m.init(jax.random.key(0), x, pos, seg)
  y = m.apply(v, x, pos, seg)
  x2 = x.at[:, 9:].set(5.0)
  y2 = m.apply(v, x2, pos, seg)
  np.testing.assert_allclose(y[:, :9], y2[:, :9], atol=1e-6)
  assert float(jnp.max(jnp.abs(y[:, 9:] - y2[:, 9:]))) > 1e-3


@pytest.mark.slow
def test_packed_segments_equal_separate_rows():
  x, _, _ = _inputs(b=1, l=16)
  m = _module()
  seg = jnp.array([[1] * 7 + [2] * 9])
  pos = jnp.array([list(range(7)) + list(range(9))])
  v = m.init(jax.random.key(0), x, pos, seg)
  packed = m.apply(v, x, pos, seg)
  a = m.apply(v, x[:, :7], pos[:, :7], seg[:, :7])
  b = m.apply(v, x[:, 7:], pos[:, 7:] * 1, jnp.ones((1, 9), jnp.int32))
  np.testing.assert_allclose(packed[:, :7], a, atol=1e-5)
  np.testing.assert_allclose(packed[:, 7:], b, atol=1e-5)


@pytest.mark.slow
def test_kv_cache_prefill_then_decode_equals_full_forward_per_row_lengths():
  b, l = 2, 12
  x, pos, _ = _inputs(b=b, l=l)
  m = _module()
  v = m.init(jax.random.key(0), x, pos, jnp.ones((b, l), jnp.int32))
  # Row 0 has a prompt of 5, row 1 of 3 (right-padded to 5).
  lens = [5, 3]
  cache = m.init(jax.random.key(0), x, pos, jnp.ones((b, l), jnp.int32), decode=True)["cache"]
  assert int(cache["cache_index"]) == 0
  prompt_seg = jnp.array([[1] * 5, [1] * 3 + [0] * 2])
  prompt_pos = jnp.array([list(range(5)), list(range(3)) + [0, 0]])
  out, mut = m.apply({**v, "cache": cache}, x[:, :5], prompt_pos, prompt_seg, decode=True,
                     mutable=["cache"])
  cache = mut["cache"]
  # Decode 4 more tokens, one at a time; row r's next position is lens[r] + step.
  steps = []
  for s in range(4):
    tok_x = jnp.stack([x[0, 5 + s], x[1, 3 + s]])[:, None]
    tok_pos = jnp.array([[5 + s], [3 + s]])
    y, mut = m.apply({**v, "cache": cache}, tok_x, tok_pos, jnp.ones((b, 1), jnp.int32),
                     decode=True, mutable=["cache"])
    cache = mut["cache"]
    steps.append(y[:, 0])
  # Full forward of each row's real sequence.
  for r, n in enumerate(lens):
    seq = jnp.concatenate([x[r, :n], jnp.stack([x[r, n + s] for s in range(4)])])[None]
    full = m.apply(v, seq, jnp.arange(n + 4)[None], jnp.ones((1, n + 4), jnp.int32))
    np.testing.assert_allclose(out[r, :n], full[0, :n], atol=1e-5)
    np.testing.assert_allclose(jnp.stack([st[r] for st in steps]), full[0, n:], atol=1e-5)
  assert int(cache["cache_index"]) == 9


@pytest.mark.slow
@pytest.mark.parametrize("heads,kv_heads", [(4, 2), (4, 4)])
def test_splash_interpret_equals_xla_values_and_gradients(heads, kv_heads):
  rng = np.random.default_rng(0)
  b, l, d = 1, 256, 16
  q = jnp.asarray(rng.normal(size=(b, l, heads, d)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(b, l, kv_heads, d)), jnp.float32)
  v = jnp.asarray(rng.normal(size=(b, l, kv_heads, d)), jnp.float32)
  seg = jnp.array([[1] * 100 + [2] * 120 + [0] * 36])
  mask = attention_ops.causal_segment_mask(seg, seg)
  w = jnp.asarray(rng.normal(size=(b, l, heads, d)), jnp.float32)

  def loss_xla(q, k, v):
    return jnp.sum(w * attention_ops.xla_attention(q, k, v, mask))

  def loss_splash(q, k, v):
    return jnp.sum(w * attention_ops.splash_attention(q, k, v, seg, block=128, interpret=True))

  valid = (seg > 0)[:, :, None, None]
  np.testing.assert_allclose(
      attention_ops.splash_attention(q, k, v, seg, block=128, interpret=True) * valid,
      attention_ops.xla_attention(q, k, v, mask) * valid, atol=2e-5)
  w = w * valid  # padding queries are unspecified (and unused)
  g1 = jax.grad(loss_xla, argnums=(0, 1, 2))(q, k, v)
  g2 = jax.grad(loss_splash, argnums=(0, 1, 2))(q, k, v)
  for a, bb in zip(g1, g2):
    np.testing.assert_allclose(a, bb, atol=5e-5)


def test_splash_rejects_length_not_multiple_of_block():
  x = jnp.zeros((1, 100, 2, 8))
  with pytest.raises(ValueError, match="multiple of its block size"):
    attention_ops.splash_attention(x, x, x, jnp.ones((1, 100), jnp.int32), block=64)
  short = jnp.zeros((1, 8, 2, 8))  # shorter than a block: named, not a kernel-internal error
  with pytest.raises(ValueError, match=r"sequence length \(8\).*multiple of 128"):
    attention_ops.splash_attention(short, short, short, jnp.ones((1, 8), jnp.int32))


@pytest.mark.slow
def test_splash_under_a_mesh_runs_per_shard_and_equals_xla():
  from synergen_jax import sharding

  rng = np.random.default_rng(1)
  b, l, d = 4, 128, 8
  q = jnp.asarray(rng.normal(size=(b, l, 4, d)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(b, l, 2, d)), jnp.float32)
  v = jnp.asarray(rng.normal(size=(b, l, 2, d)), jnp.float32)
  seg = jnp.ones((b, l), jnp.int32).at[:, 70:].set(2)
  want = attention_ops.xla_attention(q, k, v, attention_ops.causal_segment_mask(seg, seg))
  mesh = sharding.make_mesh((2, 2, 2))
  with sharding.mesh_context(mesh):
    got = jax.jit(lambda *a: attention_ops.splash_attention(*a, interpret=True))(q, k, v, seg)
  np.testing.assert_allclose(got, want, atol=2e-5)
