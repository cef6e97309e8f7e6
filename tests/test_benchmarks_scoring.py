"""The benchmark scorers against values computed by hand from the reference rules
(docs/EVALUATION.md has the same cases as a table)."""

import random

import pytest

from synergen_jax.evaluation.benchmarks import (geneval_rules, geneval_summary, mmmu_parse,
                                                options, score_mmbench, score_mme, score_mmmu,
                                                score_pope, score_vqa, vqa_normalize, yes_no)
from synergen_jax.evaluation.benchmarks.geneval_rules import Detection


@pytest.mark.parametrize("raw, expected", [
    ("Two dogs.", "2 dogs"),                 # number word; the final period goes
    ("the cat", "cat"),                      # article
    ("A red one", "red 1"),
    ("none", "0"),
    ("yes, it is", "yes it is"),             # ',' next to a space: deleted
    ("black-and-white", "black and white"),  # '-' not next to a space: a space
    ("hello - world", "hello world"),        # ' -' somewhere: every '-' deleted
    ("1,000", "1000"),                       # digit,digit: every mark deleted
    ("3.5", "3.5"),                          # a period before a digit stays
    ("U.S.A.", "usa"),
    ("(a) cat, dog", "cat dog"),             # '(' -> space, ')' and ',' deleted
    ("dont", "don't"),                       # contractions
    ("whats up", "what's up"),
    ("It's red", "it's red"),                # "'" is not punctuation here
    ("  Yes\n", "yes"),
])
def test_official_vqa_normalisation(raw, expected):
  assert vqa_normalize.prediction(raw) == expected


def test_evalai_processor_drops_commas_question_marks_and_splits_possessives():
  assert vqa_normalize.evalai("Nokia,") == "nokia"
  assert vqa_normalize.evalai("What?") == "what"
  assert vqa_normalize.evalai("John's car") == "john 's car"


@pytest.mark.parametrize("k, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0),
                                         (10, 1.0)])
def test_soft_accuracy_is_the_mean_over_the_ten_leave_one_out_subsets(k, expected):
  gts = ["x"] * k + ["y"] * (10 - k)
  assert score_vqa.soft_accuracy("x", gts) == pytest.approx(expected)


def _items(rows):
  return [{"key": str(i), "question_id": i, "gt": gt} for i, gt in enumerate(rows)]


def test_vqav2_accuracy_per_answer_type_and_the_two_gt_conventions():
  items = _items([
      {"answers": ["2"] * 4 + ["3"] * 6, "answer_type": "number", "question_type": "how many"},
      {"answers": ["red"] * 2 + ["dark red"] * 8, "answer_type": "other",
       "question_type": "what color"},
  ])
  m = score_vqa.vqav2(items, {"0": "Two.", "1": "red"})
  assert m["accuracy"] == pytest.approx(80.0)          # (1.0 + 0.6) / 2
  assert m["accuracy/number"] == pytest.approx(100.0)
  assert m["accuracy/other"] == pytest.approx(60.0)
  # Ten identical GT answers are left as released by both tools ("Two" never equals
  # the normalised "2"); lmms-eval's EvalAI processor splits "'s" off the prediction.
  same = _items([{"answers": ["Two"] * 10, "answer_type": "number", "question_type": "q"}])
  assert score_vqa.vqav2(same, {"0": "two"})["accuracy"] == 0.0
  assert score_vqa.vqav2(same, {"0": "two"}, "lmms_eval")["accuracy"] == 0.0
  mans = _items([{"answers": ["man's"] * 10, "answer_type": "other", "question_type": "q"}])
  assert score_vqa.vqav2(mans, {"0": "man's"})["accuracy"] == 100.0
  assert score_vqa.vqav2(mans, {"0": "man's"}, "lmms_eval")["accuracy"] == 0.0


def test_textvqa_and_gqa():
  items = _items([{"answers": ["nokia"] * 3 + ["nokia phone"] * 7}])
  assert score_vqa.textvqa(items, {"0": "Nokia,"})["accuracy"] == pytest.approx(90.0)
  g = _items([{"answer": "yes", "type": "verify"}, {"answer": "cup", "type": "query"}])
  assert score_vqa.gqa(g, {"0": "Yes.", "1": "a cup"})["accuracy"] == 50.0
  assert score_vqa.gqa(g, {"0": "Yes.", "1": "cup"}, "vlmevalkit")["accuracy"] == 50.0
  assert score_vqa.gqa(g, {"0": "yes", "1": "cup"}, "vlmevalkit")["accuracy/verify"] == 100.0


@pytest.mark.parametrize("text, lmms, llava, vlmevalkit", [
    ("Yes, there is.", "other", "yes", "yes"),
    ("yes", "yes", "yes", "yes"),
    (" No ", "no", "no", "no"),
    ("No, there is not.", "other", "no", "no"),
    ("Yes and no", "other", "no", "other"),
    ("There is a dog.", "other", "yes", "other"),
])
def test_pope_parsing_under_each_convention(text, lmms, llava, vlmevalkit):
  assert [yes_no.pope(text, c) for c in ("lmms_eval", "llava", "vlmevalkit")] == [
      lmms, llava, vlmevalkit]


def _pope_items():
  rows = [("random", "yes"), ("random", "yes"), ("random", "no"), ("random", "no"),
          ("popular", "yes"), ("popular", "no")]
  return [{"key": str(i), "gt": {"split": s, "label": l}} for i, (s, l) in enumerate(rows)]


def test_pope_metrics_per_split_and_their_mean():
  preds = dict(enumerate(["yes", "Yes, there is.", "no", "yes", "no", "no"]))
  preds = {str(k): v for k, v in preds.items()}
  m = score_pope.score(_pope_items(), preds)  # lmms-eval: "Yes, there is." is other
  assert m["random/accuracy"] == 50.0
  assert m["random/precision"] == 50.0        # TP 1, FP 1
  assert m["random/recall"] == 100.0          # TP 1, FN 0 (other is not a no)
  assert m["random/f1"] == pytest.approx(200 / 3)
  assert m["random/yes_ratio"] == 50.0
  assert m["popular/accuracy"] == 50.0 and m["popular/f1"] == 0.0
  assert m["f1"] == pytest.approx(100 / 3) and m["accuracy"] == 50.0
  llava = score_pope.score(_pope_items(), preds, "llava")
  assert llava["random/accuracy"] == 75.0 and llava["random/f1"] == pytest.approx(80.0)
  assert llava["random/yes_ratio"] == 75.0


def test_mme_acc_plus_needs_both_questions_of_an_image():
  rows = [("existence", "a", "yes", "Yes"), ("existence", "a", "no", "No."),
          ("existence", "b", "yes", "yes"), ("existence", "b", "no", "Yes, it is"),
          ("code_reasoning", "c", "yes", "Not sure"), ("code_reasoning", "c", "no", "n")]
  items = [{"key": str(i), "gt": {"category": c, "image_key": im, "answer": a}}
           for i, (c, im, a, _) in enumerate(rows)]
  preds = {str(i): r[3] for i, r in enumerate(rows)}
  m = score_mme.score(items, preds)
  assert (m["existence/acc"], m["existence/acc_plus"], m["existence"]) == (75.0, 50.0, 125.0)
  assert m["code_reasoning"] == 50.0  # "Not sure" -> "no" (its first 4 characters)
  assert (m["perception"], m["cognition"]) == (125.0, 50.0)


def test_mme_parsing():
  assert [yes_no.mme(t) for t in ("Yes.", "y", "x", "no way", "Maybe")] == [
      "yes", "yes", "other", "no", "other"]


def test_option_extraction():
  opts = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}
  assert options.extract("The answer is C", opts) == "C"
  assert options.extract("(B) dog", opts) == "B"
  assert options.extract("a dog", opts) == "B"                 # by the option's text
  assert options.can_infer_option("A cat sits here", opts) is None  # 'A' may be an article
  assert options.extract("A cat sits here", opts) == "A"           # ... the text decides
  assert options.extract("A bird or a fish", opts) is None         # two option texts
  assert options.extract("B or C", opts) is None
  assert options.extract("Cannot determine the answer", opts) == "Z"


def test_mmbench_circular_needs_every_rotation_right():
  rows = [(1, "A", "A"), (1000001, "D", "D. cat"), (2000001, "C", "The answer is C"),
          (3000001, "B", "A"),                       # one rotation wrong
          (2, "B", "B"), (1000002, "A", "A")]
  cats = {1: "cat1", 2: "cat2"}
  items = [{"key": str(i), "question_id": i,
            "gt": {"answer": a, "options": {"A": "w", "B": "x", "C": "y", "D": "z"},
                   "group": i % 1_000_000, "category": cats[i % 1_000_000],
                   "l2_category": "FP-S"}} for i, a, _ in rows]
  preds = {str(i): p for i, _, p in rows}
  m = score_mmbench.score(items, preds)
  assert m["circular_accuracy"] == 50.0 and m["vanilla_accuracy"] == 100.0
  assert m["circular/cat1"] == 0.0 and m["circular/cat2"] == 100.0
  assert m["groups"] == 2 and m["incomplete_groups"] == 0
  # A group missing a rotation's prediction is left out, not scored as a hit.
  part = score_mmbench.score(items[:-1], preds, items)
  assert part["groups"] == 1 and part["incomplete_groups"] == 1


def test_mmmu_option_parsing_and_seeded_fallback():
  opts = ["cat", "dog", "bird", "fish"]
  rng = random.Random(0)
  assert mmmu_parse.multi_choice("(B)", opts, rng) == "B"
  assert mmmu_parse.multi_choice("I think it is B because", opts, rng) == "B"
  assert mmmu_parse.multi_choice("C.", opts, rng) == "C"
  assert mmmu_parse.multi_choice("The animal shown in the picture is a dog", opts, rng) == "B"
  assert mmmu_parse.multi_choice("(A) or maybe (D)", opts, rng) == "D"  # the last one
  item = {"question_id": "validation_Art_1",
          "gt": {"answer": "B", "question_type": "multiple-choice", "options": opts,
                 "subject": "Art"}}
  expected = random.Random("42/validation_Art_1").choice(["A", "B", "C", "D"])
  assert expected == "C"  # the fallback for this question is fixed by its seed
  m = score_mmmu.score([dict(item, key="k")], {"k": "hmm"})
  assert m["random_fallbacks"] == 1 and m["accuracy"] == 0.0
  open_item = {"key": "o", "question_id": "validation_Art_2",
               "gt": {"answer": "5", "question_type": "open", "options": [], "subject": "Art"}}
  assert score_mmmu.score([open_item], {"o": "The answer is 5.0"})["accuracy"] == 100.0
  assert score_mmmu.score([open_item], {"o": "six"})["accuracy"] == 0.0


class _FakeDetector:
  def __init__(self, detected, colors=None):
    self.detected, self._colors = detected, colors or {}

  def detect(self, image):
    return self.detected

  def colors(self, image, detections, name):
    return [self._colors.get(name, "red")] * len(detections)


def test_geneval_relative_position_rule():
  bear = Detection((0, 0, 10, 10), 0.9)
  assert geneval_rules.relative_position(Detection((30, 0, 40, 10)), bear) == {"right of"}
  assert geneval_rules.relative_position(Detection((0, 30, 10, 40)), bear) == {"below"}
  assert geneval_rules.relative_position(Detection((1, 0, 11, 10)), bear) == set()
  assert geneval_rules.relative_position(Detection((30, 30, 40, 40)), bear) == {"right of",
                                                                                 "below"}


def test_geneval_clauses_thresholds_and_colors():
  pos = {"tag": "position", "include": [{"class": "teddy bear", "count": 1},
                                        {"class": "dog", "count": 1,
                                         "position": ["right of", 0]}]}
  right = _FakeDetector({"teddy bear": [Detection((0, 0, 10, 10), 0.9)],
                         "dog": [Detection((30, 0, 40, 10), 0.8)]})
  assert geneval_rules.evaluate_image(right, None, pos)[0]
  below = _FakeDetector({"teddy bear": [Detection((0, 0, 10, 10), 0.9)],
                         "dog": [Detection((0, 30, 10, 40), 0.8)]})
  ok, reason = geneval_rules.evaluate_image(below, None, pos)
  assert not ok and "expected dog right of target, found below target" in reason
  count = {"tag": "counting", "include": [{"class": "clock", "count": 2}],
           "exclude": [{"class": "clock", "count": 3}]}
  clocks = [Detection((0, 0, 5, 5), s) for s in (0.95, 0.92, 0.5)]
  assert geneval_rules.evaluate_image(_FakeDetector({"clock": clocks}), None, count)[0]
  clocks.append(Detection((9, 9, 12, 12), 0.91))  # a third above the counting threshold
  assert not geneval_rules.evaluate_image(_FakeDetector({"clock": clocks}), None, count)[0]
  col = {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}]}
  car = {"car": [Detection((0, 0, 5, 5), 0.5)]}
  assert geneval_rules.evaluate_image(_FakeDetector(car, {"car": "red"}), None, col)[0]
  assert not geneval_rules.evaluate_image(_FakeDetector(car, {"car": "blue"}), None, col)[0]
  low = {"car": [Detection((0, 0, 5, 5), 0.25)]}  # under 0.3: not detected
  assert not geneval_rules.evaluate_image(_FakeDetector(low), None, col)[0]


def test_geneval_summary_is_the_unweighted_mean_of_the_tags():
  rows = ([{"tag": "single_object", "correct": True, "metadata": "a"}] * 2
          + [{"tag": "counting", "correct": c, "metadata": "b"} for c in (True, False)]
          + [{"tag": "counting", "correct": False, "metadata": "c"}] * 2
          + [{"tag": "colors", "correct": False, "metadata": "d"}])
  s = geneval_summary.summarize(rows)
  assert s["single_object"] == 1.0 and s["counting"] == 0.25 and s["colors"] == 0.0
  assert s["overall"] == pytest.approx((1 + 0.25 + 0) / 3)
  assert s["correct_images"] == pytest.approx(3 / 7)
  assert s["correct_prompts"] == pytest.approx(2 / 4)
