"""Trains the VQ image tokenizer: `python -m synergen_jax.train_vq --config=X --workdir=W`.

Resumes from W; writes W/checkpoints (Orbax), W/metrics.jsonl (+ W/tensorboard),
W/eval/metrics.json and prints the validation metrics (PSNR, codebook usage, perplexity,
object recovery). The trainer is the `synergen_jax.vq_training` package.
"""

import json
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "VQ experiment file (experiments/vq_*.py)")
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (checkpoints, metrics)")
_CHECK_CONFIG = flags.DEFINE_bool("check_config", False, "Only check the VQ config (and "
                                  "that its model builds) and exit: 0 = fine, 2 = error.")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
  if _CHECK_CONFIG.value:
    from synergen_jax.vq_training.config import validate_config
    try:
      validate_config(_CONFIG.value)
      from synergen_jax.model.vq.tokenizer import VQTokenizer
      tok = VQTokenizer(_CONFIG.value.model)
    except ValueError as e:
      print(f"error: {e}", file=sys.stderr, flush=True)
      sys.exit(2)
    print(f"config OK: VQ tokenizer, downsampling {tok.factor}x", flush=True)
    return
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  from synergen_jax import preemption
  from synergen_jax.vq_training import trainer as vq_trainer
  try:
    metrics = vq_trainer.VQTrainer(_CONFIG.value).train_and_evaluate(_WORKDIR.value)
  except preemption.Preempted as e:
    print(str(e), flush=True)
    sys.exit(preemption.PREEMPTED_EXIT_CODE)
  print(json.dumps(metrics, indent=2))


def run():
  app.run(main)


if __name__ == "__main__":
  run()
