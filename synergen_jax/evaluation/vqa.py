"""VQA exact match per question type (the embedded dataset's QA_TYPES), and the
majority-answer baseline per type (what answering without looking scores), and a
stricter blind baseline: the majority answer per question wording (`/wording_majority`:
"What color is the circle?" answered with the commonest answer of the OTHER questions so
worded, leave-one-out, so a wording asked once cannot answer itself; the type's majority
when no other question has its wording).

  questions(records, max_questions) -> [{"image", "question", "answer", "type"}]
  normalize(answer) -> str
  score(items, predictions, prefix) -> flat metrics {prefix/overall, prefix/<type>, ...}
  swap_images(items) -> the same questions, each asked about another record's image
  same_answer_rate(a, b) -> share of predictions that did not change
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
  by_wording = collections.defaultdict(collections.Counter)
  for item, pred in zip(items, predictions):
    t = item["type"]
    gold = normalize(item["answer"])
    total[t] += 1
    right[t] += int(normalize(pred) == gold)
    answers[t][gold] += 1
    by_wording[normalize(item["question"])][gold] += 1
  out = {}
  n = sum(total.values())
  if n:
    out[f"{prefix}/overall"] = sum(right.values()) / n
    out[f"{prefix}/overall_majority"] = sum(c.most_common(1)[0][1] for c in answers.values()) / n
    out[f"{prefix}/wording_majority"] = _leave_one_out_majority(items, by_wording, answers) / n
    out[f"{prefix}/questions"] = n
  for t in sorted(total):
    out[f"{prefix}/{t}"] = right[t] / total[t]
    out[f"{prefix}/{t}_majority"] = answers[t].most_common(1)[0][1] / total[t]
    out[f"{prefix}/{t}_questions"] = total[t]
  return out


def _leave_one_out_majority(items, by_wording, by_type) -> int:
  """How many items the blind wording-majority predictor answers right: each item gets
  the commonest answer among the other items with its wording (ties: the answer counted
  first), else among the other items of its type."""
  right = 0
  for item in items:
    gold = normalize(item["answer"])
    for counts in (by_wording[normalize(item["question"])], by_type[item["type"]]):
      others = counts.copy()
      others[gold] -= 1
      others = +others  # drop answers left at zero
      if others:
        right += int(others.most_common(1)[0][0] == gold)
        break
  return right


def swap_images(items: list[dict]) -> list[dict]:
  """The image-dependence control: every question asked about another record's image.

  Records (by `id`, in order of appearance) are rotated by half their count, so each
  question meets the image of a record far away in the split; answers stay those of the
  question's own image. A model that looks at its images loses its answers here; one
  that answers from the question's wording keeps them.
  """
  ids = list(dict.fromkeys(it["id"] for it in items))
  if len(ids) < 2:
    raise ValueError(f"the image-swap control needs questions about >= 2 images, got {len(ids)}")
  image_of = {}
  for it in items:
    image_of.setdefault(it["id"], it["image"])
  shift = len(ids) // 2
  other = {rid: ids[(i + shift) % len(ids)] for i, rid in enumerate(ids)}
  return [dict(it, image=image_of[other[it["id"]]], image_id=other[it["id"]]) for it in items]


def same_answer_rate(a: list[str], b: list[str]) -> float:
  """Share of answers that are equal (after `normalize`) in two prediction lists."""
  if len(a) != len(b) or not a:
    raise ValueError(f"need two equally long, non-empty prediction lists, got {len(a)} and "
                     f"{len(b)}")
  return sum(normalize(x) == normalize(y) for x, y in zip(a, b)) / len(a)
