"""Benchmark loaders on files in each distributed format (tests/bench_fixtures.py), bad
rows skipped and counted by reason, scoring a predictions file end to end, and the
`score` CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from data_pipelines.sources import image_io
from synergen_jax.evaluation.benchmarks import (load_geneval, prompts, records, registry)
from tests import bench_fixtures as fx

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _load(name, root):
  skips = records.Skips()
  items = list(registry.get(name).load(str(root), skips))
  return items, skips.as_dict()


@pytest.mark.parametrize("writer", [fx.write_vqav2_json, fx.write_vqav2_parquet])
def test_vqav2_both_formats(tmp_path, writer):
  expected_skips = writer(str(tmp_path))
  items, skips = _load("vqav2", tmp_path)
  assert skips == expected_skips
  assert [it["question_id"] for it in items] == [1, 2, 3]
  assert items[1]["gt"]["answers"] == fx.VQA_GT[2][1]
  assert items[0]["image"].decode().shape == (48, 48, 3)
  assert prompts.build("vqav2", items[0]) == (
      "How many dogs?\nAnswer the question using a single word or phrase.")
  m = registry.score_predictions(registry.get("vqav2"), str(tmp_path),
                                 {"1": "Two.", "2": "red", "3": "no"}, {})
  assert m["accuracy"] == pytest.approx((100 + 60 + 0) / 3)
  assert m["accuracy/number"] == 100.0 and m["predictions"] == 3


@pytest.mark.parametrize("writer", [fx.write_textvqa_json, fx.write_textvqa_parquet])
def test_textvqa_both_formats(tmp_path, writer):
  expected = writer(str(tmp_path))
  items, skips = _load("textvqa", tmp_path)
  assert skips == expected and [it["question_id"] for it in items] == [10]
  assert items[0]["ocr_tokens"] == ["NOKIA"]
  assert prompts.build("textvqa", items[0], "lmms_eval_ocr") == (
      "What brand is this?\nReference OCR token: NOKIA\n"
      "Answer the question using a single word or phrase.")
  m = registry.score_predictions(registry.get("textvqa"), str(tmp_path), {"10": "Nokia,"}, {})
  assert m["accuracy"] == pytest.approx(90.0)


def test_gqa(tmp_path):
  expected = fx.write_gqa(str(tmp_path))
  items, skips = _load("gqa", tmp_path)
  assert skips == expected and [it["key"] for it in items] == ["201", "202"]
  m = registry.score_predictions(registry.get("gqa"), str(tmp_path),
                                 {"201": "Yes.", "202": "plate"}, {})
  assert m["accuracy"] == 50.0 and m["accuracy/verify"] == 100.0


def test_pope_jsonl_splits_and_bad_rows(tmp_path):
  expected = fx.write_pope(str(tmp_path))
  items, skips = _load("pope", tmp_path)
  assert skips == expected
  assert [it["key"] for it in items] == ["popular/1", "popular/2", "random/1", "random/2",
                                        "random/3", "random/4"]
  assert items[0]["fields"] == {"split": "popular"}


def test_mme_parquet_by_row_group(tmp_path):
  expected = fx.write_mme(str(tmp_path))
  items, skips = _load("mme", tmp_path)
  assert skips == expected and len(items) == 7
  assert items[0]["key"] == f"{fx.MME_ROWS[0][0]}\t{fx.MME_ROWS[0][1]}"
  with pytest.raises(image_io.ImageDecodeError):
    items[-1]["image"].decode()                     # found when decoded: the runner skips it
  assert prompts.build("mme", items[0]) == fx.MME_ROWS[0][1]
  assert prompts.build("mme", items[0], "lmms_eval") == (
      "Is there a dog in this image?\nAnswer the question using a single word or phrase.")


def test_mmbench_tsv_rotations_and_image_references(tmp_path):
  expected = fx.write_mmbench(str(tmp_path))
  items, skips = _load("mmbench", tmp_path)
  assert skips == expected
  assert [it["question_id"] for it in items] == [r[0] for r in fx.MMBENCH_ROWS]
  main, rotated = items[0]["image"].decode(), items[1]["image"].decode()
  np.testing.assert_array_equal(main, rotated)     # the rotation reads the main row's image
  assert items[0]["gt"]["options"] == {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}
  assert items[4]["gt"]["hint"] is None and items[4]["gt"]["options"] == {"A": "yes", "B": "no"}
  assert prompts.build("mmbench", items[0]) == (
      "A photo. What animal is shown? There are several options:\nA. cat\nB. dog\nC. bird\n"
      "D. fish\nAnswer with the option's letter from the given choices directly.")
  assert prompts.build("mmbench", items[4], "vlmevalkit") == (
      "Question: Is the left box bigger?\nOptions:\nA. yes\nB. no\n"
      "Please select the correct answer from the options above. \n")


def test_mmmu_parquet_per_subject_and_multi_image_questions(tmp_path):
  expected = fx.write_mmmu(str(tmp_path))
  items, skips = _load("mmmu", tmp_path)
  assert skips == expected
  assert [it["key"] for it in items] == ["validation_Art_1", "validation_Art_2",
                                         "validation_Math_1"]
  assert items[0]["gt"]["options"] == ["cat", "dog", "bird", "fish"]
  assert items[0]["gt"]["subject"] == "Art"
  assert prompts.build("mmmu", items[0]) == (
      "<image 1> Which animal is this?\nA. cat\nB. dog\nC. bird\nD. fish\n\n"
      "Answer with the option's letter from the given choices directly.")
  m = registry.score_predictions(registry.get("mmmu"), str(tmp_path),
                                 {"validation_Art_1": "(B)", "validation_Art_2": "it is 5",
                                  "validation_Math_1": "B"}, {})
  assert m["accuracy"] == pytest.approx(200 / 3) and m["accuracy/Math"] == 0.0
  assert m["skipped/multiple_images"] == 1


def test_geneval_metadata(tmp_path):
  skips = records.Skips()
  expected = fx.write_geneval_metadata(str(tmp_path / "m.jsonl"))
  rows = list(load_geneval.load_metadata(str(tmp_path / "m.jsonl"), skips))
  assert [i for i, _ in rows] == [0, 1, 2] and skips.as_dict() == expected
  assert rows[2][1]["include"][1]["position"] == ["right of", 0]


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "synergen_jax.score", *args], capture_output=True,
                        text=True, cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"),
                        timeout=120)


def _score_files(tmp_path):
  """POPE fixture files, a predictions file for them, and a GenEval results file."""
  data = tmp_path / "pope"
  data.mkdir()
  fx.write_pope(str(data), bad_rows=False)
  answers = {("random", 1): "yes", ("random", 2): "Yes, there is.", ("random", 3): "no",
             ("random", 4): "yes", ("popular", 1): "no", ("popular", 2): "no"}
  pred = tmp_path / "pred.jsonl"
  pred.write_text("".join(json.dumps({"question_id": q, "split": s, "answer": a}) + "\n"
                          for (s, q), a in answers.items()))
  results = tmp_path / "results.jsonl"
  results.write_text("".join(json.dumps({"tag": t, "correct": c, "metadata": m}) + "\n"
                             for t, c, m in [("single_object", True, "a"),
                                             ("counting", False, "b"),
                                             ("counting", True, "b")]))
  return data, pred, results


def test_score_pope_and_geneval_files(tmp_path):
  """What the `score` CLI runs (its flags as the options)."""
  from synergen_jax.evaluation.benchmarks.score_file import score_file
  data, pred, results = _score_files(tmp_path)

  def score(benchmark, data_dir, predictions, pope_parse=None):
    return score_file(benchmark, data_dir, str(predictions),
                      {"normalization": None, "pope_convention": pope_parse, "seed": 42})

  m = score("pope", str(data), pred)
  assert m["accuracy"] == 50.0 and m["f1"] == pytest.approx(100 / 3)
  assert m["random/recall"] == 100.0 and m["missing_predictions"] == 0
  assert score("pope", str(data), pred, "llava")["random/f1"] == pytest.approx(80.0)
  assert score("geneval", None, results)["overall"] == pytest.approx(0.75)
  with pytest.raises(FileNotFoundError, match="is not a directory"):
    score("pope", f"{tmp_path}/nowhere", pred)


@pytest.mark.slow
def test_score_cli_pope_and_a_bad_input(tmp_path):
  """`python -m synergen_jax.score`: its flags reach the scorer, the metrics are JSON on
  the last line; a bad input is its message on stderr, status 2."""
  data, pred, _ = _score_files(tmp_path)
  r = _cli("--benchmark=pope", f"--benchmark_data={data}", f"--predictions={pred}",
           "--pope_parse=llava")
  assert r.returncode == 0, r.stderr
  m = json.loads(r.stdout.strip().splitlines()[-1])
  assert m["random/f1"] == pytest.approx(80.0)  # --pope_parse reached the scorer
  r = _cli("--benchmark=pope", f"--benchmark_data={tmp_path}/nowhere", f"--predictions={pred}")
  assert r.returncode == 2 and "is not a directory" in r.stderr


def test_mme_scored_from_a_predictions_file(tmp_path):
  fx.write_mme(str(tmp_path))
  answers = ["Yes", "No", "Yes", "Yes", "yes", "no"]  # image 001: one of two right
  pred = tmp_path / "pred.jsonl"
  pred.write_text("".join(json.dumps({"question_id": q, "question": t, "answer": a}) + "\n"
                          for (q, t, _, _), a in zip(fx.MME_ROWS, answers)))
  from synergen_jax.evaluation.benchmarks import predictions
  bench = registry.get("mme")
  preds, bad = predictions.read(str(pred), bench.key_of)
  m = registry.score_predictions(bench, str(tmp_path), preds, {})
  assert (m["existence"], m["code_reasoning"]) == (125.0, 200.0)
  assert (m["perception"], m["cognition"]) == (125.0, 200.0)
  # Scoring reads no image column: the two scene rows (bad or missing image) are
  # questions without predictions here; `evaluate` skips and counts them by reason.
  assert m["missing_predictions"] == 2 and m["skipped"] == 0 and bad == 0


def test_vqav2_evalai_result_file(tmp_path):
  from synergen_jax.evaluation.benchmarks import runner
  fx.write_vqav2_json(str(tmp_path))
  bench = registry.get("vqav2")
  items = list(bench.load(str(tmp_path), records.Skips(), images=False))
  path = runner.write_submission(bench, str(tmp_path), {"1": "2", "3": "yes"}, items)
  assert json.loads(open(path).read()) == [{"question_id": 1, "answer": "2"},
                                           {"question_id": 3, "answer": "yes"}]
  assert runner.write_submission(registry.get("pope"), str(tmp_path), {}, []) is None


def test_vqav2_test_questions_without_annotations_are_not_scored(tmp_path):
  fx.write_vqav2_json(str(tmp_path))
  os.remove(tmp_path / "v2_mscoco_val2014_annotations.json")
  items, skips = _load("vqav2", tmp_path)
  assert [it["gt"]["answers"] for it in items] == [None] * 3 and skips == {"missing_image": 1}
  m = registry.score_predictions(registry.get("vqav2"), str(tmp_path), {"1": "2"}, {})
  assert m["scored"] == 0 and "accuracy" not in m and m["predictions"] == 1
