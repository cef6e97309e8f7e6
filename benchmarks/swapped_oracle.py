"""The floor of the swapped-image control: how many answers an oracle keeps unchanged.

  python benchmarks/swapped_oracle.py --workdir=runs/demo [--questions=400]

The evaluation asks every validation question about another image of the split
(`vqa/swapped_image/same_answer`: the share of answers that did not change). A model that
looks does not reach 0 there: some questions have the same true answer on the other image
("How many objects are there?" with the same count, "Is there any text?" on two images
without text). This script answers every question from the other image's true scene graph
and prints, per question type, how many questions it asks, how many keep their answer, and
how many have no true answer on the other image (a colour, shape, position or relation
question about an object the other image lacks), as one JSON line.
"""

import argparse
import collections
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def oracle_answer(question: str, scene: dict) -> str | None:
  """The true answer of `question` on `scene`, or None when it has none there."""
  from data_pipelines.scenes import text as scene_text
  own = {q: a for _, q, a in scene_text.qa_pairs(scene)}
  if question in own:
    return own[question]
  objs = scene["objects"]
  m = re.fullmatch(r"How many (\w+) objects are there\?", question)
  if m:
    return str(sum(o["color"] == m.group(1) for o in objs))
  m = re.fullmatch(r"Is there an? (\w+) (\w+)\?", question)
  if m:
    return "yes" if any(o["color"] == m.group(1) and o["shape"] == m.group(2)
                        for o in objs) else "no"
  if question == "How many objects are there?":
    return str(len(objs))
  if question == "Is there any text in the image?":
    return "yes" if scene.get("text") else "no"
  if question == "What is written in the image?":
    return scene.get("text") or None
  return None


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True, help="a demo workdir (its config and dataset)")
  p.add_argument("--questions", type=int, default=0, help="as eval.vqa_questions (0: the "
                 "experiment's)")
  args = p.parse_args()
  from synergen_jax import workdir as workdir_lib
  from synergen_jax.evaluation import data
  from synergen_jax.evaluation import vqa
  exp = workdir_lib.read_experiment(args.workdir)
  records, _ = data.records(exp, "validation")
  items = vqa.questions(records, args.questions or int(exp.eval.vqa_questions))
  scenes = {r.id: data.scene_graph(r) for r in records}
  total, same, undefined = (collections.Counter() for _ in range(3))
  for item, swapped in zip(items, vqa.swap_images(items)):
    answer = oracle_answer(item["question"], scenes[swapped["image_id"]])
    total[item["type"]] += 1
    if answer is None:
      undefined[item["type"]] += 1
    elif vqa.normalize(answer) == vqa.normalize(item["answer"]):
      same[item["type"]] += 1
  n = sum(total.values())
  print(json.dumps({"questions": n, "oracle_same_answer": round(sum(same.values()) / n, 4),
                    "no_true_answer": round(sum(undefined.values()) / n, 4),
                    "per_type": {t: {"questions": total[t], "same": same[t],
                                     "no_true_answer": undefined[t]} for t in sorted(total)}}))


if __name__ == "__main__":
  main()
