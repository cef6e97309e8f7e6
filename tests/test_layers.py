"""Layers: einsum Dense (shapes, logical names), RMSNorm, LayerNorm, RoPE, SwiGLU."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synergen_jax.model.layers import Dense, LayerNorm, RMSNorm, SwiGLU, apply_rope


def test_dense_multi_axis_shapes_and_logical_names():
  x = jnp.ones((2, 3, 8))
  layer = Dense((4, 5), ("embed", "heads", "head_dim"), use_bias=True)
  v = layer.init(jax.random.key(0), x)
  specs = nn.get_partition_spec(v)["params"]
  assert tuple(specs["kernel"]) == ("embed", "heads", "head_dim")
  assert tuple(specs["bias"]) == ("heads", "head_dim")
  y = layer.apply(v, x)
  chex.assert_shape(y, (2, 3, 4, 5))
  # Contracting two trailing axes back to embed.
  out = Dense((8,), ("heads", "head_dim", "embed"), in_axes=2)
  v2 = out.init(jax.random.key(1), y)
  chex.assert_shape(out.apply(v2, y), (2, 3, 8))
  k = nn.unbox(v2)["params"]["kernel"]
  np.testing.assert_allclose(out.apply(v2, y), jnp.einsum("blhd,hde->ble", y, k), rtol=1e-5)


def test_dense_rejects_wrong_axis_names():
  with pytest.raises(ValueError, match="kernel_axes"):
    Dense((4,), ("embed",)).init(jax.random.key(0), jnp.ones((2, 8)))


def test_dense_computes_in_dtype_with_f32_params():
  layer = Dense((4,), ("embed", "mlp"), dtype=jnp.bfloat16)
  v = layer.init(jax.random.key(0), jnp.ones((2, 8)))
  assert nn.unbox(v)["params"]["kernel"].dtype == jnp.float32
  assert layer.apply(v, jnp.ones((2, 8))).dtype == jnp.bfloat16


def test_rmsnorm_matches_numpy():
  x = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)
  v = RMSNorm(eps=1e-6).init(jax.random.key(0), x)
  y = RMSNorm(eps=1e-6).apply(v, x)
  want = x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_layernorm_matches_numpy():
  x = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32) * 3 + 1
  v = LayerNorm().init(jax.random.key(0), x)
  y = LayerNorm().apply(v, x)
  want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
  np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)


def test_rope_is_relative_and_norm_preserving():
  rng = np.random.default_rng(0)
  q = jnp.asarray(rng.normal(size=(1, 1, 1, 16)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(1, 1, 1, 16)), jnp.float32)

  def score(pq, pk):
    rq = apply_rope(q, jnp.array([[pq]]), 10_000.0)
    rk = apply_rope(k, jnp.array([[pk]]), 10_000.0)
    return float(jnp.sum(rq * rk))

  # The q.k score depends only on the relative position.
  np.testing.assert_allclose(score(5, 2), score(103, 100), rtol=1e-4)
  assert abs(score(5, 2) - score(5, 4)) > 1e-3
  np.testing.assert_allclose(jnp.linalg.norm(apply_rope(q, jnp.array([[7]]), 1e4)),
                             jnp.linalg.norm(q), rtol=1e-5)
  # Position 0 is the identity.
  np.testing.assert_allclose(apply_rope(q, jnp.array([[0]]), 1e4), q, atol=1e-6)


def test_swiglu_matches_formula():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 8)), jnp.float32)
  v = SwiGLU(16).init(jax.random.key(0), x)
  p = nn.unbox(v)["params"]
  want = (jax.nn.silu(x @ p["gate"]["kernel"]) * (x @ p["up"]["kernel"])) @ p["down"]["kernel"]
  np.testing.assert_allclose(SwiGLU(16).apply(v, x), want, rtol=1e-5, atol=1e-6)
