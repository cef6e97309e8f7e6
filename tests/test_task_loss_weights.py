"""A stage's `text_loss_weights`: the text loss as a weighted mean of each task's own mean
(losses.combine_task_losses), the same with gradient accumulation, and checked config."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synergen_jax import experiment
from synergen_jax import sharding
from synergen_jax.configs import models
from synergen_jax.model import ModelConfig
from synergen_jax.model.losses import combine_task_losses
from synergen_jax.model.synthetic import synthetic_task_batch
from synergen_jax.state import train_state as state_lib
from synergen_jax.training import step as step_lib

FAST_COMPILE = {"xla_backend_optimization_level": 0}
WEIGHTS = (("understanding", 1.0), ("generation", 0.25))


def _out(text_nll, text_weight, image_nll=0.0, image_weight=0.0):
  z = jnp.float32(0.0)
  return {"text_nll": jnp.float32(text_nll), "text_weight": jnp.float32(text_weight),
          "text_correct": z, "image_nll": jnp.float32(image_nll),
          "image_weight": jnp.float32(image_weight), "image_correct": z,
          "image_patches_dropped": z}


def test_per_task_text_mean_by_hand():
  outs = {"understanding": _out(6.0, 3.0), "text": _out(40.0, 20.0),
          "generation": _out(1.0, 10.0, image_nll=50.0, image_weight=25.0)}
  pooled, _ = combine_task_losses(outs, 2.0)
  np.testing.assert_allclose(pooled, 47.0 / 33.0 + 2.0 * 2.0, rtol=1e-6)
  w = {"understanding": 1.0, "text": 0.5, "generation": 0.0}
  loss, m = combine_task_losses(outs, 2.0, w)
  want_text = (1.0 * 2.0 + 0.5 * 2.0 + 0.0 * 0.1) / 1.5
  np.testing.assert_allclose(m["text_loss"], want_text, rtol=1e-6)
  np.testing.assert_allclose(loss, want_text + 2.0 * 2.0, rtol=1e-6)
  # A task without text targets in this batch drops out of the mean.
  outs["text"] = _out(0.0, 0.0)
  _, m = combine_task_losses(outs, 2.0, w)
  np.testing.assert_allclose(m["text_loss"], 2.0, rtol=1e-6)


def _train(config, accum, text_loss_weights):
  opt = experiment.Optimizer.from_config(
      dict(lr=1e-2, warmup_steps=0, schedule="constant", weight_decay=0.0))
  mesh = sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1])
  spec = state_lib.StateSpec(config, mesh, ("vision", "llm_attention"), opt, 10, FAST_COMPILE)
  state = spec.state_from_params(spec.init_params(0))
  fn = step_lib.make_train_step(spec, ("understanding", "generation"), accum, FAST_COMPILE,
                                text_loss_weights)
  rng = np.random.default_rng(0)
  batches = {"understanding": synthetic_task_batch(config, rng, 4, 32, "understanding"),
             "generation": synthetic_task_batch(config, rng, 4, 24, "generation")}
  with sharding.mesh_context(mesh):
    state, metrics = fn(state, batches)
  return jax.device_get(state.params), jax.device_get(metrics)


@pytest.mark.slow  # two train steps compiled (~25 s quiet)
def test_weighted_step_equals_with_accumulation():
  config = ModelConfig.from_config_dict(models.tiny())
  p1, m1 = _train(config, 1, WEIGHTS)
  p2, m2 = _train(config, 2, WEIGHTS)
  u, g = m1["understanding/text_loss"], m1["generation/text_loss"]
  np.testing.assert_allclose(m1["text_loss"], (u + 0.25 * g) / 1.25, rtol=1e-5)
  nu, ng = m1["understanding/text_tokens"], m1["generation/text_tokens"]
  pooled = (u * nu + g * ng) / (nu + ng)
  assert abs(float(pooled) - float(m1["text_loss"])) > 1e-3  # the weights change the loss
  for k in ("loss", "text_loss", "image_loss", "grad_norm"):
    np.testing.assert_allclose(m1[k], m2[k], rtol=2e-5, atol=1e-6, err_msg=k)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=5e-5), p1, p2)


def _config(**stage_fields):
  c = experiment.base_config(models.tiny())
  c.data.vq_downsample = 16  # 64 px -> the tiny model's 4 x 4 code grid
  c.stages.s1 = experiment.make_stage("multimodal", ("vision",), 5, **stage_fields)
  c.stage_order = ("s1",)
  return c


def test_text_loss_weights_are_checked_and_resolved():
  e = experiment.resolve(_config(text_loss_weights=(("understanding", 1), ("generation", 0.5))))
  assert e.stage("s1").text_loss_weights == (("understanding", 1.0), ("generation", 0.5))
  assert experiment.resolve(_config()).stage("s1").text_loss_weights == ()
  for bad in ((("understanding", 1.0),),                       # generation not listed
              (("understanding", 1.0), ("text", 1.0)),        # text is not a task here
              (("understanding", -1.0), ("generation", 1.0)),  # negative
              (("understanding", 0.0), ("generation", 0.0))):  # all zero
    with pytest.raises(experiment.ConfigError, match=r"stages\.s1\.text_loss_weights"):
      experiment.resolve(_config(text_loss_weights=bad))
