"""Colour and shape answers of a trained demo workdir, split by the scene's object count.

  python benchmarks/binding_breakdown.py --workdir=runs/demo [--stage=bind] [--split=validation]

Answers every colour ("What color is the circle?") and shape ("What shape is the red
object?") question of the split with the model (`InferenceSession`, greedy, as
`python -m synergen_jax.evaluate` does) and joins each with its record's scene graph:
accuracy by number of objects, by the named object's size, shape and colour, and the
commonest confusions. A model that perceives colours but does not bind a name to its
object scores ~1.0 on one-object scenes and ~1/k on k-object scenes (docs/LEARNING.md).
Writes W/binding_<split>_<stage>.json (one row per question).
"""

import argparse
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from synergen_jax import workdir as workdir_lib  # noqa: E402
from synergen_jax.evaluation import data, vqa  # noqa: E402
from synergen_jax.inference.session import InferenceSession  # noqa: E402

TYPES = ("color", "shape")


def named_object(graph: dict, qtype: str, question: str, answer: str) -> dict | None:
  """The object a colour / shape question is about (its name in the question, its
  attribute the answer)."""
  q = question.lower()
  for o in graph["objects"]:
    if qtype == "color" and o["shape"] in q and o["color"] == answer:
      return o
    if qtype == "shape" and o["color"] in q and o["shape"] == answer:
      return o
  return None


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--stage", default=None, help="default: the latest finished stage")
  p.add_argument("--split", default="validation")
  args = p.parse_args()
  exp = workdir_lib.read_experiment(args.workdir)
  session = InferenceSession.load(args.workdir, args.stage, None, None, None,
                                  batch_size=exp.eval.batch_size)
  session.experiment = exp
  records, _ = data.records(exp, args.split)
  items = []
  for r in records:
    graph = data.scene_graph(r)
    if graph is None:
      raise SystemExit(f"--workdir={args.workdir}: its records carry no scene graph")
    for q, a, t in zip(r.questions, r.answers, r.question_types or []):
      if t in TYPES:
        items.append((r.image, q, a, t, graph))
  examples = [session.understanding_prompt(img, q, 4) for img, q, _, _, _ in items]
  preds = session.answer_examples(examples, max_new_tokens=4, seed=0)
  rows = []
  for (_, q, a, t, graph), pred in zip(items, preds):
    o = named_object(graph, t, q, a) or {}
    rows.append({"type": t, "question": q, "answer": a, "prediction": vqa.normalize(pred),
                 "objects": len(graph["objects"]), "size": o.get("size"),
                 "shape": o.get("shape"), "color": o.get("color")})
  out = os.path.join(args.workdir, f"binding_{args.split}_{args.stage or 'final'}.json")
  with open(out, "w") as f:
    json.dump(rows, f, indent=0)
  for t in TYPES:
    rs = [r for r in rows if r["type"] == t]
    if not rs:
      continue
    print(f"{t}: {len(rs)} questions, accuracy {np.mean([r['answer'] == r['prediction'] for r in rs]):.3f}")
    for key in ("objects", "size", "shape", "color"):
      by = collections.defaultdict(list)
      for r in rs:
        by[r[key]].append(r["answer"] == r["prediction"])
      print(f"  by {key}: " + ", ".join(f"{k} {np.mean(v):.2f} ({len(v)})"
                                        for k, v in sorted(by.items(), key=str)))
    wrong = collections.Counter((r["answer"], r["prediction"]) for r in rs
                                if r["answer"] != r["prediction"])
    print("  confusions (answer -> prediction): " + ", ".join(
        f"{a}->{b} {n}" for (a, b), n in wrong.most_common(8)))
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
