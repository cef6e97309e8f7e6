"""MME from the lmms-lab/MME parquet export (test split): question_id (the image path,
e.g. "code_reasoning/0020.png", shared by the image's two questions), question (ends
with " Please answer yes or no."), answer ("Yes"/"No"), category, image.

  data_dir/**/*.parquet   streamed by row group

A prediction is keyed by (question_id, question): prediction lines carry "question".
gt = {"answer": "yes"|"no", "category", "image_key": question_id}.
"""

from synergen_jax.evaluation.benchmarks import records as rec

_GT_COLUMNS = ["question_id", "question", "answer", "category"]


def load(data_dir: str, skips: rec.Skips, images: bool = True):
  files = rec.parquet_files(data_dir)
  if not files:
    raise FileNotFoundError(f"{data_dir}: no *.parquet (MME layout: docs/EVALUATION.md)")
  for row in rec.parquet_rows(files, None if images else _GT_COLUMNS):
    if not rec.present(row, "question_id", "question", "answer", "category"):
      skips.add(rec.MISSING_FIELD)
      continue
    answer = str(row["answer"]).strip().lower()
    if answer not in ("yes", "no"):
      skips.add("bad_answer")
      continue
    img = None
    if images:
      img = rec.cell_image(row.get("image"), skips)
      if img is None:
        continue
    qid = str(row["question_id"])
    yield {"key": f"{qid}\t{row['question']}", "question_id": qid,
           "question": row["question"], "image": img,
           "gt": {"answer": answer, "category": row["category"], "image_key": qid},
           "fields": {"question": row["question"]}}
