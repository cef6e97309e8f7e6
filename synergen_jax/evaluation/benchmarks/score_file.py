"""Scores an existing predictions file against a benchmark's files, without a model (no
image is decoded): what `python -m synergen_jax.score` does.

  score_file(benchmark, data_dir, predictions_path, options) -> metrics

Predictions: JSON lines {"question_id": <the benchmark's own id>, "answer": "<text>"}
(`predictions.read`); for "geneval", the official scorer's results.jsonl, summarised
(`geneval_summary`). A missing file or folder raises FileNotFoundError naming the flag.
"""

import os

from synergen_jax.evaluation.benchmarks import geneval_summary, predictions, records, registry


def score_file(benchmark: str, data_dir: str | None, predictions_path: str,
               options: dict) -> dict:
  """The metrics of `predictions_path` (options: see `registry.score_predictions`)."""
  if not predictions_path or not os.path.isfile(predictions_path):
    raise FileNotFoundError(f"--predictions {predictions_path!r} is not a file")
  if benchmark == "geneval":
    skips = records.Skips()
    metrics = geneval_summary.summarize(geneval_summary.read_results(predictions_path, skips))
    metrics["skipped"] = skips.total
    metrics.update({f"skipped/{k}": v for k, v in skips.as_dict().items()})
    return metrics
  bench = registry.get(benchmark)
  if not data_dir or not os.path.isdir(data_dir):
    raise FileNotFoundError(f"--benchmark_data {data_dir!r} is not a directory")
  preds, bad = predictions.read(predictions_path, bench.key_of)
  metrics = registry.score_predictions(bench, data_dir, preds, options)
  metrics["bad_prediction_lines"] = bad
  metrics["convention"] = bench.convention
  return metrics
