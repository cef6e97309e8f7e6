"""GQA from the official release: `<split>_questions.json` (a dict {qid: {imageId,
question, answer, fullAnswer, types, ...}}, e.g. testdev_balanced_questions.json) and
the image folder images/<imageId>.jpg.

The questions file is one JSON document (read whole; testdev-balanced is 12,578
questions). gt = {"answer": str, "type": types.structural or None}.
"""

import json
import os

from synergen_jax.evaluation.benchmarks import records as rec


def load(data_dir: str, skips: rec.Skips, images: bool = True):
  files = rec.find(data_dir, "*_questions.json")
  if not files:
    raise FileNotFoundError(f"{data_dir}: no *_questions.json (GQA layout: docs/EVALUATION.md)")
  with open(files[0], encoding="utf-8") as f:
    doc = json.load(f)
  image_dir = os.path.join(os.path.dirname(files[0]), "images")
  for qid, q in doc.items():
    if not isinstance(q, dict) or not rec.present(q, "imageId", "question", "answer"):
      skips.add(rec.MISSING_FIELD)
      continue
    path = os.path.join(image_dir, f"{q['imageId']}.jpg")
    if images and not os.path.isfile(path):
      skips.add(rec.MISSING_IMAGE)
      continue
    yield {"key": str(qid), "question_id": str(qid), "question": q["question"],
           "image": rec.ImageRef(path=path),
           "gt": {"answer": q["answer"], "type": (q.get("types") or {}).get("structural")},
           "fields": {}}
