"""VQA exact match per question type (the embedded dataset's QA_TYPES), and the
majority-answer baseline per type (what answering without looking scores).

  questions(records, max_questions) -> [{"image", "question", "answer", "type"}]
  normalize(answer) -> str
  score(items, predictions, prefix) -> flat metrics {prefix/overall, prefix/<type>, ...}
"""

import collections
import re


def questions(records, max_questions: int = 0) -> list[dict]:
  """Every (question, answer) of the records, in order, up to max_questions (0 = all)."""
  out = []
  for raw in records:
    types = raw.question_types or ["unknown"] * len(raw.questions)
    for q, a, t in zip(raw.questions, raw.answers, types):
      out.append({"image": raw.image, "question": q, "answer": a, "type": t, "id": raw.id})
      if max_questions and len(out) >= max_questions:
        return out
  return out


def normalize(answer: str) -> str:
  """Lower case, no surrounding space or final full stop, single spaces."""
  a = re.sub(r"\s+", " ", answer.strip().lower())
  return a[:-1].rstrip() if a.endswith(".") else a


def score(items: list[dict], predictions: list[str], prefix: str) -> dict:
  """Exact-match accuracy overall and per type, question counts (`/questions`,
  `/<type>_questions`) and the majority-answer baseline (`/<type>_majority`)."""
  if len(items) != len(predictions):
    raise ValueError(f"{len(items)} questions but {len(predictions)} predictions")
  right = collections.Counter()
  total = collections.Counter()
  answers = collections.defaultdict(collections.Counter)
  for item, pred in zip(items, predictions):
    t = item["type"]
    gold = normalize(item["answer"])
    total[t] += 1
    right[t] += int(normalize(pred) == gold)
    answers[t][gold] += 1
  out = {}
  n = sum(total.values())
  if n:
    out[f"{prefix}/overall"] = sum(right.values()) / n
    out[f"{prefix}/overall_majority"] = sum(c.most_common(1)[0][1] for c in answers.values()) / n
    out[f"{prefix}/questions"] = n
  for t in sorted(total):
    out[f"{prefix}/{t}"] = right[t] / total[t]
    out[f"{prefix}/{t}_majority"] = answers[t].most_common(1)[0][1] / total[t]
    out[f"{prefix}/{t}_questions"] = total[t]
  return out
