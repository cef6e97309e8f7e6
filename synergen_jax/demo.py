"""The demo main job: from nothing to a trained SynerGen-VL on one CPU, in one command.

  python -m synergen_jax.demo --workdir=runs/demo [--config=experiments/demo.py]

1. builds the embedded dataset (TFDS synergen_scenes 64 px + synergen_text)  W/data/tfds
2. trains the SentencePiece tokenizer                                       W/data/tokenizer.model
3. trains the VQ image tokenizer (synergen_jax.vq_training)                 W/vq
4. pretokenizes the scenes with that VQ encoder                             W/data/pretokenized
5. runs every stage of the experiment (text pretraining -> stage 1 -> stage 2 -> SFT)
6. evaluates the final model (synergen_jax.evaluate): VQA, GenEval-style generation,
   text retention, folded vs no-fold generation time              W/eval
7. writes W/report.md (+ report.json, demo_timings.json)
Every step is resumable: running the command again with the same workdir skips what is
done and resumes what is not (SIGTERM during training saves a checkpoint and exits with
status 143; in the other phases it ends the process, and the rerun redoes the phase or
resumes the VQ training from its last checkpoint). tests/test_restart.py interrupts each
phase (the SYNERGEN_SIGTERM_AT hook, see synergen_jax/preemption.py) and checks that the
rerun ends with the metrics of an uninterrupted run. The phases and the loop that runs
them: `synergen_jax/demo_phases.py`.
"""

import os

from absl import app
from absl import flags
from ml_collections import config_flags

from synergen_jax import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "experiments", "demo.py"), "Demo experiment file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.")


@cli.command
def main(argv):
  del argv
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  from synergen_jax import demo_phases  # keeps --help fast (no JAX)
  out = demo_phases.run_demo(_CONFIG.value, _WORKDIR.value,
                             config_flags.get_config_filename(flags.FLAGS["config"]))
  print(demo_phases.markdown(out))


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
