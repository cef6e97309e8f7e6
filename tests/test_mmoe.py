"""MMoE: sorted (each token runs only its expert) == reference, values and gradients; routing."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from synergen_jax.model.mmoe import MMoE

E, F = 16, 32


def _setup(seed=0, frac_image=0.4):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(3, 10, E)), jnp.float32)
  is_image = jnp.asarray(rng.random((3, 10)) < frac_image)
  v = nn.unbox(MMoE(E, F, impl="reference").init(jax.random.key(seed), x, is_image))
  return x, is_image, v


def test_sorted_equals_reference_values_and_gradients():
  x, is_image, v = _setup()
  ref, srt = MMoE(E, F, impl="reference"), MMoE(E, F, impl="sorted")
  np.testing.assert_allclose(jax.jit(srt.apply)(v, x, is_image),
                             jax.jit(ref.apply)(v, x, is_image), rtol=1e-5, atol=1e-5)
  w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 10, E)), jnp.float32)

  def loss(mod):
    return jax.jit(jax.grad(lambda p, x: jnp.sum(w * mod.apply(p, x, is_image)), (0, 1)))

  gp_ref, gx_ref = loss(ref)(v, x)
  gp_srt, gx_srt = loss(srt)(v, x)
  np.testing.assert_allclose(gx_srt, gx_ref, rtol=1e-5, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
               gp_srt, gp_ref)
  # Both experts did get gradient (both modalities are present).
  assert float(jnp.abs(gp_srt["params"]["vision_ffn"]["gate"]).sum()) > 0
  assert float(jnp.abs(gp_srt["params"]["text_ffn"]["gate"]).sum()) > 0


def test_routing_is_by_modality():
  x, is_image, v = _setup()
  p = v["params"]

  def ffn(w, x):
    return (jax.nn.silu(x @ w["gate"]) * (x @ w["up"])) @ w["down"]

  want = jnp.where(is_image[..., None], ffn(p["vision_ffn"], x), ffn(p["text_ffn"], x))
  for impl in ("reference", "sorted"):
    np.testing.assert_allclose(MMoE(E, F, impl=impl).apply(v, x, is_image), want, rtol=1e-5,
                               atol=1e-5)


def test_all_text_tokens_ignore_vision_expert_and_edge_cases():
  x, _, v = _setup()
  for frac in (0.0, 1.0):
    is_image = jnp.full(x.shape[:2], frac > 0.5)
    outs = [MMoE(E, F, impl=i).apply(v, x, is_image) for i in ("reference", "sorted")]
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-5)
  no_image = jnp.zeros(x.shape[:2], bool)
  v2 = jax.tree.map(lambda a: a, v)
  v2["params"]["vision_ffn"] = jax.tree.map(lambda a: a * 3.0 + 1.0, v["params"]["vision_ffn"])
  for impl in ("reference", "sorted"):
    m = MMoE(E, F, impl=impl)
    np.testing.assert_allclose(m.apply(v2, x, no_image), m.apply(v, x, no_image), atol=1e-6)


def test_vision_experts_off_is_a_plain_ffn():
  x, is_image, _ = _setup()
  m = MMoE(E, F, vision_experts=False)
  v = nn.unbox(m.init(jax.random.key(0), x, is_image))
  assert set(v["params"]) == {"text_ffn"}
  p = v["params"]["text_ffn"]
  want = (jax.nn.silu(x @ p["gate"]) * (x @ p["up"])) @ p["down"]
  np.testing.assert_allclose(m.apply(v, x, is_image), want, rtol=1e-5, atol=1e-5)
