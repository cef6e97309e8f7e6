"""MMBench from its TSV (VLMEvalKit's MMBench_DEV_EN.tsv and the like), streamed line
by line: index, question, hint, A, B, C, D, E (missing or NaN when absent), answer
(missing on test), category, l2-category, split, image (base64).

The circular copies are rows of their own: index + k * 1e6 for rotation k. A row whose
image cell is short (<= 64 characters) names the index of the row holding the image
(VLMEvalKit's space saving); it is read from that row when decoded, which must come
earlier in the file. The image bytes stay in the file until decoded (ImageRef.tsv).

  data_dir/*.tsv   (the first one)

gt = {"answer": letter or None, "options": {letter: text}, "hint", "category",
      "l2_category", "group": index % 1e6}.
"""

from synergen_jax.evaluation.benchmarks import records as rec

LETTERS = "ABCDEFGHI"
ROTATION = 1_000_000


def load(data_dir: str, skips: rec.Skips, images: bool = True):
  files = rec.find(data_dir, "*.tsv")
  if not files:
    raise FileNotFoundError(f"{data_dir}: no *.tsv (MMBench layout: docs/EVALUATION.md)")
  path = files[0]
  image_at = {}  # index -> byte offset of the row that holds its image
  for offset, row, image_col in rec.tsv_reader(path):
    if not rec.present(row, "index", "question"):
      skips.add(rec.MISSING_FIELD)
      continue
    try:
      index = int(float(row["index"]))
    except ValueError:
      skips.add(rec.MISSING_FIELD)
      continue
    options = {c: row[c] for c in LETTERS if rec.present(row, c)}
    if len(options) < 2:
      skips.add("fewer_than_2_options")
      continue
    cell = row.get("image", "")
    img = None
    if image_col is None or not cell:
      skips.add(rec.MISSING_IMAGE)
      continue
    if len(cell) > 64:
      image_at[index] = offset
      img = rec.ImageRef(tsv=(path, offset, image_col))
    else:
      try:
        ref = image_at[int(float(cell))]
      except (KeyError, ValueError):
        skips.add(rec.MISSING_IMAGE)
        continue
      img = rec.ImageRef(tsv=(path, ref, image_col))
    answer = row.get("answer", "").strip() or None
    hint = row.get("hint", "") if rec.present(row, "hint") else None
    yield {"key": str(index), "question_id": index, "question": row["question"],
           "image": img if images else None,
           "gt": {"answer": answer, "options": options, "hint": hint,
                  "category": row.get("category") or "unknown",
                  "l2_category": row.get("l2-category") or row.get("L2-category") or "unknown",
                  "group": index % ROTATION},
           "fields": {}}
