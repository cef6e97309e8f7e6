"""fused_cross_entropy (model.loss_impl="fused") == chunked_cross_entropy: sums, and
gradients w.r.t. the input and each output matrix, with or without a mesh; a matrix
that is not differentiated gets no weight-gradient matmul."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from synergen_jax import sharding
from synergen_jax.model.fused_cross_entropy import fused_cross_entropy
from synergen_jax.model.losses import chunked_cross_entropy

D, V0, V1 = 16, 40, 8


def _data(batch=4, n=13, seed=0):
  rng = np.random.default_rng(seed)
  h = jnp.asarray(rng.normal(size=(batch, n, D)), jnp.float32)
  m0 = jnp.asarray(rng.normal(size=(D, V0)) * 0.3, jnp.float32)
  m1 = jnp.asarray(rng.normal(size=(D, V1)) * 0.3, jnp.float32)
  t = jnp.asarray(rng.integers(0, V0 + V1, (batch, n)))
  w = jnp.asarray(rng.random((batch, n)) < 0.6, jnp.float32) * 1.5
  return h, m0, m1, t, w


def _chunked(h, m0, m1, t, w, chunk):
  return chunked_cross_entropy(h, t, w, lambda x: x @ jnp.concatenate([m0, m1], 1), chunk)


def _fused(h, m0, m1, t, w, chunk):
  return fused_cross_entropy(h, t, w, (m0, m1), chunk)


def _grads(fn, h, m0, m1, t, w, chunk, argnums):
  """value and grads of 3 * nll (a cotangent other than 1) w.r.t. `argnums` of (h, m0, m1)."""
  def loss(h, m0, m1):
    out = fn(h, m0, m1, t, w, chunk)
    return 3.0 * out["nll"], out
  (_, out), g = jax.jit(jax.value_and_grad(loss, argnums=argnums, has_aux=True))(h, m0, m1)
  return out, g


def _check(argnums, chunk=4, mesh_shape=None, batch=4):
  h, m0, m1, t, w = _data(batch)
  args = (h, m0, m1, t, w, chunk, argnums)
  if mesh_shape is None:
    want, g_want = _grads(_chunked, *args)
    got, g_got = _grads(_fused, *args)
  else:
    with sharding.mesh_context(sharding.make_mesh(mesh_shape)):
      want, g_want = _grads(_chunked, *args)
      got, g_got = _grads(_fused, *args)
  for k in ("nll", "weight", "correct"):
    np.testing.assert_allclose(got[k], want[k], rtol=1e-5, err_msg=k)
  for a, b in zip(g_got, g_want):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("argnums", [(0, 1, 2), (0, 2), (0,), (1, 2)])
def test_fused_equals_chunked_values_and_gradients(argnums):
  _check(argnums)


def test_fused_one_chunk_and_padding():
  _check((0, 1, 2), chunk=64)  # one chunk: the whole 13 positions
  _check((0, 1, 2), chunk=5)  # 13 positions: padded to 15


@pytest.mark.slow
def test_fused_under_a_mesh_reduces_over_the_batch_shards():
  """Mesh (data 2, fsdp 2, tensor 2): 4 rows split over data x fsdp, one row per shard."""
  _check((0, 2), mesh_shape=(2, 2, 2))
  _check((0, 1, 2), mesh_shape=(2, 2, 2), batch=8)
  h, m0, m1, t, w = _data()
  with sharding.mesh_context(sharding.make_mesh((2, 2, 2))):
    # Without jax.grad (evaluation): the forward-only chunks, sums reduced over shards.
    got = jax.jit(lambda h: _fused(h, m0, m1, t, w, 4))(h)
    want = jax.jit(lambda h: _chunked(h, m0, m1, t, w, 4))(h)
    for k in ("nll", "weight", "correct"):
      np.testing.assert_allclose(got[k], want[k], rtol=1e-5, err_msg=k)
    f = jax.grad(lambda h, m1: _fused(h, m0, m1, t, w, 4)["nll"], argnums=(0, 1))
    jaxpr = jax.make_jaxpr(f)(h, m1).jaxpr
  (fwd,) = _eqns(jaxpr, "shard_map")  # the gradient pass is the shard_map's scan
  assert set(fwd.params["newly_manual_axes"]) == {"data", "fsdp"}
  assert len(_eqns(jaxpr, "psum")) == 3  # nll, correct, d m1: once per call, not per chunk


def test_fused_batch_not_divisible_by_the_mesh_runs_unsharded():
  _check((0, 1, 2), mesh_shape=(2, 2, 2), batch=2)


def _eqns(jaxpr, name: str) -> list:
  """Every `name` equation in a jaxpr, inner jaxprs (scan, shard_map, custom_vjp) included."""
  out = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == name:
      out.append(eqn)
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      out.extend(_eqns(sub, name))
  return out


def _dot_generals(jaxpr) -> list:
  return _eqns(jaxpr, "dot_general")


def test_frozen_matrix_gets_no_weight_gradient_matmul():
  """Differentiating only (h, m1): the [d, V0] weight gradient of the frozen m0 is never
  computed; the gradient pass is 1 forward + 1 input-gradient + 1 weight-gradient matmul
  per chunk and no recompute of the logits."""
  h, m0, m1, t, w = _data()

  def count(argnums):
    f = jax.grad(lambda h, m0, m1: _fused(h, m0, m1, t, w, 4)["nll"], argnums=argnums)
    return [tuple(e.outvars[0].aval.shape) for e in _dot_generals(jax.make_jaxpr(f)(h, m0, m1).jaxpr)]

  both = count((0, 1, 2))
  frozen = count((0, 2))
  assert sorted(both) == sorted([(4, 4, V0 + V1), (4, 4, D), (D, V0), (D, V1)])
  assert sorted(frozen) == sorted([(4, 4, V0 + V1), (4, 4, D), (D, V1)])


@pytest.mark.slow
@pytest.mark.parametrize("trainable,tied", [(("vision",), False),
                                           (("vision", "llm_attention", "llm"), False),
                                           (("vision",), True)])
def test_model_loss_impl_fused_equals_chunked(trainable, tied):
  """SynerGenVL with loss_impl="fused" (both heads, a text-target budget) == "chunked":
  loss sums and the gradients of the trainable subtree, for a stage that freezes the LLM
  (frozen LM head, trainable new-token rows), one that trains everything, and tied
  embeddings (the output matrices are the transposed embedding tables)."""
  import dataclasses
  from synergen_jax.model import SynerGenVL
  from synergen_jax.state import freezing
  from tests import model_utils as mu

  base = mu.tiny_config(max_text_targets=24, tie_embeddings=tied)
  b = mu.batch(base, "generation", seed=3)
  params = mu.init(base, b)["params"]
  tr, fr = freezing.split(params, trainable)

  def run(loss_impl):
    cfg = dataclasses.replace(base, loss_impl=loss_impl)

    def loss(tr):
      out = SynerGenVL(cfg).apply({"params": freezing.merge(tr, fr)}, b)
      return out["text_nll"] + 2.0 * out["image_nll"], out

    return jax.jit(jax.value_and_grad(loss, has_aux=True))(tr)

  (l_c, o_c), g_c = run("chunked")
  (l_f, o_f), g_f = run("fused")
  np.testing.assert_allclose(l_f, l_c, rtol=1e-5)
  for key in ("text_nll", "text_weight", "text_correct", "image_nll", "image_weight",
              "image_correct"):
    np.testing.assert_allclose(o_f[key], o_c[key], rtol=1e-5, err_msg=key)
  assert float(o_c["image_weight"]) > 0 and float(o_c["text_weight"]) > 0
  # atol: float32 summation order, against gradients of magnitude up to ~10 here
  jax.tree.map(lambda a, c: np.testing.assert_allclose(a, c, rtol=2e-4, atol=5e-5), g_f, g_c)
