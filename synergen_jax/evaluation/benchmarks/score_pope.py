"""POPE metrics per split and their mean (positive = "yes").

  score(items, preds, convention="lmms_eval") -> {accuracy, precision, recall, f1,
      yes_ratio (means over the splits, 0-100), <split>/<metric>, <split>/questions}

Per split, with the answer parsed by yes_no.pope(convention): TP = yes for a yes
question, FP = yes for a no question, FN = no for a yes question; accuracy = right /
N; precision = TP / (TP + FP); recall = TP / (TP + FN); F1 = 2PR / (P + R) (0 where a
denominator is 0, as lmms-eval); yes_ratio = answers parsed as yes / N (LLaVA's
eval_pope.py: lmms-eval's own yes-ratio counts the GT labels, always 50%). An "other"
answer is wrong and counts in neither TP, FP nor FN (lmms-eval's aggregation).
Papers usually quote the F1 (or accuracy) averaged over the three splits.
"""

from synergen_jax.evaluation.benchmarks import yes_no

METRICS = ("accuracy", "precision", "recall", "f1", "yes_ratio")


def split_metrics(pairs: list[tuple[str, str]]) -> dict:
  """pairs: (parsed prediction, label) -> the five metrics in 0-100."""
  tp = sum(p == "yes" and g == "yes" for p, g in pairs)
  fp = sum(p == "yes" and g == "no" for p, g in pairs)
  fn = sum(p == "no" and g == "yes" for p, g in pairs)
  n = len(pairs)
  precision = tp / (tp + fp) if tp + fp else 0.0
  recall = tp / (tp + fn) if tp + fn else 0.0
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  return {"accuracy": 100 * sum(p == g for p, g in pairs) / n, "precision": 100 * precision,
          "recall": 100 * recall, "f1": 100 * f1,
          "yes_ratio": 100 * sum(p == "yes" for p, _ in pairs) / n}


def score(items, preds, convention: str = "lmms_eval") -> dict:
  by_split: dict[str, list] = {}
  for it in items:
    by_split.setdefault(it["gt"]["split"], []).append(
        (yes_no.pope(preds[it["key"]], convention), it["gt"]["label"]))
  out = {}
  per = {s: split_metrics(pairs) for s, pairs in sorted(by_split.items())}
  for s, m in per.items():
    out.update({f"{s}/{k}": v for k, v in m.items()})
    out[f"{s}/questions"] = len(by_split[s])
  for k in METRICS:
    out[k] = sum(m[k] for m in per.values()) / len(per) if per else 0.0
  out["scored"] = sum(len(v) for v in by_split.values())
  return out
