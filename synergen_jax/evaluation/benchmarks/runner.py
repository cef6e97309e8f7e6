"""Runs a trained workdir's model on a benchmark (the library behind
`python -m synergen_jax.evaluate --benchmark=NAME`).

  run(workdir, benchmark, data_dir, out_dir=None, limit=None, options=None, stage=None,
      step=None, vq_dir=None, batch_size=None, mesh=None, session=None) -> metrics

Streams the benchmark's items (the first `limit` of them), skips those already in
out_dir/predictions.jsonl (resume), decodes each image, builds the prompt
(`prompts.build`), answers batches greedily with the session's KV-cache decoder
(`InferenceSession.answer_examples`: rows padded to the batch, split over the mesh's
batch axes), appends each batch's answers to predictions.jsonl and prints a progress
line with the rate and ETA. Items whose image does not decode or whose prompt does not
fit the context are skipped, counted by reason and remembered in skipped.json. Then it
scores the predictions (`registry.score_predictions`) and writes metrics.json, the
EvalAI result JSON where the benchmark has one, and report.md.
"""

import json
import os
import time

from data_pipelines.sources import image_io
from synergen_jax import files
from synergen_jax.evaluation.benchmarks import predictions as pred_io
from synergen_jax.evaluation.benchmarks import prompts, records, registry, report
from synergen_jax.inference.session import InferenceSession, InputError
from synergen_jax.workdir import read_experiment


def log(msg: str) -> None:
  print(f"[benchmark] {msg}", flush=True)


def _eta(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def _count(bench, data_dir, limit):
  n = sum(1 for _ in bench.load(data_dir, records.Skips(), images=False))
  return min(n, limit) if limit else n


def write_submission(bench, out_dir: str, answers: dict, items: list) -> str | None:
  """The EvalAI result file: [{"question_id": int, "answer": str}] for every answered
  question (vqa.py's loadRes wants ids of the question set only)."""
  if not bench.submission:
    return None
  path = os.path.join(out_dir, bench.submission)
  rows = [{"question_id": it["question_id"], "answer": answers[it["key"]]}
          for it in items if it["key"] in answers]
  files.write_atomic(path, json.dumps(rows))
  return path


def run(workdir: str, benchmark: str, data_dir: str, out_dir: str | None = None,
        limit: int | None = None, options: dict | None = None, stage=None, step=None,
        vq_dir=None, batch_size: int | None = None, mesh=None, session=None) -> dict:
  options = dict(options or {})
  if benchmark == "geneval":
    raise ValueError("GenEval images come from `python -m synergen_jax.generate "
                     "--geneval_metadata=FILE --outdir=D`; score the official scorer's "
                     "results.jsonl with `python -m synergen_jax.score --benchmark=geneval` "
                     "(docs/EVALUATION.md)")
  bench = registry.get(benchmark)
  variant = options.get("prompt") or prompts.DEFAULT[benchmark]
  if variant not in prompts.PROMPTS[benchmark]:
    raise ValueError(f"--prompt={variant!r} is not a {benchmark} prompt; known: "
                     f"{sorted(prompts.PROMPTS[benchmark])}")
  max_new = int(options.get("max_new_tokens") or bench.max_new_tokens)
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(f"--benchmark_data {data_dir!r} is not a directory")
  out_dir = out_dir or os.path.join(os.path.abspath(workdir), "eval", benchmark)
  os.makedirs(out_dir, exist_ok=True)
  pred_path = os.path.join(out_dir, "predictions.jsonl")
  skip_path = os.path.join(out_dir, "skipped.json")
  done, bad = pred_io.read(pred_path, bench.key_of)
  skipped = json.load(open(skip_path)) if os.path.exists(skip_path) else {}
  total = _count(bench, data_dir, limit)
  if session is None:
    bs = batch_size or int(read_experiment(workdir).eval.batch_size)
    session = InferenceSession.load(workdir, stage, step, vq_dir, mesh, batch_size=bs)
  log(f"{benchmark}: {total} questions ({len(done)} answered before, {len(skipped)} "
      f"skipped before{f', {bad} torn lines ignored' if bad else ''}); prompt {variant}; "
      f"writing {out_dir}")
  appender = pred_io.Appender(pred_path)
  t0, answered, seen, first_batch_s = time.time(), 0, 0, None
  batch: list[tuple[dict, dict]] = []

  def flush():
    nonlocal answered, first_batch_s
    if not batch:
      return
    t = time.time()
    answers = session.answer_examples([ex for _, ex in batch], max_new_tokens=max_new,
                                      seed=int(options.get("seed", 0)))
    appender.write([pred_io.line(it, a) for (it, _), a in zip(batch, answers)])
    for (it, _), a in zip(batch, answers):
      done[it["key"]] = a
    answered += len(batch)
    first_batch_s = first_batch_s if first_batch_s is not None else time.time() - t
    batch.clear()
    rate = answered / max(time.time() - t0, 1e-9)
    left = total - len(done) - len(skipped)
    log(f"{benchmark}: {len(done)}/{total} answered, {rate:.2f} questions/s, "
        f"ETA {_eta(max(left, 0) / max(rate, 1e-9))}")

  loader_skips = records.Skips()
  seen_keys: set[str] = set()
  for it in bench.load(data_dir, loader_skips, images=True):
    if limit and seen >= limit:
      break
    seen += 1
    seen_keys.add(it["key"])
    if it["key"] in done or it["key"] in skipped:
      continue
    try:
      image = it["image"].decode()
      example = session.understanding_prompt(image, prompts.build(benchmark, it, variant),
                                             max_new)
    except image_io.ImageDecodeError:
      skipped[it["key"]] = records.UNDECODABLE_IMAGE
      continue
    except InputError:
      skipped[it["key"]] = "prompt_too_long"
      continue
    batch.append((it, example))
    if len(batch) == session.batch_size:
      flush()
      files.write_json(skip_path, skipped)
  flush()
  files.write_json(skip_path, skipped)
  wall = time.time() - t0
  reasons: dict[str, int] = {}
  for r in skipped.values():
    reasons[r] = reasons.get(r, 0) + 1
  metrics = registry.score_predictions(bench, data_dir, done, options, reasons,
                                      seen_keys if limit else None)
  if limit:
    metrics["limit"] = int(limit)
  metrics["run/answered_now"] = answered
  metrics["run/wall_s"] = wall
  if answered:
    metrics["run/questions_per_s"] = answered / wall
    if answered > session.batch_size and first_batch_s is not None:
      # Without the first batch (its compile): the steady rate a long run sees.
      metrics["run/questions_per_s_steady"] = (answered - session.batch_size) / (
          wall - first_batch_s)
  metrics["convention"] = f"{bench.convention}; prompt={variant}"
  sub = write_submission(bench, out_dir, done, [
      it for it in bench.load(data_dir, records.Skips(), images=False)
      if not limit or it["key"] in seen_keys])
  files.write_json(os.path.join(out_dir, "metrics.json"), metrics, sort_keys=True)
  with open(os.path.join(out_dir, "report.md"), "w") as f:
    f.write(report.markdown(benchmark, metrics, session.source, options, sub))
  log(f"{benchmark}: done in {wall:.0f}s: {out_dir}/metrics.json, report.md")
  return metrics
