"""Text -> image with a trained workdir.

  python -m synergen_jax.generate --workdir=W --prompt="A red circle on a dark background." \
      --out=img.png [--samples=4] [--cfg_scale=7.5] [--seed=0] [--temperature=1.0]

With --samples > 1 the images are written side by side. Exit status 2 with a message
on stderr for bad input (empty prompt, prompt longer than the context, missing workdir).
"""

import sys

from absl import app
from absl import flags
from absl import logging

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir.")
_PROMPT = flags.DEFINE_string("prompt", None, "What to draw.")
_OUT = flags.DEFINE_string("out", None, "Output PNG path.")
_STAGE = flags.DEFINE_string("stage", None, "Stage (default: the newest).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step of --stage.")
_VQ_DIR = flags.DEFINE_string("vq_dir", None, "VQ tokenizer workdir (default: "
                              "config.vq_tokenizer).")
_SAMPLES = flags.DEFINE_integer("samples", 1, "Images to sample.")
_CFG = flags.DEFINE_float("cfg_scale", None, "Guidance scale (default: config.eval.cfg_scale; "
                          "0 = no guidance).")
_TEMPERATURE = flags.DEFINE_float("temperature", None, "Sampling temperature (0 = greedy).")
_TOP_K = flags.DEFINE_integer("top_k", None, "Top-k filter (0 = off).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from synergen_jax.inference.commands import generate_png
  from synergen_jax.inference.session import InputError
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  try:
    path = generate_png(_WORKDIR.value, _PROMPT.value, _OUT.value, _SAMPLES.value, _SEED.value,
                    _CFG.value, _TEMPERATURE.value, _TOP_K.value, _STAGE.value, _STEP.value,
                    _VQ_DIR.value)
  except (InputError, FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)
  print(path)


def run():
  app.run(main)


if __name__ == "__main__":
  run()
