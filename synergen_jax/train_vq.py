"""Trains the VQ image tokenizer: `python -m synergen_jax.train_vq --config=X --workdir=W`.

Resumes from W; writes W/checkpoints (Orbax), W/metrics.jsonl, W/eval/metrics.json and
prints the validation metrics (PSNR, codebook usage, perplexity, object recovery).
"""

import json

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "VQ experiment file (experiments/vq_*.py)")
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (checkpoints, metrics)")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
  from synergen_jax.training.vq_trainer import VQTrainer
  metrics = VQTrainer(_CONFIG.value).train_and_evaluate(_WORKDIR.value)
  print(json.dumps(metrics, indent=2))


def run():
  app.run(main)


if __name__ == "__main__":
  run()
