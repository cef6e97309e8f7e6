"""Benchmark files in their distributed formats, a few rows each, written into a test's
folder (images made on the fly with PIL; parquet with pyarrow; MMBench as a TSV with
base64 images). Each writer adds one or two bad rows and returns what the loader must
skip, by reason."""

import base64
import io
import json
import os

import numpy as np
import PIL.Image
import pyarrow as pa
import pyarrow.parquet as pq


def image_bytes(seed: int, size: int = 48, fmt: str = "PNG") -> bytes:
  rng = np.random.default_rng(seed)
  arr = np.zeros((size, size, 3), np.uint8)
  arr[:] = rng.integers(0, 255, 3)
  arr[size // 4: size // 2, size // 4: size // 2] = rng.integers(0, 255, 3)
  buf = io.BytesIO()
  PIL.Image.fromarray(arr).save(buf, format=fmt)
  return buf.getvalue()


def _save(path: str, data: bytes) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)


def _hf_image(data):
  return {"bytes": data, "path": None}


def _parquet(path: str, rows: list[dict], row_group_size: int = 2) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)


def _answers(words):
  return [{"answer": w, "answer_confidence": "yes", "answer_id": i + 1}
          for i, w in enumerate(words)]


VQA_GT = {  # question_id -> (question, answers[10], answer_type, question_type)
    1: ("How many dogs?", ["2"] * 4 + ["3"] * 6, "number", "how many"),
    2: ("What color is the car?", ["red"] * 2 + ["dark red"] * 8, "other", "what color is the"),
    3: ("Is it sunny?", ["yes"] * 10, "yes/no", "is it"),
}


def write_vqav2_json(root: str) -> dict:
  """Official pair + val2014/ images; question 4 has no image file (skipped)."""
  qs = [{"image_id": 100 + q, "question": v[0], "question_id": q} for q, v in VQA_GT.items()]
  qs.append({"image_id": 999, "question": "Where?", "question_id": 4})
  anns = [{"question_id": q, "image_id": 100 + q, "answer_type": v[2], "question_type": v[3],
           "multiple_choice_answer": v[1][0], "answers": _answers(v[1])}
          for q, v in VQA_GT.items()]
  anns.append({"question_id": 4, "image_id": 999, "answer_type": "other", "question_type": "where",
               "multiple_choice_answer": "here", "answers": _answers(["here"] * 10)})
  with open(os.path.join(root, "v2_OpenEnded_mscoco_val2014_questions.json"), "w") as f:
    json.dump({"data_subtype": "val2014", "questions": qs}, f)
  with open(os.path.join(root, "v2_mscoco_val2014_annotations.json"), "w") as f:
    json.dump({"annotations": anns}, f)
  for q in VQA_GT:
    _save(os.path.join(root, "val2014", f"COCO_val2014_{100 + q:012d}.jpg"),
          image_bytes(q, fmt="JPEG"))
  return {"missing_image": 1}


def write_vqav2_parquet(root: str) -> dict:
  rows = [{"question_id": q, "question": v[0], "question_type": v[3], "answer_type": v[2],
           "multiple_choice_answer": v[1][0], "answers": _answers(v[1]), "image_id": 100 + q,
           "image": _hf_image(image_bytes(q))} for q, v in VQA_GT.items()]
  rows.append(dict(rows[0], question_id=5, image=_hf_image(None)))
  _parquet(os.path.join(root, "validation-00000-of-00001.parquet"), rows)
  return {"missing_image": 1}


def write_textvqa_json(root: str) -> dict:
  data = [{"question_id": 10, "question": "what brand is this?", "image_id": "abc",
           "answers": ["nokia"] * 3 + ["nokia phone"] * 7, "ocr_tokens": ["NOKIA"]},
          {"question_id": 11, "question": "what is written?", "image_id": "missing",
           "answers": ["stop"] * 10}]
  with open(os.path.join(root, "TextVQA_0.5.1_val.json"), "w") as f:
    json.dump({"dataset_name": "textvqa", "data": data}, f)
  _save(os.path.join(root, "train_images", "abc.jpg"), image_bytes(10, fmt="JPEG"))
  return {"missing_image": 1}


def write_textvqa_parquet(root: str) -> dict:
  rows = [{"question_id": 10, "question": "what brand is this?", "image_id": "abc",
           "answers": ["nokia"] * 3 + ["nokia phone"] * 7, "ocr_tokens": ["NOKIA"],
           "image": _hf_image(image_bytes(10))},
          {"question_id": 12, "question": None, "image_id": "x", "answers": ["a"] * 10,
           "ocr_tokens": [], "image": _hf_image(image_bytes(11))}]
  _parquet(os.path.join(root, "validation.parquet"), rows)
  return {"missing_field": 1}


def write_gqa(root: str) -> dict:
  doc = {"201": {"imageId": "n1", "question": "Is the sky blue?", "answer": "yes",
                 "fullAnswer": "Yes, it is.", "types": {"structural": "verify"}},
         "202": {"imageId": "n2", "question": "What is on the table?", "answer": "cup",
                 "types": {"structural": "query"}},
         "203": {"imageId": "n3", "question": "Which?", "types": {}}}  # no answer
  with open(os.path.join(root, "testdev_balanced_questions.json"), "w") as f:
    json.dump(doc, f)
  for i in ("n1", "n2", "n3"):
    _save(os.path.join(root, "images", f"{i}.jpg"), image_bytes(int(i[1:]), fmt="JPEG"))
  return {"missing_field": 1}


POPE_ROWS = {  # split -> [(question_id, image id, object, label)]
    "random": [(1, 1, "dog", "yes"), (2, 1, "car", "yes"), (3, 2, "cat", "no"),
               (4, 2, "bus", "no")],
    "popular": [(1, 1, "dog", "yes"), (2, 2, "chair", "no")],
}


def write_pope(root: str, bad_rows: bool = True) -> dict:
  """JSON Lines in .json files + val2014/; random gets a row with a missing image and a
  torn line."""
  for split, rows in POPE_ROWS.items():
    lines = [json.dumps({"question_id": q, "image": f"COCO_val2014_{img:012d}.jpg",
                         "image_id": img, "text": f"Is there a {obj} in the image?",
                         "label": label}) for q, img, obj, label in rows]
    if bad_rows and split == "random":
      lines.append(json.dumps({"question_id": 5, "image": "COCO_val2014_000000000077.jpg",
                               "text": "Is there a cow in the image?", "label": "no"}))
      lines.append('{"question_id": 6, "image": ')
    with open(os.path.join(root, f"coco_pope_{split}.json"), "w") as f:
      f.write("\n".join(lines) + "\n")
  for img in (1, 2):
    _save(os.path.join(root, "val2014", f"COCO_val2014_{img:012d}.jpg"),
          image_bytes(img, fmt="JPEG"))
  return {"missing_image": 1, "bad_json": 1} if bad_rows else {}


MME_ROWS = [  # question_id, question, answer, category
    ("existence/000.png", "Is there a dog in this image? Please answer yes or no.", "Yes", "existence"),
    ("existence/000.png", "Is there a cat in this image? Please answer yes or no.", "No", "existence"),
    ("existence/001.png", "Is there a car in this image? Please answer yes or no.", "Yes", "existence"),
    ("existence/001.png", "Is there a bus in this image? Please answer yes or no.", "No", "existence"),
    ("code_reasoning/0020.png", "Does the code print 3? Please answer yes or no.", "Yes", "code_reasoning"),
    ("code_reasoning/0020.png", "Does the code print 4? Please answer yes or no.", "No", "code_reasoning"),
]


def write_mme(root: str) -> dict:
  rows = [{"question_id": q, "question": t, "answer": a, "category": c,
           "image": _hf_image(image_bytes(i // 2))} for i, (q, t, a, c) in enumerate(MME_ROWS)]
  rows.append({"question_id": "scene/1.png", "question": "Is it a beach? Please answer yes or no.",
               "answer": "Yes", "category": "scene", "image": _hf_image(b"not an image")})
  rows.append({"question_id": "scene/2.png", "question": "Is it? Please answer yes or no.",
               "answer": "Yes", "category": "scene", "image": None})
  _parquet(os.path.join(root, "data", "test-00000-of-00001.parquet"), rows, row_group_size=3)
  return {"missing_image": 1}  # (the undecodable one is found when decoded)


MMBENCH_ROWS = [  # index, question, hint, options, answer, category, l2-category
    (1, "What animal is shown?", "A photo.", ["cat", "dog", "bird", "fish"], "A",
     "attribute_recognition", "FP-S"),
    (1000001, "What animal is shown?", "A photo.", ["dog", "bird", "fish", "cat"], "D",
     "attribute_recognition", "FP-S"),
    (2000001, "What animal is shown?", "A photo.", ["bird", "fish", "cat", "dog"], "C",
     "attribute_recognition", "FP-S"),
    (3000001, "What animal is shown?", "A photo.", ["fish", "cat", "dog", "bird"], "B",
     "attribute_recognition", "FP-S"),
    (2, "Is the left box bigger?", "", ["yes", "no"], "B", "spatial_relationship", "RR"),
    (1000002, "Is the left box bigger?", "", ["no", "yes"], "A", "spatial_relationship", "RR"),
]


def write_mmbench(root: str) -> dict:
  """TSV with base64 images; rotated rows refer to their main row's image by index (as
  VLMEvalKit's files do); one row with one option only."""
  header = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category",
            "l2-category", "split", "image"]
  lines = ["\t".join(header)]
  for idx, q, hint, opts, ans, cat, l2 in MMBENCH_ROWS:
    opts = opts + [""] * (4 - len(opts))
    image = (base64.b64encode(image_bytes(idx)).decode() if idx < 1_000_000
             else str(idx % 1_000_000))
    lines.append("\t".join([str(idx), q, hint or "nan", *opts, ans, cat, l2, "dev", image]))
  lines.append("\t".join(["3", "Only one option?", "nan", "x", "", "", "", "A", "c", "RR",
                          "dev", base64.b64encode(image_bytes(3)).decode()]))
  with open(os.path.join(root, "MMBench_DEV_EN.tsv"), "w") as f:
    f.write("\n".join(lines) + "\n")
  return {"fewer_than_2_options": 1}


MMMU_ROWS = [  # id, question, options, answer, question_type
    ("validation_Art_1", "<image 1> Which animal is this?", "['cat', 'dog', 'bird', 'fish']",
     "B", "multiple-choice"),
    ("validation_Art_2", "What is 2 + 3? <image 1>", "[]", "5", "open"),
    ("validation_Math_1", "Which shape? <image 1>", "['circle', 'square']", "A",
     "multiple-choice"),
    ("validation_Math_2", "Compare <image 1> and <image 2>.", "['same', 'different']", "A",
     "multiple-choice"),
]


def write_mmmu(root: str) -> dict:
  for subject in ("Art", "Math"):
    rows = []
    for qid, q, opts, ans, qt in MMMU_ROWS:
      if f"_{subject}_" not in qid:
        continue
      row = {"id": qid, "question": q, "options": opts, "explanation": "", "answer": ans,
             "question_type": qt, "img_type": "['Photo']"}
      for k in range(1, 8):
        row[f"image_{k}"] = _hf_image(image_bytes(k)) if k <= 2 else None
      rows.append(row)
    _parquet(os.path.join(root, subject, "validation-00000-of-00001.parquet"), rows)
  return {"multiple_images": 1}


GENEVAL_METADATA = [
    {"tag": "single_object", "include": [{"class": "bench", "count": 1}],
     "prompt": "a photo of a bench"},
    {"tag": "counting", "include": [{"class": "clock", "count": 2}],
     "exclude": [{"class": "clock", "count": 3}], "prompt": "a photo of two clocks"},
    {"tag": "position", "include": [{"class": "teddy bear", "count": 1},
                                    {"class": "dog", "count": 1, "position": ["right of", 0]}],
     "prompt": "a photo of a dog right of a teddy bear"},
]


def write_geneval_metadata(path: str) -> dict:
  with open(path, "w") as f:
    for m in GENEVAL_METADATA:
      f.write(json.dumps(m) + "\n")
    f.write('{"tag": "colors"}\n')  # no prompt, no include
  return {"missing_field": 1}
