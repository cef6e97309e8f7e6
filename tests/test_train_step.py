"""The train step: 8-device sharded (+ gradient accumulation) equals one device; frozen
parameters stay bit-identical; target-weight accounting matches the model."""

import jax
import numpy as np
import pytest

from synergen_jax import sharding
from synergen_jax.model import ModelConfig
from synergen_jax.model.synthetic import synthetic_task_batch
from synergen_jax.configs import models
from synergen_jax import experiment
from synergen_jax.state import freezing
from synergen_jax.state import train_state as state_lib
from synergen_jax.training import step as step_lib

pytestmark = pytest.mark.slow  # training steps on two meshes (~65 s of compile)

GROUPS = ("vision", "llm_attention")  # stage 2: llm (embeddings, text FFN, norms) frozen
TASKS = ("understanding", "generation")
FAST_COMPILE = {"xla_backend_optimization_level": 0}  # tests: compile time over run time


def _batches(config, seed):
  rng = np.random.default_rng(seed)
  return {"understanding": synthetic_task_batch(config, rng, 8, 32, "understanding"),
          "generation": synthetic_task_batch(config, rng, 8, 24, "generation")}


def _run(config, mesh, accum, steps=2):
  opt = experiment.Optimizer.from_config(
      dict(lr=1e-2, warmup_steps=0, schedule="constant", weight_decay=0.1))
  spec = state_lib.StateSpec(config, mesh, GROUPS, opt, 10, FAST_COMPILE)
  params0 = spec.init_params(0)
  host0 = jax.device_get(params0)
  state = spec.state_from_params(params0)
  fn = step_lib.make_train_step(spec, TASKS, accum, FAST_COMPILE)
  history = []
  with sharding.mesh_context(mesh):
    for i in range(steps):
      state, metrics = fn(state, _batches(config, i))
      history.append(jax.device_get(metrics))
  return host0, jax.device_get(state), history, spec


@pytest.fixture(scope="module")
def runs():
  config = ModelConfig.from_config_dict(models.tiny())
  single = sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1])
  multi = sharding.make_mesh((2, 2, 2))
  return config, _run(config, single, accum=1), _run(config, multi, accum=2)


def test_sharded_accumulated_step_equals_single_device(runs):
  _, (p0_a, state_a, hist_a, _), (p0_b, state_b, hist_b, _) = runs
  jax.tree.map(np.testing.assert_array_equal, p0_a, p0_b)  # same init on both meshes
  for ma, mb in zip(hist_a, hist_b):
    for k in ("loss", "text_loss", "image_loss", "grad_norm", "understanding/text_tokens",
              "generation/image_codes"):
      np.testing.assert_allclose(ma[k], mb[k], rtol=2e-5, atol=1e-6, err_msg=k)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=5e-5),
               state_a.params, state_b.params)
  assert int(state_a.step) == int(state_b.step) == 2


def test_frozen_params_are_bit_identical_and_trained_ones_move(runs):
  _, (p0, state, _, spec), _ = runs
  trained0, frozen0 = freezing.split(p0, GROUPS)
  trained1, frozen1 = freezing.split(state.params, GROUPS)
  jax.tree.map(np.testing.assert_array_equal, frozen0, frozen1)
  moved = jax.tree.leaves(jax.tree.map(lambda a, b: bool(np.any(a != b)), trained0, trained1))
  assert all(moved)
  # Optimizer state exists for the trainable subtree only.
  n_trainable = freezing.num_elements(trained0)
  assert freezing.num_bytes(state.opt_state) <= 8 * n_trainable + 64
  assert freezing.num_elements(frozen0) > 0


def test_target_weights_match_the_model(runs):
  config, (_, _, hist, _), _ = runs
  for task, b in _batches(config, 0).items():
    text, image = step_lib.target_weights(b, config.max_gen_patches)
    np.testing.assert_allclose(float(text), hist[0][f"{task}/text_tokens"])
    np.testing.assert_allclose(float(image), hist[0][f"{task}/image_codes"])


def test_tpu_execution_settings_train_like_the_default_path(runs):
  """The TPU experiments' execution settings (megablox MMoE, fused cross-entropy, a text
  target budget that holds every target, the qkv_ffn remat policy) in the 8-device step
  with 2 micro-batches and frozen LLM weights: the same losses, gradient norms and
  updated parameters as the default path on one device."""
  import dataclasses
  config, (p0_a, state_a, hist_a, _), _ = runs
  tpu = dataclasses.replace(config, mmoe_impl="gmm", loss_impl="fused", max_text_targets=32,
                            remat_policy="qkv_ffn")
  p0_b, state_b, hist_b, _ = _run(tpu, sharding.make_mesh((2, 2, 2)), accum=2)
  jax.tree.map(np.testing.assert_array_equal, p0_a, p0_b)
  for ma, mb in zip(hist_a, hist_b):
    for k in ("loss", "text_loss", "image_loss", "grad_norm", "understanding/text_tokens"):
      np.testing.assert_allclose(ma[k], mb[k], rtol=2e-5, atol=1e-6, err_msg=k)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=5e-5),
               state_a.params, state_b.params)


def test_stage_head_budget_that_holds_every_patch_trains_the_same(runs):
  """A stage's own `max_gen_patches` (Stage.max_gen_patches): a buffer that holds every
  image-target patch of the rows gives the same step as the model's larger one (here
  with gradient accumulation against without); a smaller one drops patches and counts
  them."""
  import dataclasses
  from synergen_jax.training import head_budgets
  config, _, _ = runs
  held = int(max(head_budgets.row_targets(_batches(config, i)["generation"])["image"].max()
                 for i in range(2)))
  assert 1 < held
  big = dataclasses.replace(config, max_gen_patches=held + 8)
  mesh = sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1])
  opt = experiment.Optimizer.from_config(dict(lr=1e-2, warmup_steps=0, schedule="constant"))
  spec = state_lib.StateSpec(big, mesh, GROUPS, opt, 10, FAST_COMPILE)
  params0 = spec.init_params(0)

  def train(budget, accum):
    fn = step_lib.make_train_step(spec, TASKS, accum, FAST_COMPILE, max_gen_patches=budget)
    state, history = spec.state_from_params(params0), []
    with sharding.mesh_context(mesh):
      for i in range(2):
        state, metrics = fn(state, _batches(config, i))
        history.append(jax.device_get(metrics))
    return jax.device_get(state.params), history

  p_model, h_model = train(None, 1)  # the model's buffer: held + 8
  p_stage, h_stage = train(held, 2)  # 2 micro-batches: target_weights use it too
  for ma, mb in zip(h_model, h_stage):
    for k in ("loss", "image_loss", "grad_norm", "generation/image_codes"):
      np.testing.assert_allclose(ma[k], mb[k], rtol=2e-5, atol=1e-6, err_msg=k)
    assert float(mb["generation/image_patches_dropped"]) == 0
  # (Adam at lr 1e-2 moves a near-zero gradient's weight by ~lr: 2e-4 is 2% of a step)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4),
               p_model, p_stage)
  _, h_small = train(held - 1, 1)
  assert float(h_small[0]["generation/image_patches_dropped"]) >= 1
  assert float(h_small[0]["generation/image_codes"]) < float(h_model[0]["generation/image_codes"])
