"""VQAv2 from the files as distributed (GT-Vision-Lab/VQA's release, or the
lmms-lab/VQAv2 parquet export).

  data_dir/
    v2_OpenEnded_mscoco_<subtype>_questions.json   {"data_subtype", "questions": [{image_id,
                                                    question, question_id}]}
    v2_mscoco_<subtype>_annotations.json           {"annotations": [{question_id,
                                                    question_type, answer_type,
                                                    multiple_choice_answer, answers[10]}]}
                                                    (absent for test / test-dev)
    <subtype>/COCO_<subtype>_<image_id:012d>.jpg
  or data_dir/**/*.parquet with question_id, question, question_type, answer_type,
    multiple_choice_answer, answers [{answer, answer_confidence, answer_id}], image_id,
    image.

The JSON pair is one document each (read whole: ~80 MB for val); parquet is streamed
by row group. gt = {"answers": [10 str] or None, "answer_type", "question_type"}.
"""

import json
import os

from synergen_jax.evaluation.benchmarks import records as rec

_GT_COLUMNS = ["question_id", "question", "question_type", "answer_type", "answers",
               "image_id"]


def _gt(answers, answer_type, question_type):
  if answers is None:
    return {"answers": None, "answer_type": answer_type, "question_type": question_type}
  return {"answers": [a["answer"] if isinstance(a, dict) else a for a in answers],
          "answer_type": answer_type, "question_type": question_type}


def _item(qid, question, image, gt):
  return {"key": str(qid), "question_id": qid, "question": question, "image": image,
          "gt": gt, "fields": {}}


def load(data_dir: str, skips: rec.Skips, images: bool = True):
  q_files = rec.find(data_dir, "*questions.json")
  if q_files:
    yield from _load_json(data_dir, q_files[0], skips, images)
    return
  files = rec.parquet_files(data_dir)
  if not files:
    raise FileNotFoundError(f"{data_dir}: no *questions.json and no *.parquet (VQAv2 layout: "
                            "docs/EVALUATION.md)")
  cols = None if images else _GT_COLUMNS
  for row in rec.parquet_rows(files, cols):
    if not rec.present(row, "question_id", "question"):
      skips.add(rec.MISSING_FIELD)
      continue
    img = None
    if images:
      img = rec.cell_image(row.get("image"), skips)
      if img is None:
        continue
    answers = row.get("answers")
    if answers is not None and len(answers) != 10:
      skips.add("not_10_answers")
      continue
    yield _item(int(row["question_id"]), row["question"], img,
                _gt(answers, row.get("answer_type"), row.get("question_type")))


def _load_json(data_dir, q_file, skips, images):
  with open(q_file, encoding="utf-8") as f:
    qdoc = json.load(f)
  subtype = qdoc.get("data_subtype", "val2014")
  ann_files = [p for p in rec.find(data_dir, "*annotations.json")
               if subtype in os.path.basename(p)] or rec.find(data_dir, "*annotations.json")
  anns = {}
  if ann_files:
    with open(ann_files[0], encoding="utf-8") as f:
      anns = {a["question_id"]: a for a in json.load(f)["annotations"]}
  image_dir = os.path.join(os.path.dirname(q_file), subtype)
  for q in qdoc["questions"]:
    if not rec.present(q, "question_id", "question", "image_id"):
      skips.add(rec.MISSING_FIELD)
      continue
    path = os.path.join(image_dir, f"COCO_{subtype}_{int(q['image_id']):012d}.jpg")
    if images and not os.path.isfile(path):
      skips.add(rec.MISSING_IMAGE)
      continue
    a = anns.get(q["question_id"])
    if anns and a is None:
      skips.add("no_annotation")
      continue
    if a is not None and len(a.get("answers", [])) != 10:
      skips.add("not_10_answers")
      continue
    gt = (_gt(None, None, None) if a is None else
          _gt(a["answers"], a.get("answer_type"), a.get("question_type")))
    yield _item(int(q["question_id"]), q["question"], rec.ImageRef(path=path), gt)
