"""Sharding: mesh errors, the golden PartitionSpec table, sharded == single-device."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from synergen_jax import sharding
from synergen_jax.model import SynerGenVL
from synergen_jax.model.losses import combine_task_losses
from tests import model_utils as mu


def test_make_mesh_fills_minus_one_and_rejects_bad_sizes():
  assert dict(sharding.make_mesh((2, -1, 1)).shape) == {"data": 2, "fsdp": 4, "tensor": 1}
  with pytest.raises(ValueError, match="8 are present"):
    sharding.make_mesh((2, 2, 3))
  with pytest.raises(ValueError, match="at most one -1"):
    sharding.make_mesh((-1, -1, 2))
  with pytest.raises(ValueError, match="do not divide"):
    sharding.make_mesh((3, -1, 1))


# Golden table: the intended layout of every tiny-model parameter on a (2, 2, 2) mesh.
_L = None  # the stacked `layers` axis is never sharded
GOLDEN_222 = {
    "decoder/final_norm/scale": P("fsdp"),
    "decoder/layers/block/attention/key/kernel": P(_L, "fsdp", "tensor", None),
    "decoder/layers/block/attention/out/kernel": P(_L, "tensor", None, "fsdp"),
    "decoder/layers/block/attention/query/kernel": P(_L, "fsdp", "tensor", None),
    "decoder/layers/block/attention/value/kernel": P(_L, "fsdp", "tensor", None),
    "decoder/layers/block/attention_norm/scale": P(_L, "fsdp"),
    "decoder/layers/block/ffn_norm/scale": P(_L, "fsdp"),
    "decoder/layers/block/mmoe/text_ffn/down": P(_L, "tensor", "fsdp"),
    "decoder/layers/block/mmoe/text_ffn/gate": P(_L, "fsdp", "tensor"),
    "decoder/layers/block/mmoe/text_ffn/up": P(_L, "fsdp", "tensor"),
    "decoder/layers/block/mmoe/vision_ffn/down": P(_L, "tensor", "fsdp"),
    "decoder/layers/block/mmoe/vision_ffn/gate": P(_L, "fsdp", "tensor"),
    "decoder/layers/block/mmoe/vision_ffn/up": P(_L, "fsdp", "tensor"),
    "fold/code_embed": P("tensor", None),
    "fold/fc1/bias": P("tensor"),
    "fold/fc1/kernel": P("fsdp", "tensor"),
    "fold/fc2/bias": P("fsdp"),
    "fold/fc2/kernel": P("tensor", "fsdp"),
    "fold/norm/bias": P("fsdp"),
    "fold/norm/scale": P("fsdp"),
    "fold/position_embed": P(None, None, None),
    "lm_head": P("fsdp", "tensor"),
    "new_token_embed": P(None, "fsdp"),
    "new_token_head": P("fsdp", None),
    "text_embed": P("tensor", "fsdp"),
    "unfold_head/blocks/final_norm/scale": P("fsdp"),
    "unfold_head/blocks/layers/block/attention/key/kernel": P(_L, "fsdp", "tensor", None),
    "unfold_head/blocks/layers/block/attention/out/kernel": P(_L, "tensor", None, "fsdp"),
    "unfold_head/blocks/layers/block/attention/query/kernel": P(_L, "fsdp", "tensor", None),
    "unfold_head/blocks/layers/block/attention/value/kernel": P(_L, "fsdp", "tensor", None),
    "unfold_head/blocks/layers/block/attention_norm/scale": P(_L, "fsdp"),
    "unfold_head/blocks/layers/block/ffn_norm/scale": P(_L, "fsdp"),
    "unfold_head/blocks/layers/block/mlp/down/kernel": P(_L, "tensor", "fsdp"),
    "unfold_head/blocks/layers/block/mlp/gate/kernel": P(_L, "fsdp", "tensor"),
    "unfold_head/blocks/layers/block/mlp/up/kernel": P(_L, "fsdp", "tensor"),
    "unfold_head/classifier": P("fsdp", "tensor"),
    "unfold_head/code_embed": P("tensor", "fsdp"),
    "unfold_head/in_proj/kernel": P("fsdp", None),  # a mesh axis is used once per array
    "unfold_head/slot_embed": P(None, "fsdp"),
}


def _flat(tree):
  return {"/".join(str(getattr(k, "key", k)) for k in path): leaf
          for path, leaf in jax.tree_util.tree_leaves_with_path(
              tree, is_leaf=lambda x: isinstance(x, jax.sharding.NamedSharding))}


def _strip(spec):
  parts = list(spec)
  while parts and parts[-1] is None:
    parts.pop()
  return tuple(parts)


def test_every_parameter_has_its_intended_partition_spec():
  config = mu.tiny_config()
  mesh = sharding.make_mesh((2, 2, 2))
  b = mu.batch(config)
  _, shardings = sharding.abstract_and_shardings(SynerGenVL(config).init, mesh,
                                                 jax.random.key(0), b)
  got = {k: s.spec for k, s in _flat(shardings["params"]).items()}
  assert set(got) == set(GOLDEN_222)
  for name, spec in GOLDEN_222.items():
    assert _strip(got[name]) == _strip(spec), name


def test_indivisible_dims_are_replicated():
  config = mu.tiny_config()
  mesh = sharding.make_mesh((1, 1, 8))  # 4 heads, 2 KV heads: not divisible by 8
  _, shardings = sharding.abstract_and_shardings(SynerGenVL(config).init, mesh,
                                                 jax.random.key(0), mu.batch(config))
  flat = _flat(shardings["params"])
  assert _strip(flat["decoder/layers/block/attention/key/kernel"].spec) == (None, "fsdp")
  assert _strip(flat["decoder/layers/block/mmoe/text_ffn/gate"].spec) == (None, "fsdp", "tensor")


def _loss_and_grads(config, params, batches):
  model = SynerGenVL(config)

  def loss_fn(p):
    outs = {t: model.apply({"params": p}, b) for t, b in batches.items()}
    return combine_task_losses(outs, config.image_loss_weight)[0]

  return jax.value_and_grad(loss_fn)(params)


@pytest.fixture(scope="module")
def reference():
  config = mu.tiny_config(max_gen_patches=8)
  batches = {"understanding": mu.batch(config, "understanding", batch_size=8, seed=3),
             "generation": mu.batch(config, "generation", batch_size=8, seed=4)}
  params = mu.init(config, batches["understanding"])["params"]
  with jax.default_device(jax.devices()[0]):
    loss, grads = jax.jit(lambda p, b: _loss_and_grads(config, p, b))(params, batches)
  return config, batches, params, loss, grads


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(2, 2, 2), (1, 8, 1), (1, 1, 8)])
def test_sharded_forward_backward_equals_single_device(reference, shape):
  config, batches, params, want_loss, want_grads = reference
  mesh = sharding.make_mesh(shape)
  variables, shardings = sharding.sharded_init(SynerGenVL(config).init, mesh,
                                               jax.random.key(0), batches["understanding"])
  p_sh = shardings["params"]
  params_sharded = jax.device_put(params, p_sh)
  b_sh = {t: sharding.batch_sharding(mesh, b) for t, b in batches.items()}
  step = jax.jit(lambda p, b: _loss_and_grads(config, p, b), in_shardings=(p_sh, b_sh),
                 out_shardings=(None, p_sh))
  with sharding.mesh_context(mesh):
    loss, grads = step(params_sharded, batches)
  # The init itself is sharding-independent.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), variables["params"],
               params)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), grads,
               want_grads)
  # Parameters really are laid out over the mesh.
  leaf = grads["decoder"]["layers"]["block"]["mmoe"]["text_ffn"]["gate"]
  assert len(leaf.sharding.device_set) == 8
  assert jnp.ndim(leaf) == 3


def test_batch_sharding_splits_rows_over_data_and_fsdp():
  mesh = sharding.make_mesh((2, 2, 2))
  b = sharding.shard_batch(mesh, {"tokens": np.zeros((8, 16), np.int32)})
  assert b["tokens"].sharding.spec == P(("data", "fsdp"), None)
  assert b["tokens"].addressable_shards[0].data.shape == (2, 16)


@pytest.mark.slow
def test_abstract_shapes_and_state_spec_build_under_an_active_mesh():
  """Issue 14: the trainer builds its eval function lazily inside the training loop's
  `sharding.mesh_context` (a restarted run's first periodic validation); abstract params, their
  shardings and a StateSpec must come out the same with or without a mesh in context,
  and with another mesh in context."""
  from synergen_jax import experiment
  from synergen_jax import model_init
  from synergen_jax.state import train_state as state_lib
  config = mu.tiny_config()
  mesh = sharding.make_mesh((2, 2, 2))
  groups = ("vision", "llm_attention", "llm")
  opt = experiment.Optimizer.from_config()

  def build():
    model_init.abstract_params.cache_clear()  # traced again under the active mesh
    abstract, shardings = model_init.abstract_params(config, mesh)
    spec = state_lib.StateSpec(config, mesh, groups, opt, 10)
    target = model_init.with_shardings(abstract, shardings)
    return {"abstract": abstract, "specs": jax.tree.map(lambda s: s.spec, shardings),
            "state": spec.abstract, "state_specs": jax.tree.map(lambda s: s.spec,
                                                                spec.shardings),
            "target": jax.tree.map(lambda a: (a.shape, a.sharding.spec), target),
            "bytes": state_lib.opt_state_bytes_for(config, groups, opt)}

  want = build()
  assert want["specs"]["text_embed"] == P("tensor", "fsdp")
  other = sharding.make_mesh((1, 8, 1))
  for active in (mesh, other):
    with sharding.mesh_context(active):
      got = build()
    assert jax.tree.structure(got) == jax.tree.structure(want)
    jax.tree.map(lambda a, b: (a == b) or pytest.fail(f"{a} != {b}"), got, want)
  key, b = jax.random.key(0), mu.batch(config)
  with sharding.mesh_context(other):  # initialised for `mesh` while another is active
    variables, _ = sharding.sharded_init(SynerGenVL(config).init, mesh, key, b)
  leaf = variables["params"]["text_embed"]
  assert leaf.sharding.spec == P("tensor", "fsdp") and len(leaf.sharding.device_set) == 8
  # The context is restored after each build.
  with sharding.mesh_context(mesh):
    state_lib.StateSpec(config, mesh, groups, opt, 10)
    assert dict(jax.sharding.get_abstract_mesh().shape) == dict(mesh.shape)
  assert jax.sharding.get_abstract_mesh().empty
