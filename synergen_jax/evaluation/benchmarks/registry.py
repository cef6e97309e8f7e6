"""What each benchmark is: its loader, prompt, answer budget, prediction key, scorer
and submission file.

  get(name) -> Benchmark
  score_predictions(bench, data_dir, predictions, options, extra_skips=None,
                    keys=None) -> metrics
      Loads the GT (images not decoded; only `keys` when given), matches predictions
      by key and scores those present; counts questions, predictions, missing / unknown predictions and the
      loader's skipped rows by reason (skipped/<reason>).
  options: {"normalization", "pope_convention", "seed"} (missing -> defaults)
"""

import dataclasses
from typing import Callable

from synergen_jax.evaluation.benchmarks import (load_gqa, load_mmbench, load_mme, load_mmmu,
                                                load_pope, load_textvqa, load_vqav2, records,
                                                score_mmbench, score_mme, score_mmmu,
                                                score_pope, score_vqa)


@dataclasses.dataclass(frozen=True)
class Benchmark:
  name: str
  load: Callable              # (data_dir, skips, images=True) -> items
  score: Callable             # (items, preds, options, all_items) -> metrics
  max_new_tokens: int = 16
  key_of: Callable = lambda row: str(row["question_id"])
  submission: str | None = None  # file name of the EvalAI result JSON
  convention: str = ""        # named in metrics.json and report.md


def _mme_key(row):
  return f"{row['question_id']}\t{row['question']}"


def _mmbench_key(row):
  return str(int(float(row["question_id"])))


def _pope_key(row):
  return f"{row.get('split', '*')}/{row['question_id']}"


BENCHMARKS = {
    "vqav2": Benchmark(
        "vqav2", load_vqav2.load,
        lambda it, p, o, a: score_vqa.vqav2(it, p, o.get("normalization") or "official"),
        submission="vqav2_results.json",
        convention="lmms-eval prompt; official VQA soft accuracy (vqaEval.py)"),
    "textvqa": Benchmark(
        "textvqa", load_textvqa.load, lambda it, p, o, a: score_vqa.textvqa(it, p),
        submission="textvqa_results.json",
        convention="lmms-eval prompt (no OCR tokens); soft accuracy, EvalAI processor"),
    "gqa": Benchmark(
        "gqa", load_gqa.load,
        lambda it, p, o, a: score_vqa.gqa(it, p, o.get("normalization") or "lmms_eval"),
        convention="lmms-eval prompt; exact match ignoring case and punctuation"),
    "pope": Benchmark(
        "pope", load_pope.load,
        lambda it, p, o, a: score_pope.score(it, p, o.get("pope_convention") or "lmms_eval"),
        key_of=_pope_key, convention="lmms-eval prompt; yes/no parsing per --pope_parse"),
    "mme": Benchmark(
        "mme", load_mme.load, lambda it, p, o, a: score_mme.score(it, p), key_of=_mme_key,
        convention="question as given; MME yes/no parsing (lmms-eval / calculation.py)"),
    "mmbench": Benchmark(
        "mmbench", load_mmbench.load,
        lambda it, p, o, a: score_mmbench.score(it, p, a), max_new_tokens=32,
        key_of=_mmbench_key,
        convention="lmms-eval prompt; VLMEvalKit exact-matching extraction; circular eval"),
    "mmmu": Benchmark(
        "mmmu", load_mmmu.load,
        lambda it, p, o, a: score_mmmu.score(it, p, int(o.get("seed", 42))), max_new_tokens=32,
        convention="lmms-eval prompt; MMMU eval_utils parsing, seeded random fallback"),
}


def get(name: str) -> Benchmark:
  if name not in BENCHMARKS:
    raise ValueError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)} and geneval")
  return BENCHMARKS[name]


def _pope_fill_split(items, preds):
  splits = {it["gt"]["split"] for it in items}
  loose = [k for k in preds if k.startswith("*/")]
  if loose and len(splits) > 1:
    raise ValueError("POPE prediction lines need a \"split\" field when the data folder holds "
                     f"several splits ({sorted(splits)})")
  if loose and splits:
    only = next(iter(splits))
    for k in loose:
      preds[f"{only}/{k[2:]}"] = preds.pop(k)
  return preds


def score_predictions(bench: Benchmark, data_dir: str, preds: dict, options: dict,
                      extra_skips: dict | None = None, keys=None) -> dict:
  skips = records.Skips()
  items = list(bench.load(data_dir, skips, images=False))
  if keys is not None:
    items = [it for it in items if it["key"] in keys]
  if bench.name == "pope":
    preds = _pope_fill_split(items, dict(preds))
  have = [it for it in items if it["key"] in preds]
  metrics = dict(bench.score(have, preds, options, items)) if have else {"scored": 0}
  loaded = {it["key"] for it in items}
  metrics.update({"questions": len(items), "predictions": len(have),
                  "missing_predictions": len(items) - len(have),
                  "unknown_predictions": 0 if keys is not None else
                  sum(k not in loaded for k in preds)})
  reasons = dict(skips.as_dict())
  for k, v in (extra_skips or {}).items():
    reasons[k] = reasons.get(k, 0) + v
  metrics["skipped"] = sum(reasons.values())
  metrics.update({f"skipped/{k}": v for k, v in sorted(reasons.items())})
  return metrics
