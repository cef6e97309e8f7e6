"""Trains the VQ image tokenizer: `python -m synergen_jax.train_vq --config=X --workdir=W`.

Resumes from W; writes W/checkpoints (Orbax), W/metrics.jsonl (+ W/tensorboard),
W/eval/metrics.json and prints the validation metrics (PSNR, codebook usage, perplexity,
object recovery). The trainer is the `synergen_jax.vq_training` package.
"""

import json

from absl import app, flags
from ml_collections import config_flags

from synergen_jax import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "VQ experiment file (experiments/vq_*.py)")
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (checkpoints, metrics)")
_CHECK_CONFIG = flags.DEFINE_bool("check_config", False, "Only check the VQ config (and "
                                  "that its model builds) and exit: 0 = fine, 2 = error.")


@cli.command
def main(argv):
  del argv
  from synergen_jax.vq_training import config as vq_train_config  # keeps --help fast
  if _CHECK_CONFIG.value:
    tok = vq_train_config.check_config(_CONFIG.value)
    print(f"config OK: VQ tokenizer, downsampling {tok.factor}x", flush=True)
    return
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  experiment = vq_train_config.resolve(_CONFIG.value)  # once, here: a ConfigError names the field
  from synergen_jax.vq_training import trainer as vq_trainer  # keeps --help fast
  metrics = vq_trainer.VQTrainer(experiment).train_and_evaluate(_WORKDIR.value)
  print(json.dumps(metrics, indent=2))


def run():
  cli.run(main, required=("config",))


if __name__ == "__main__":
  run()
