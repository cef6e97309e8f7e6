"""TextVQA from the files as distributed (the official TextVQA_0.5.1_<split>.json with
its image folder, or the lmms-lab/textvqa parquet export).

  data_dir/
    TextVQA_0.5.1_val.json   {"data": [{question_id, question, image_id, answers[10],
                              ocr_tokens?, ...}]}
    train_images/<image_id>.jpg   (val images live in train_images/; images/ also works)
  or data_dir/**/*.parquet with question_id, question, image_id, answers (10 str),
    ocr_tokens, image.

gt = {"answers": [10 str] or None (test)}; the OCR tokens ride along for the optional
OCR prompt (lmms-eval's `ocr: true`).
"""

import json
import os

from synergen_jax.evaluation.benchmarks import records as rec

_GT_COLUMNS = ["question_id", "question", "image_id", "answers", "ocr_tokens"]


def _item(row, image):
  answers = row.get("answers")
  return {"key": str(row["question_id"]), "question_id": int(row["question_id"]),
          "question": row["question"], "image": image,
          "gt": {"answers": list(answers) if answers else None},
          "ocr_tokens": list(row.get("ocr_tokens") or []), "fields": {}}


def _bad_answers(row) -> bool:
  a = row.get("answers")
  return bool(a) and len(a) != 10


def load(data_dir: str, skips: rec.Skips, images: bool = True):
  docs = [p for p in rec.find(data_dir, "*.json") if "TextVQA" in os.path.basename(p)]
  if docs:
    with open(docs[0], encoding="utf-8") as f:
      rows = json.load(f)["data"]
    root = os.path.dirname(docs[0])
    folders = [d for d in ("train_images", "test_images", "images")
               if os.path.isdir(os.path.join(root, d))]
    for row in rows:
      if not rec.present(row, "question_id", "question", "image_id"):
        skips.add(rec.MISSING_FIELD)
        continue
      path = next((p for p in (os.path.join(root, d, f"{row['image_id']}.jpg") for d in folders)
                   if os.path.isfile(p)), None)
      if path is None and images:
        skips.add(rec.MISSING_IMAGE)
        continue
      if _bad_answers(row):
        skips.add("not_10_answers")
        continue
      yield _item(row, rec.ImageRef(path=path))
    return
  files = rec.parquet_files(data_dir)
  if not files:
    raise FileNotFoundError(f"{data_dir}: no TextVQA_*.json and no *.parquet (TextVQA layout: "
                            "docs/EVALUATION.md)")
  for row in rec.parquet_rows(files, None if images else _GT_COLUMNS):
    if not rec.present(row, "question_id", "question"):
      skips.add(rec.MISSING_FIELD)
      continue
    img = None
    if images:
      img = rec.cell_image(row.get("image"), skips)
      if img is None:
        continue
    if _bad_answers(row):
      skips.add("not_10_answers")
      continue
    yield _item(row, img)
