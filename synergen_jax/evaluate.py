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

A standard benchmark instead (docs/EVALUATION.md: layouts, prompts, scoring):

  python -m synergen_jax.evaluate --workdir=W --benchmark=NAME --benchmark_data=PATH \
      [--limit=N] [--out=DIR (default W/eval/NAME)] [--prompt=VARIANT] \
      [--normalization=...] [--pope_parse=...] [--batch_size=B] [--max_new_tokens=T]

NAME: vqav2, textvqa, gqa, pope, mme, mmbench, mmmu. Writes predictions.jsonl (appended
as answers are made; a rerun skips what is done), the EvalAI result JSON (vqav2,
textvqa), metrics.json and report.md, and prints the metrics.
"""

import json

from absl import app
from absl import flags

from synergen_jax import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir.")
_STAGE = flags.DEFINE_string("stage", None, "Stage to evaluate (default: the newest).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step of --stage (default: its final "
                             "params).")
_VQ_DIR = flags.DEFINE_string("vq_dir", None, "VQ tokenizer workdir (default: "
                              "config.vq_tokenizer).")
_OUT = flags.DEFINE_string("out", None, "Output directory (default: W/eval).")
_PARTS = flags.DEFINE_list("parts", ["vqa", "gen", "text", "timing"],
                           "What to evaluate: vqa, gen, text, timing.")
_BENCHMARK = flags.DEFINE_string("benchmark", None, "Standard benchmark to run instead of the "
                                 "scene-world evaluation: vqav2, textvqa, gqa, pope, mme, "
                                 "mmbench, mmmu.")
_BENCHMARK_DATA = flags.DEFINE_string("benchmark_data", None, "Directory holding the "
                                      "benchmark's files (docs/EVALUATION.md).")
_LIMIT = flags.DEFINE_integer("limit", None, "Only the first N questions of --benchmark.")
_PROMPT = flags.DEFINE_string("prompt", None, "Prompt variant of --benchmark (default: "
                              "lmms-eval's; docs/EVALUATION.md).")
_NORMALIZATION = flags.DEFINE_string("normalization", None, "Answer normalisation variant "
                                     "(vqav2: official | lmms_eval; gqa: lmms_eval | "
                                     "vlmevalkit).")
_POPE_PARSE = flags.DEFINE_string("pope_parse", None, "POPE yes/no parsing: lmms_eval "
                                  "(default) | llava | vlmevalkit.")
_MAX_NEW_TOKENS = flags.DEFINE_integer("max_new_tokens", None, "Answer budget of --benchmark "
                                      "(default: the benchmark's, 16 or 32).")
_OVERRIDES = {
    "vqa_questions": flags.DEFINE_integer("vqa_questions", None, "eval.vqa_questions"),
    "gen_split": flags.DEFINE_string("gen_split", None, "eval.gen_split"),
    "gen_prompts": flags.DEFINE_integer("gen_prompts", None, "eval.gen_prompts"),
    "gen_samples": flags.DEFINE_integer("gen_samples", None, "eval.gen_samples"),
    "cfg_scale": flags.DEFINE_float("cfg_scale", None, "eval.cfg_scale (0 = no CFG)"),
    "gen_temperature": flags.DEFINE_float("gen_temperature", None, "eval.gen_temperature"),
    "gen_top_k": flags.DEFINE_integer("gen_top_k", None, "eval.gen_top_k"),
    "text_batches": flags.DEFINE_integer("text_batches", None, "eval.text_batches"),
    "timing_images": flags.DEFINE_integer("timing_images", None, "eval.timing_images"),
    "batch_size": flags.DEFINE_integer("batch_size", None, "eval.batch_size"),
}


@cli.command
def main(argv):
  del argv
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  if _BENCHMARK.value:
    _run_benchmark()
    return
  from synergen_jax.evaluation.run import run_evaluation  # keeps --help fast
  metrics = run_evaluation(_WORKDIR.value, _STAGE.value, _STEP.value, _VQ_DIR.value,
                           _OUT.value, tuple(_PARTS.value),
                           {k: f.value for k, f in _OVERRIDES.items()})
  keys = [k for k in ("vqa/overall", "vqa/test/overall", "vqa/compositional/overall",
                      "vqa/swapped_image/overall", "vqa/swapped_image/same_answer",
                      "gen/overall", "gen/single_object", "text/perplexity",
                      "text/start/perplexity", "gen/speedup") if k in metrics]
  print(json.dumps({k: metrics[k] for k in keys}, indent=2))


def _run_benchmark():
  if not _BENCHMARK_DATA.value:
    raise app.UsageError("--benchmark needs --benchmark_data")
  from synergen_jax.evaluation.benchmarks import runner  # keeps --help fast
  options = {"prompt": _PROMPT.value, "normalization": _NORMALIZATION.value,
             "pope_convention": _POPE_PARSE.value, "max_new_tokens": _MAX_NEW_TOKENS.value}
  metrics = runner.run(_WORKDIR.value, _BENCHMARK.value, _BENCHMARK_DATA.value, _OUT.value,
                       _LIMIT.value, options, _STAGE.value, _STEP.value, _VQ_DIR.value,
                       _OVERRIDES["batch_size"].value)
  print(json.dumps(metrics, sort_keys=True))


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
