"""VQAv2 / TextVQA soft accuracy and GQA exact match.

  soft_accuracy(pred, gts) -> float in [0, 1]
    The official rule (vqaEval.py): for each of the ten GT answers, min(1, #matches
    among the OTHER nine / 3); the mean of the ten. k matches of ten give 0, .3, .6, .9
    and 1.0 for k = 0, 1, 2, 3, >= 4.
  vqav2(items, preds, normalization="official") -> metrics
    official: prediction normalised (vqa_normalize.prediction), GT answers get the
    punctuation rule only when they differ (vqaEval.py). lmms_eval (tasks/vqav2/
    utils.py): the prediction goes through the EvalAI processor (so "'s" is split off
    and ',' '?' dropped); GT answers that differ get punctuation + digits/articles.
    accuracy (0-100), accuracy/<answer type>, accuracy/question_type/<type>.
  textvqa(items, preds) -> metrics: the EvalAI processor on prediction and every GT
    answer (lmms-eval tasks/textvqa/utils.py, mmf's TextVQA evaluator).
  gqa(items, preds, normalization="lmms_eval") -> metrics
    lmms_eval: exact match after lower-casing and deleting string.punctuation from
    both (lmms-eval exact_match, ignore_case + ignore_punctuation); vlmevalkit:
    strip().lower() only. accuracy (0-100), accuracy/<structural type>.
"""

import collections
import string

from synergen_jax.evaluation.benchmarks import vqa_normalize as vn

VQA_NORMALIZATIONS = ("official", "lmms_eval")
GQA_NORMALIZATIONS = ("lmms_eval", "vlmevalkit")


def soft_accuracy(pred: str, gts: list[str]) -> float:
  accs = []
  for i in range(len(gts)):
    matches = sum(1 for j, g in enumerate(gts) if j != i and g == pred)
    accs.append(min(1.0, matches / 3))
  return sum(accs) / len(accs)


def _summary(per_item: list[tuple[float, dict]]) -> dict:
  """No scored item (test questions, no answers): only the count, no accuracy."""
  if not per_item:
    return {"scored": 0}
  out = {"accuracy": 100 * sum(a for a, _ in per_item) / len(per_item),
         "scored": len(per_item)}
  groups = collections.defaultdict(list)
  for acc, tags in per_item:
    for name, value in tags.items():
      if value is not None:
        groups[f"accuracy/{name}{value}"].append(acc)
  out.update({k: 100 * sum(v) / len(v) for k, v in sorted(groups.items())})
  return out


def vqav2(items, preds, normalization: str = "official") -> dict:
  if normalization not in VQA_NORMALIZATIONS:
    raise ValueError(f"unknown VQA normalization {normalization!r}; known: {VQA_NORMALIZATIONS}")
  per_item = []
  for it in items:
    gts = it["gt"]["answers"]
    if gts is None:
      continue
    if normalization == "official":
      pred, gts = vn.prediction(preds[it["key"]]), vn.official_gt(gts)
    else:
      pred, gts = vn.lmms_eval_pair(preds[it["key"]], gts)
    per_item.append((soft_accuracy(pred, gts),
                     {"": it["gt"]["answer_type"],
                      "question_type/": it["gt"]["question_type"]}))
  return _summary(per_item)


def textvqa(items, preds) -> dict:
  per_item = []
  for it in items:
    if it["gt"]["answers"] is None:
      continue
    per_item.append((soft_accuracy(vn.evalai(preds[it["key"]]),
                                   [vn.evalai(a) for a in it["gt"]["answers"]]), {}))
  return _summary(per_item)


_NO_PUNCT = str.maketrans("", "", string.punctuation)


def gqa_match(pred: str, gold: str, normalization: str = "lmms_eval") -> bool:
  if normalization == "lmms_eval":
    return pred.lower().translate(_NO_PUNCT) == gold.lower().translate(_NO_PUNCT)
  if normalization == "vlmevalkit":
    return pred.strip().lower() == gold.strip().lower()
  raise ValueError(f"unknown GQA normalization {normalization!r}; known: {GQA_NORMALIZATIONS}")


def gqa(items, preds, normalization: str = "lmms_eval") -> dict:
  return _summary([(float(gqa_match(preds[it["key"]].strip(), it["gt"]["answer"],
                                    normalization)), {"": it["gt"]["type"]})
                   for it in items])
