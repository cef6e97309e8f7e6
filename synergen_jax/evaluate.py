"""Evaluates a trained workdir: understanding, generation, text retention, speed.

  python -m synergen_jax.evaluate --workdir=W [--stage=S] [--step=N] [--vq_dir=V]

Restores the params onto the present devices (any mesh wrote them) and writes W/eval/
(or --out):
  metrics.json   flat keys: vqa/overall, vqa/<type> (validation), vqa/<split>/...
                 (test, compositional), gen/overall, gen/<category>, gen/reference/...
                 (the dataset's own images through the same scorer: the ceiling),
                 text/perplexity, text/accuracy, text/start/... (the params the stage
                 started from), gen/fold_s_per_image, gen/no_fold_s_per_image, ...
  generated.png  one row per prompt: its generated samples
  report.md      the tables, sample answers, and what each number means
  samples.json   sample questions with the model's answers
What is measured (question counts, prompts, samples, CFG scale, sampling) comes from
the experiment's `eval` section (`synergen_jax/experiment/defaults.py`); the flags below
override it for one run.
"""

import json
import sys

from absl import app
from absl import flags
from absl import logging

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir.")
_STAGE = flags.DEFINE_string("stage", None, "Stage to evaluate (default: the newest).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step of --stage (default: its final "
                             "params).")
_VQ_DIR = flags.DEFINE_string("vq_dir", None, "VQ tokenizer workdir (default: "
                              "config.vq_tokenizer).")
_OUT = flags.DEFINE_string("out", None, "Output directory (default: W/eval).")
_PARTS = flags.DEFINE_list("parts", ["vqa", "gen", "text", "timing"],
                           "What to evaluate: vqa, gen, text, timing.")
_OVERRIDES = {
    "vqa_questions": flags.DEFINE_integer("vqa_questions", None, "eval.vqa_questions"),
    "gen_prompts": flags.DEFINE_integer("gen_prompts", None, "eval.gen_prompts"),
    "gen_samples": flags.DEFINE_integer("gen_samples", None, "eval.gen_samples"),
    "cfg_scale": flags.DEFINE_float("cfg_scale", None, "eval.cfg_scale (0 = no CFG)"),
    "gen_temperature": flags.DEFINE_float("gen_temperature", None, "eval.gen_temperature"),
    "gen_top_k": flags.DEFINE_integer("gen_top_k", None, "eval.gen_top_k"),
    "text_batches": flags.DEFINE_integer("text_batches", None, "eval.text_batches"),
    "timing_images": flags.DEFINE_integer("timing_images", None, "eval.timing_images"),
    "batch_size": flags.DEFINE_integer("batch_size", None, "eval.batch_size"),
}


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  try:
    from synergen_jax.evaluation.run import run_evaluation
    metrics = run_evaluation(_WORKDIR.value, _STAGE.value, _STEP.value, _VQ_DIR.value,
                             _OUT.value, tuple(_PARTS.value),
                             {k: f.value for k, f in _OVERRIDES.items()})
  except (FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)
  keys = [k for k in ("vqa/overall", "vqa/test/overall", "vqa/compositional/overall",
                      "vqa/swapped_image/overall", "vqa/swapped_image/same_answer",
                      "gen/overall", "gen/single_object", "text/perplexity",
                      "text/start/perplexity", "gen/speedup") if k in metrics]
  print(json.dumps({k: metrics[k] for k in keys}, indent=2))


def run():
  app.run(main)


if __name__ == "__main__":
  run()
