"""Image + question -> answer with a trained workdir.

  python -m synergen_jax.answer --workdir=W --image=x.png --question="What color is the circle?"

Greedy by default (--temperature > 0 samples). Prints the answer. Exit status 2 with a
message on stderr for bad input (missing or undecodable image file, empty question, a
prompt longer than the context, missing workdir).
"""

from absl import app
from absl import flags

from synergen_jax import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir.")
_IMAGE = flags.DEFINE_string("image", None, "Image file (PNG, JPEG, ...).")
_QUESTION = flags.DEFINE_string("question", None, "The question.")
_STAGE = flags.DEFINE_string("stage", None, "Stage (default: the newest).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step of --stage.")
_VQ_DIR = flags.DEFINE_string("vq_dir", None, "VQ tokenizer workdir (default: "
                              "config.vq_tokenizer).")
_MAX_TOKENS = flags.DEFINE_integer("max_new_tokens", 32, "Answer length budget.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.0, "Sampling temperature (0 = greedy).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")


@cli.command
def main(argv):
  del argv
  from synergen_jax.inference.commands import answer_image_file  # keeps --help fast
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  print(answer_image_file(_WORKDIR.value, _IMAGE.value, _QUESTION.value, _MAX_TOKENS.value,
                          _TEMPERATURE.value, _SEED.value, _STAGE.value, _STEP.value,
                          _VQ_DIR.value))


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
