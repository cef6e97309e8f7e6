"""MME scores (lmms-eval tasks/mme/utils.py; the official MME calculation.py).

  score(items, preds) -> {perception, cognition, <category>, <category>/acc,
                          <category>/acc_plus, scored}

Per category: acc = 100 x the share of questions answered right (yes_no.mme parsing);
acc+ = 100 x the share of images whose questions (two per image) are all right; the
category's score is acc + acc+ (at most 200). perception sums the ten perception
categories (at most 2000), cognition the four cognition ones (at most 800).
"""

import collections

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene",
              "landmark", "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation",
             "code_reasoning")

from synergen_jax.evaluation.benchmarks import yes_no  # noqa: E402


def score(items, preds) -> dict:
  right = collections.defaultdict(list)                           # category -> [bool]
  images = collections.defaultdict(lambda: collections.defaultdict(list))
  for it in items:
    ok = yes_no.mme(preds[it["key"]]) == it["gt"]["answer"]
    cat = it["gt"]["category"]
    right[cat].append(ok)
    images[cat][it["gt"]["image_key"]].append(ok)
  out = {}
  for cat in sorted(right):
    acc = 100 * sum(right[cat]) / len(right[cat])
    acc_plus = 100 * sum(all(v) for v in images[cat].values()) / len(images[cat])
    out[f"{cat}/acc"], out[f"{cat}/acc_plus"], out[cat] = acc, acc_plus, acc + acc_plus
  out["perception"] = sum(out.get(c, 0.0) for c in PERCEPTION)
  out["cognition"] = sum(out.get(c, 0.0) for c in COGNITION)
  out["scored"] = sum(len(v) for v in right.values())
  return out
