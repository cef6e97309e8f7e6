"""MMMU from the per-subject parquet files (MMMU/MMMU on the Hub: <Subject>/
validation-*.parquet): id ("validation_Art_1"), question (with "<image i>" tags),
options (a Python list written as a string: read with ast.literal_eval, never eval),
answer, question_type ("multiple-choice" | "open"), image_1 .. image_7.

The model sees one image per question. A question whose text and options name one
image tag uses that image (image_1 when no tag appears); one naming several distinct
images is skipped and counted ("multiple_images"), never dropped silently.

  data_dir/**/*.parquet   streamed by row group

gt = {"answer", "question_type", "options": [str], "subject"}.
"""

import ast
import re

from synergen_jax.evaluation.benchmarks import records as rec

_TAG = re.compile(r"<image (\d+)>")
_SUBJECT = re.compile(r"^[a-z]+_(.+?)_\d+$")
_GT_COLUMNS = ["id", "question", "options", "answer", "question_type"]


def subject_of(qid: str) -> str:
  m = _SUBJECT.match(qid)
  return m.group(1) if m else "unknown"


def load(data_dir: str, skips: rec.Skips, images: bool = True):
  files = rec.parquet_files(data_dir)
  if not files:
    raise FileNotFoundError(f"{data_dir}: no *.parquet (MMMU layout: docs/EVALUATION.md)")
  cols = None if images else _GT_COLUMNS
  for row in rec.parquet_rows(files, cols):
    if not rec.present(row, "id", "question", "answer"):
      skips.add(rec.MISSING_FIELD)
      continue
    try:
      options = ast.literal_eval(row.get("options") or "[]")
      options = [str(o) for o in options]
    except (ValueError, SyntaxError):
      skips.add("bad_options")
      continue
    qtype = row.get("question_type") or ("multiple-choice" if options else "open")
    tags = sorted({int(t) for t in _TAG.findall(row["question"] + " " + " ".join(options))})
    if len(tags) > 1:
      skips.add("multiple_images")
      continue
    img = None
    if images:
      img = rec.cell_image(row.get(f"image_{tags[0] if tags else 1}"), skips)
      if img is None:
        continue
    yield {"key": row["id"], "question_id": row["id"], "question": row["question"],
           "image": img,
           "gt": {"answer": row["answer"], "question_type": qtype, "options": options,
                  "subject": subject_of(row["id"])},
           "fields": {}}
