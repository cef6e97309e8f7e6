"""MMoE: sorted (each token runs only its expert) == reference, values and gradients; routing.
The Pallas megablox path (impl="gmm") == reference too, its kernels in interpret mode."""

import collections
import functools

import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from synergen_jax import sharding
from synergen_jax.model import mmoe as mmoe_lib
from synergen_jax.model.config import ModelConfig
from synergen_jax.model.decoder import Decoder
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


# The Pallas megablox path (impl="gmm"): on CPU its kernels run in interpret mode, so
# these compare the very kernels the TPU runs (tiny shapes: interpret mode is slow).


@functools.lru_cache(maxsize=None)
def _value_and_grads(e, f, impl, tiles):
  """Jitted (gradients w.r.t. params and x, output), cached so cases share compiles."""
  del tiles  # part of the cache key only (tests that change the kernel tiles)
  mod = MMoE(e, f, impl=impl)

  def loss(p, x, is_image, w):
    y = mod.apply(p, x, is_image)
    return jnp.sum(w * y), y

  return jax.jit(jax.grad(loss, (0, 1), has_aux=True))


def _check_gmm(x, is_image, v, e, f, atol=1e-5):
  """gmm == reference: values, and gradients w.r.t. the input and both experts."""
  w = jnp.asarray(np.random.default_rng(1).normal(size=x.shape), jnp.float32)
  tiles = (mmoe_lib.GMM_TILE_ROWS, mmoe_lib.GMM_TILE_COLS)
  (gp_ref, gx_ref), y_ref = _value_and_grads(e, f, "reference", tiles)(v, x, is_image, w)
  (gp_gmm, gx_gmm), y_gmm = _value_and_grads(e, f, "gmm", tiles)(v, x, is_image, w)
  errs = {"values": float(jnp.abs(y_gmm - y_ref).max()),
          "d_x": float(jnp.abs(gx_gmm - gx_ref).max())}
  for expert in ("text_ffn", "vision_ffn"):
    for k in ("gate", "up", "down"):
      errs[f"d_{expert}/{k}"] = float(jnp.abs(gp_gmm["params"][expert][k]
                                              - gp_ref["params"][expert][k]).max())
  print("gmm - reference, max abs:", errs)
  assert max(errs.values()) <= atol, errs
  return gp_gmm


@pytest.mark.parametrize("frac_image", [0.4, 0.0, 1.0])  # mixed, all text, all image
def test_gmm_equals_reference_values_and_gradients(frac_image):
  x, _, v = _setup()
  # 3 x 10 = 30 tokens: padded to the 32-row tile with zero rows (see _gmm_experts_local).
  is_image = jnp.asarray(np.random.default_rng(2).random((3, 10)) < frac_image)
  g = _check_gmm(x, is_image, v, E, F)
  for expert, present in (("text_ffn", frac_image < 1), ("vision_ffn", frac_image > 0)):
    got = float(jnp.abs(g["params"][expert]["gate"]).sum())
    assert (got > 0) == present, (expert, got)


@pytest.mark.slow
def test_gmm_with_several_tiles_per_dim(monkeypatch):
  """16-row tiles (30 tokens: 2 row tiles, the text/image boundary inside one, 2 pad
  rows) and 128-wide model-dim tiles (embed 256: 2 tiles, mlp 384: 3), so the kernels
  accumulate over contracting tiles and visit shared row tiles once per group; with the
  text expert frozen, the one-group tgmm (group offset 1) starts in the shared tile."""
  monkeypatch.setattr(mmoe_lib, "GMM_TILE_ROWS", 16)
  monkeypatch.setattr(mmoe_lib, "GMM_TILE_COLS", 128)
  e, f = 256, 384
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(3, 10, e)), jnp.float32)
  is_image = jnp.asarray(rng.random((3, 10)) < 0.5)
  v = nn.unbox(MMoE(e, f, impl="reference").init(jax.random.key(3), x, is_image))
  _check_gmm(x, is_image, v, e, f, atol=1e-4)
  _check_frozen(x, is_image, v, ("vision_ffn",), atol=1e-4)


@pytest.mark.slow
def test_gmm_under_a_mesh_runs_per_shard():
  """The 8-fake-device mesh (data 2, fsdp 2, tensor 2): one shard_map manual over every
  axis, rows split over data x fsdp (2 rows of 10 per shard: padded to 16)."""
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(8, 10, E)), jnp.float32)
  is_image = jnp.asarray(rng.random((8, 10)) < 0.5).at[:2].set(True).at[2:4].set(False)
  v = nn.unbox(MMoE(E, F, impl="reference").init(jax.random.key(4), x, is_image))
  with sharding.mesh_context(sharding.make_mesh((2, 2, 2))):
    _check_gmm(x, is_image, v, E, F)


# Frozen experts (a training stage differentiates only the trainable params; the frozen
# ones are closed over): the gmm's custom VJP runs tgmm only for the trained experts.


def _split(params, trained):
  """(trained, frozen) subtrees of an MMoE's params by expert name."""
  return ({k: v for k, v in params.items() if k in trained},
          {k: v for k, v in params.items() if k not in trained})


@functools.lru_cache(maxsize=None)
def _partial_grads(e, f, impl, tiles, trained, wrt_x):
  """Jitted gradients w.r.t. the `trained` experts (and x if wrt_x), the other expert an
  argument of the jit but not of the grad: no tangent, as in the trainer."""
  del tiles  # part of the cache key only
  mod = MMoE(e, f, impl=impl)

  def loss(tr, frozen, x, is_image, w):
    return jnp.sum(w * mod.apply({"params": {**frozen, **tr}}, x, is_image))

  return jax.jit(jax.grad(loss, (0, 2) if wrt_x else 0))


def _check_frozen(x, is_image, v, trained, wrt_x=True, atol=1e-5):
  """gmm == reference for the gradients of a partial parameter set."""
  w = jnp.asarray(np.random.default_rng(1).normal(size=x.shape), jnp.float32)
  tr, frozen = _split(v["params"], trained)
  key = (x.shape[-1], tr[trained[0]]["gate"].shape[1])
  tiles = (mmoe_lib.GMM_TILE_ROWS, mmoe_lib.GMM_TILE_COLS)
  ref = _partial_grads(*key, "reference", tiles, trained, wrt_x)(tr, frozen, x, is_image, w)
  got = _partial_grads(*key, "gmm", tiles, trained, wrt_x)(tr, frozen, x, is_image, w)
  assert jax.tree.structure(got) == jax.tree.structure(ref)
  errs = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), got, ref)
  print("gmm - reference, max abs:", errs)
  assert max(jax.tree.leaves(errs)) <= atol, errs
  return got


@pytest.mark.parametrize("trained,frac_image,wrt_x", [
    (("vision_ffn",), 0.4, True), (("text_ffn",), 0.4, True),
    (("vision_ffn",), 0.4, False),  # no input gradient either: only the tgmm
    (("vision_ffn",), 0.0, True),   # the vision group is the 2 pad rows only
    (("text_ffn",), 1.0, True),     # the text group is empty
])
def test_gmm_gradients_of_one_expert_equal_reference(trained, frac_image, wrt_x):
  x, _, v = _setup()
  is_image = jnp.asarray(np.random.default_rng(2).random((3, 10)) < frac_image)
  g = _check_frozen(x, is_image, v, trained, wrt_x)
  gp = g[0] if wrt_x else g
  assert set(gp) == set(trained)
  present = frac_image > 0 if trained == ("vision_ffn",) else frac_image < 1
  assert (float(jnp.abs(gp[trained[0]]["gate"]).sum()) > 0) == present


@pytest.mark.slow
def test_gmm_gradient_of_the_vision_expert_under_a_mesh():
  """The frozen text expert through the shard_map (as test_gmm_under_a_mesh_...)."""
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(8, 10, E)), jnp.float32)
  is_image = jnp.asarray(rng.random((8, 10)) < 0.5).at[:2].set(True).at[2:4].set(False)
  v = nn.unbox(MMoE(E, F, impl="reference").init(jax.random.key(4), x, is_image))
  with sharding.mesh_context(sharding.make_mesh((2, 2, 2))):
    _check_frozen(x, is_image, v, ("vision_ffn",))


def _tgmm_calls(jaxpr, outer=()):
  """[(output shape, name stack, enclosing primitives)] of every megablox tgmm (a jit
  named tgmm) in a jaxpr and the jaxprs nested in it (scan, remat, shard_map, ...)."""
  found = []
  for eqn in jaxpr.eqns:
    if eqn.params.get("name") == "tgmm":
      found.append((eqn.outvars[0].aval.shape, str(eqn.source_info.name_stack), outer))
    for p in eqn.params.values():
      for sub in p if isinstance(p, (tuple, list)) else (p,):
        if isinstance(sub, jax.extend.core.ClosedJaxpr):
          sub = sub.jaxpr
        if isinstance(sub, jax.extend.core.Jaxpr):
          found += _tgmm_calls(sub, outer + (eqn.primitive.name,))
  return found


@pytest.mark.parametrize("trained,groups,scope", [
    (("vision_ffn",), 1, "vision_expert_wgrad"), (("text_ffn",), 1, "text_expert_wgrad"),
    (("text_ffn", "vision_ffn"), 2, None), (("attention",), 0, None)])
def test_gmm_computes_the_weight_gradient_of_trained_experts_only(trained, groups, scope):
  """A 2-layer scanned decoder, full remat, under the 8-device mesh (the shard_map):
  the backward of the training step (traced, not run) has one tgmm per expert kernel
  (gate, up, down) with one output group per trained expert, named by its scope; none
  when no expert is trained (attention only: the FFN input gradient still flows)."""
  mlp = 32
  dec = Decoder(2, dict(num_heads=2, num_kv_heads=1, head_dim=8, mlp_dim=mlp,
                        rope_theta=1e4, norm_eps=1e-6, mmoe_impl="gmm"),
                remat_policy="full")
  x = jnp.ones((4, 8, E))
  pos = jnp.broadcast_to(jnp.arange(8), (4, 8))
  seg = jnp.ones((4, 8), jnp.int32)
  is_image = jnp.arange(32).reshape(4, 8) % 2 == 0
  params = nn.unbox(jax.eval_shape(dec.init, jax.random.key(0), x, pos, seg, is_image))
  block = params["params"]["layers"]["block"]  # shapes only: the step is traced, not run
  tr = {k: v for k, v in {**block, **block["mmoe"]}.items() if k in trained}
  frozen = {k: v for k, v in block["mmoe"].items() if k not in trained}

  def loss(tr, frozen, params, x):
    block = params["params"]["layers"]["block"]
    mmoe = {**frozen, **{k: v for k, v in tr.items() if k in block["mmoe"]}}
    block = {**block, **{k: v for k, v in tr.items() if k in block}, "mmoe": mmoe}
    p = {**params["params"], "layers": {"block": block}}
    return jnp.sum(dec.apply({"params": p}, x, pos, seg, is_image))

  with sharding.mesh_context(sharding.make_mesh((2, 2, 2))):
    jaxpr = jax.make_jaxpr(jax.grad(loss))(tr, frozen, params, x).jaxpr
  calls = _tgmm_calls(jaxpr)
  want = sorted([(groups, E, mlp), (groups, E, mlp), (groups, mlp, E)] if groups else [])
  assert sorted(shape for shape, _, _ in calls) == want, calls
  for _, stack, outer in calls:
    # The layer scan, the remat (primitive remat2 in JAX 0.10), the shard_map.
    assert {"scan", "shard_map"} <= set(outer), outer
    assert any(o.startswith(("remat", "checkpoint")) for o in outer), outer
    assert (scope in stack) if scope else "expert_wgrad" not in stack, stack


def _matmuls(jaxpr) -> collections.Counter:
  """Matmul primitives (dot_general, ragged_dot_general, Pallas calls) in a jaxpr and the
  jaxprs nested in it."""
  count = collections.Counter()
  for eqn in jaxpr.eqns:
    if "dot" in eqn.primitive.name or eqn.primitive.name == "pallas_call":
      count[eqn.primitive.name] += 1
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      count.update(_matmuls(sub))
  return count


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["reference", "sorted", "gmm"])
def test_remat_policies_that_keep_the_ffn_outputs_recompute_no_ffn_matmul(impl):
  """The backward of a remat'ed, scanned decoder (traced under the 8-device mesh): with
  `qkv_ffn` / `ffn` the FFN's grouped matmuls (ragged_dot / megablox kernels) are not
  recomputed, as without remat; `full` recomputes gate and up; `qkv_ffn` recomputes
  fewer XLA matmuls than `full` (only the attention's)."""
  def counts(policy):
    dec = Decoder(2, dict(num_heads=2, num_kv_heads=1, head_dim=8, mlp_dim=32,
                          rope_theta=1e4, norm_eps=1e-6, mmoe_impl=impl),
                  remat_policy=policy)
    x = jnp.ones((4, 8, E))
    pos = jnp.broadcast_to(jnp.arange(8), (4, 8))
    seg = jnp.ones((4, 8), jnp.int32)
    is_image = jnp.arange(32).reshape(4, 8) % 2 == 0
    params = nn.unbox(jax.eval_shape(dec.init, jax.random.key(0), x, pos, seg, is_image))
    loss = lambda p, x: jnp.sum(dec.apply(p, x, pos, seg, is_image))
    with sharding.mesh_context(sharding.make_mesh((2, 2, 2))):
      return _matmuls(jax.make_jaxpr(jax.grad(loss))(params, x).jaxpr)

  none, full, qkv_ffn, ffn = (counts(p) for p in ("none", "full", "qkv_ffn", "ffn"))
  grouped = "dot_general" if impl == "reference" else (
      "pallas_call" if impl == "gmm" else "ragged_dot_general")
  if impl != "reference":
    assert full[grouped] == none[grouped] + 2  # gate and up recomputed
    assert qkv_ffn[grouped] == ffn[grouped] == none[grouped]
    assert none["dot_general"] < qkv_ffn["dot_general"] < ffn["dot_general"] <= full["dot_general"]
  else:
    assert none[grouped] < qkv_ffn[grouped] < ffn[grouped] < full[grouped]


def test_gmm_tiles_and_dim_errors():
  assert mmoe_lib.gmm_col_tile(896) == 896 and mmoe_lib.gmm_col_tile(4864) == 256
  assert mmoe_lib.gmm_col_tile(8192) == 1024 and mmoe_lib.gmm_col_tile(100) == 100
  with pytest.raises(ValueError, match="model.mlp_dim = 1100"):
    mmoe_lib.gmm_check_dims(896, 1100)
  with pytest.raises(ValueError, match="model.embed_dim = 1030"):
    ModelConfig(embed_dim=1030, mmoe_impl="gmm")
  ModelConfig(embed_dim=1030, mmoe_impl="sorted")  # only gmm has the constraint
