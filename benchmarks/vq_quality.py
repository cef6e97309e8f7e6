"""Quality of the VQ tokenizer vs training time: object recovery, PSNR, codebook usage.

  python benchmarks/vq_quality.py --config=experiments/vq_demo.py [--eval_at=200,400]
      [--eval_images=256] [--config.train.steps=600 ...] [--json=out.json]

Trains the config's VQ tokenizer from scratch with `VQTrainer` (the same step as
`train_vq`) and, at each `--eval_at` step and at the end, pauses the clock and
evaluates on the validation split (`vq_eval.evaluate`). Prints one row per evaluation:
step, training wall and process CPU time so far (compilation included, evaluation
excluded; CPU time is steadier than wall time on a shared machine), PSNR,
codebook usage, object recovery, and why the missed objects were missed
(`vq_eval.object_misses`; `no_color`: no connected component of the object's colour near
it survives the scorer; `shape`: one does, classified as another shape; `misses`: counts
by "shape/size->recovered shape").
Timings depend on the machine's load: report `uptime` alongside.
"""

import json
import os
import time

import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from synergen_jax.vq_training import vq_checkpoint
from synergen_jax.vq_training import data as vq_data
from synergen_jax.vq_training import eval as vq_eval
from synergen_jax.vq_training.trainer import VQTrainer

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/vq_demo.py", "VQ experiment")
_EVAL_AT = flags.DEFINE_list("eval_at", [], "steps at which to evaluate (plus the last)")
_EVAL_IMAGES = flags.DEFINE_integer("eval_images", 256, "validation images per evaluation")
_JSON = flags.DEFINE_string("json", None, "also write the rows to this JSON file")
_SAVE = flags.DEFINE_string("save", None, "write the final tokenizer as a VQ checkpoint here "
                            "(`vq_checkpoint.load_tokenizer` restores it)")


def evaluate(trainer, model_vars, images, scenes) -> dict:
  """`vq_eval` metrics plus the misses by reason (one round trip)."""
  encode_batch = trainer.tok.batch_encoder(model_vars, trainer.mesh)
  codes, recons = vq_eval.reconstruct(trainer.tok, model_vars, images, 64, encode_batch)
  m = vq_eval.metrics(trainer.config.model.codebook_size, codes, recons, images, scenes)
  _, misses = vq_eval.object_misses(recons, scenes)
  m["no_color"] = sum(n for k, n in misses.items() if k.endswith("->none"))
  m["shape"] = sum(misses.values()) - m["no_color"]
  m["misses"] = dict(misses.most_common())
  return m


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
  cfg = _CONFIG.value
  d, t = cfg.data, cfg.train
  eval_at = sorted({int(s) for s in _EVAL_AT.value if 0 < int(s) < t.steps} | {t.steps})
  images, scenes = vq_data.validation_set(_EVAL_IMAGES.value, d.image_size, d.text_prob)
  trainer = VQTrainer(cfg)
  n_params = sum(int(np.prod(a.shape)) for a in
                 jax.tree_util.tree_leaves(trainer.abstract_state()[0]["params"]))
  print(f"params={n_params} steps={t.steps} batch={d.batch_size} devices={jax.device_count()}",
        flush=True)
  rows, train_s, train_cpu = [], 0.0, 0.0
  with jax.set_mesh(trainer.mesh):
    start, start_cpu = time.time(), time.process_time()
    model_vars, train = trainer.init()
    step, first_step_s = 0, None
    for target in eval_at:
      while step < target:
        batch = vq_data.train_batch(step, d.batch_size, d.image_size, cfg.seed, d.text_prob)
        model_vars, train, metrics = trainer.step(model_vars, train, batch)
        step += 1
        if first_step_s is None:
          jax.block_until_ready(metrics)
          first_step_s = time.time() - start
      jax.block_until_ready((model_vars, metrics))
      train_s += time.time() - start
      train_cpu += time.process_time() - start_cpu
      m = evaluate(trainer, model_vars, images, scenes)
      row = {"step": step, "train_s": round(train_s, 1), "train_cpu_s": round(train_cpu, 1),
             "psnr": round(m["psnr"], 2),
             "usage": round(m["codebook_usage"], 3), "perplexity": round(m["perplexity"], 1),
             "recovery": round(m["object_recovery"], 4), "no_color": m["no_color"],
             "shape": m["shape"], "misses": m["misses"], "first_step_s": round(first_step_s, 1),
             "train_psnr": round(float(metrics["psnr"]), 2)}
      rows.append(row)
      print(json.dumps(row), flush=True)
      start, start_cpu = time.time(), time.process_time()
  print(f"load average: {os.getloadavg()}")
  if _SAVE.value:
    manager = vq_checkpoint.make_manager(_SAVE.value)
    vq_checkpoint.save(manager, step, model_vars, None, cfg)
    manager.wait_until_finished()
    manager.close()
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump({"config": cfg.to_dict(), "params": n_params, "rows": rows}, f, indent=1,
                default=str)


if __name__ == "__main__":
  app.run(main)
