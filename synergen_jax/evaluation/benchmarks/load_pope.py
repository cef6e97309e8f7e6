"""POPE from the files as distributed (AoiDragon/POPE output/coco/): JSON Lines despite
the .json name, one file per split, and the COCO val2014 images.

  data_dir/
    coco_pope_random.json, coco_pope_popular.json, coco_pope_adversarial.json
        one {"question_id", "image", "image_id"?, "text", "label"} per line
    val2014/<image>   (COCO_val2014_<12 digits>.jpg)

question_id restarts at 1 in every split, so a prediction is keyed by (split,
question_id): prediction lines carry "split" (the file's split name) when the folder
holds more than one split. Streamed line by line. gt = {"label": "yes"|"no", "split"}.
"""

import os
import re

from synergen_jax.evaluation.benchmarks import records as rec

_SPLIT = re.compile(r"pope_(\w+)\.jsonl?$")


def split_files(data_dir: str) -> dict:
  out = {}
  for p in rec.find(data_dir, "*pope_*.json*"):
    m = _SPLIT.search(os.path.basename(p))
    if m:
      out[m.group(1)] = p
  return dict(sorted(out.items()))


def load(data_dir: str, skips: rec.Skips, images: bool = True):
  files = split_files(data_dir)
  if not files:
    raise FileNotFoundError(f"{data_dir}: no coco_pope_<split>.json (POPE layout: "
                            "docs/EVALUATION.md)")
  for split, path in files.items():
    image_dir = os.path.join(os.path.dirname(path), "val2014")
    for _, row in rec.jsonl_rows(path):
      if row is None:
        skips.add(rec.BAD_JSON)
        continue
      if not rec.present(row, "question_id", "image", "text", "label"):
        skips.add(rec.MISSING_FIELD)
        continue
      label = str(row["label"]).strip().lower()
      if label not in ("yes", "no"):
        skips.add("bad_label")
        continue
      img = os.path.join(image_dir, row["image"])
      if images and not os.path.isfile(img):
        skips.add(rec.MISSING_IMAGE)
        continue
      yield {"key": f"{split}/{row['question_id']}", "question_id": row["question_id"],
             "question": row["text"], "image": rec.ImageRef(path=img),
             "gt": {"label": label, "split": split}, "fields": {"split": split}}
