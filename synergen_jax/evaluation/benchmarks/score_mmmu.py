"""MMMU accuracy per subject and overall (micro: every question weighs the same), with
MMMU's own parsing (mmmu_parse; the random fallback of an unparsable multiple-choice
answer is seeded per question: random.Random(f"{seed}/{question id}")).

  score(items, preds, seed=42) -> {accuracy (0-100), accuracy/<subject>,
      multiple_choice/accuracy, open/accuracy, random_fallbacks, scored}
"""

import ast
import collections
import random

from synergen_jax.evaluation.benchmarks import mmmu_parse


def _gold(answer):
  if isinstance(answer, str) and answer.startswith("["):
    try:
      return [str(a) for a in ast.literal_eval(answer)]
    except (ValueError, SyntaxError):
      return answer
  return answer


class _CountingRandom(random.Random):
  calls = 0

  def choice(self, seq):
    _CountingRandom.calls += 1
    return super().choice(seq)


def correct(item: dict, response: str, seed: int = 42) -> bool:
  gt = item["gt"]
  if gt["question_type"] == "multiple-choice" and gt["options"]:
    rng = _CountingRandom(f"{seed}/{item['question_id']}")
    letter = mmmu_parse.multi_choice(response, gt["options"], rng)
    gold = _gold(gt["answer"])
    return letter in gold if isinstance(gold, list) else letter == gold
  return mmmu_parse.eval_open(_gold(gt["answer"]), mmmu_parse.open_response(response))


def score(items, preds, seed: int = 42) -> dict:
  _CountingRandom.calls = 0
  by_subject = collections.defaultdict(list)
  by_type = collections.defaultdict(list)
  for it in items:
    ok = correct(it, preds[it["key"]], seed)
    by_subject[it["gt"]["subject"]].append(ok)
    mc = it["gt"]["question_type"] == "multiple-choice" and it["gt"]["options"]
    by_type["multiple_choice" if mc else "open"].append(ok)
  allv = [v for vs in by_subject.values() for v in vs]
  out = {"accuracy": 100 * sum(allv) / len(allv) if allv else 0.0, "scored": len(allv),
         "random_fallbacks": _CountingRandom.calls}
  out.update({f"accuracy/{s}": 100 * sum(v) / len(v) for s, v in sorted(by_subject.items())})
  out.update({f"{t}/accuracy": 100 * sum(v) / len(v) for t, v in sorted(by_type.items())})
  return out
