"""Text -> image with a trained workdir.

  python -m synergen_jax.generate --workdir=W --prompt="A red circle on a dark background." \
      --out=img.png [--samples=4] [--cfg_scale=7.5] [--seed=0] [--temperature=1.0]

With --samples > 1 the images are written side by side.

GenEval (docs/EVALUATION.md): every prompt of GenEval's evaluation_metadata.jsonl, in
GenEval's own layout (D/00000/metadata.jsonl, D/00000/samples/0000.png, ...), ready for
the official detector-based scorer; resumable:

  python -m synergen_jax.generate --workdir=W --geneval_metadata=FILE --outdir=D --samples=4

Exit status 2 with a message on stderr for bad input (empty prompt, prompt longer than
the context, missing workdir or metadata file).
"""

import json

from absl import app
from absl import flags

from synergen_jax import cli

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
_GENEVAL = flags.DEFINE_string("geneval_metadata", None, "GenEval's evaluation_metadata.jsonl: "
                               "generate for every prompt into --outdir.")
_OUTDIR = flags.DEFINE_string("outdir", None, "GenEval output folder (with "
                              "--geneval_metadata).")
_GENEVAL_PROMPTS = flags.DEFINE_integer("geneval_prompts", 0, "Only the first N GenEval "
                                        "prompts (0 = all).")


@cli.command
def main(argv):
  del argv
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  if _GENEVAL.value:
    _geneval()
    return
  from synergen_jax.inference.commands import generate_png  # keeps --help fast
  print(generate_png(_WORKDIR.value, _PROMPT.value, _OUT.value, _SAMPLES.value, _SEED.value,
                     _CFG.value, _TEMPERATURE.value, _TOP_K.value, _STAGE.value, _STEP.value,
                     _VQ_DIR.value))


def _geneval():
  if not _OUTDIR.value:
    raise app.UsageError("--geneval_metadata needs --outdir")
  from synergen_jax.evaluation.benchmarks import geneval_generate  # keeps --help fast
  out = geneval_generate.write_workdir_images(
      _WORKDIR.value, _GENEVAL.value, _OUTDIR.value, _SAMPLES.value, _SEED.value, _CFG.value,
      _TEMPERATURE.value, _TOP_K.value, _STAGE.value, _STEP.value, _VQ_DIR.value,
      _GENEVAL_PROMPTS.value)
  print(json.dumps(out))


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
