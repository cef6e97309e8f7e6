"""One sharded forward + backward pass of a model on a synthetic batch.

  python -m synergen_jax.demo_step --config=experiments/demo.py

Builds the mesh from the config over the present devices, initialises the model
sharded, runs a jitted loss-and-gradient step on a random but well-formed
understanding + generation batch, and prints the loss, metrics and shapes. (The
trainer issue replaces this with the demo experiment as the README's main job.)
"""

import time

from absl import app
from absl import flags
from ml_collections import config_flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from synergen_jax import sharding
from synergen_jax.model import ModelConfig, SynerGenVL
from synergen_jax.model.losses import combine_task_losses
from synergen_jax.model.synthetic import synthetic_task_batch

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/demo.py", "Experiment config.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Rows per task batch.")
_LENGTH = flags.DEFINE_integer("length", 128, "Tokens per row.")


def main(argv):
  del argv
  cfg = _CONFIG.value
  config = ModelConfig.from_config_dict(cfg.model)
  mesh = sharding.make_mesh(cfg.mesh.shape)
  model = SynerGenVL(config)
  rng = np.random.default_rng(cfg.seed)
  batches = {
      "understanding": synthetic_task_batch(config, rng, _BATCH.value, _LENGTH.value,
                                            task="understanding"),
      "generation": synthetic_task_batch(config, rng, _BATCH.value, _LENGTH.value,
                                         task="generation"),
  }
  print(f"devices: {jax.device_count()} x {jax.devices()[0].platform}; mesh {dict(mesh.shape)}")
  for task, b in batches.items():
    print(f"{task:>13s} batch: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in b.items()))

  variables, var_shardings = sharding.sharded_init(
      model.init, mesh, jax.random.key(cfg.seed), batches["understanding"])
  params = variables["params"]
  n_params = sum(x.size for x in jax.tree.leaves(params))
  print(f"parameters: {n_params:,d}")

  def loss_fn(p, batches):
    outs = {t: model.apply({"params": p}, b) for t, b in batches.items()}
    return combine_task_losses(outs, config.image_loss_weight)

  batch_sh = {t: sharding.batch_sharding(mesh, b) for t, b in batches.items()}
  step = jax.jit(jax.value_and_grad(loss_fn, has_aux=True),
                 in_shardings=(var_shardings["params"], batch_sh),
                 out_shardings=None)
  with jax.set_mesh(mesh), nn.logical_axis_rules(sharding.LOGICAL_RULES):
    batches = {t: jax.device_put(b, batch_sh[t]) for t, b in batches.items()}
    t0 = time.perf_counter()
    (loss, metrics), grads = step(params, batches)
    loss.block_until_ready()
    t1 = time.perf_counter()
    (loss, metrics), grads = step(params, batches)
    loss.block_until_ready()
    t2 = time.perf_counter()
  grad_norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(grads)))
  print(f"loss {float(loss):.4f}  (text {float(metrics['text_loss']):.4f}, "
        f"image {float(metrics['image_loss']):.4f}, lambda {config.image_loss_weight})")
  print(f"grad norm {float(grad_norm):.4f}; first step (compile) {t1 - t0:.1f}s, "
        f"second step {t2 - t1:.3f}s")
  for k in sorted(metrics):
    if "/" in k:
      print(f"  {k:<40s}{float(metrics[k]):.4f}")


def run():
  app.run(main)


if __name__ == "__main__":
  run()
