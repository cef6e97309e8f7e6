"""Scores an existing predictions file against a benchmark's files, without a model
(no image is decoded), so any model's answers can be re-scored and compared with the
official tools.

  python -m synergen_jax.score --benchmark=NAME --benchmark_data=PATH --predictions=FILE
      [--normalization=official|lmms_eval (vqav2) | lmms_eval|vlmevalkit (gqa)]
      [--pope_parse=lmms_eval|llava|vlmevalkit] [--seed=42 (mmmu)] [--out=metrics.json]
  python -m synergen_jax.score --benchmark=geneval --predictions=results.jsonl

Predictions: JSON lines {"question_id": <the benchmark's own id>, "answer": "<text>"}
(MMBench: the row's index; MME lines also carry "question"; POPE lines carry "split"
when the folder holds several splits). For geneval, --predictions is the official
scorer's results.jsonl. Prints a few lines, then the metrics as one JSON object on the
last line. Exit status 2 with a message on stderr for bad input. docs/EVALUATION.md
has each benchmark's layout and metric keys.
"""

import json

from absl import app
from absl import flags

from synergen_jax import cli
from synergen_jax import files

_BENCHMARK = flags.DEFINE_string("benchmark", None, "vqav2, textvqa, gqa, pope, mme, "
                                 "mmbench, mmmu or geneval.")
_DATA = flags.DEFINE_string("benchmark_data", None, "Directory of the benchmark's files "
                            "(not needed for geneval).")
_PREDICTIONS = flags.DEFINE_string("predictions", None, "Predictions JSONL (geneval: the "
                                   "official results.jsonl).")
_NORMALIZATION = flags.DEFINE_string("normalization", None, "Answer normalisation variant "
                                     "(vqav2: official | lmms_eval; gqa: lmms_eval | "
                                     "vlmevalkit).")
_POPE_PARSE = flags.DEFINE_string("pope_parse", None, "POPE yes/no parsing: lmms_eval "
                                  "(default) | llava | vlmevalkit.")
_SEED = flags.DEFINE_integer("seed", 42, "Seed of MMMU's random fallback.")
_OUT = flags.DEFINE_string("out", None, "Also write the metrics to this JSON file.")


@cli.command
def main(argv):
  del argv
  if not _BENCHMARK.value:
    raise app.UsageError("--benchmark is required")
  from synergen_jax.evaluation.benchmarks import report, score_file  # keeps --help fast
  options = {"normalization": _NORMALIZATION.value, "pope_convention": _POPE_PARSE.value,
             "seed": _SEED.value}
  metrics = score_file.score_file(_BENCHMARK.value, _DATA.value, _PREDICTIONS.value, options)
  for k in report.HEADLINE.get(_BENCHMARK.value, []):
    if k in metrics:
      print(f"{_BENCHMARK.value} {k}: {metrics[k]:.4f}")
  if _OUT.value:
    files.write_json(_OUT.value, metrics, sort_keys=True)
  print(json.dumps(metrics, sort_keys=True))


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
