"""Text-only examples from the scene generator's world: facts, arithmetic, sentences.

Used (a) to train the demo SentencePiece model together with the scene captions and
questions, and (b) as the text-only split that measures whether text skill survives
visual training (perplexity on `text`, exact match of `answer` given `prompt`).

  text_example(seed, split="train") -> {"kind": "fact"|"arithmetic"|"sentence",
                                        "prompt": str, "answer": str, "text": str}

`text == prompt + " " + answer`. Deterministic by (split, seed).
"""

import numpy as np

from data_pipelines.scenes import palette as pal
from data_pipelines.scenes import render
from data_pipelines.scenes import text as scene_text

TEXT_SPLITS = ("train", "test")
KINDS = ("fact", "arithmetic", "sentence")

_SIDES = {"triangle": "three", "square": "four", "diamond": "four", "cross": "twelve",
          "circle": "no"}
_MIXES = {("red", "yellow"): "orange", ("blue", "yellow"): "green",
          ("red", "blue"): "purple"}


def _facts():
  out = []
  for shape, sides in _SIDES.items():
    out.append((f"How many sides does a {shape} have?", f"A {shape} has {sides} sides."))
  for (a, b), c in _MIXES.items():
    out.append((f"What do {a} and {b} make?", f"Mixing {a} and {b} makes {c}."))
  for c in pal.COLOR_NAMES:
    out.append((f"Is {c} a color or a shape?", f"{c.capitalize()} is a color."))
  for s in pal.SHAPES:
    out.append((f"Is a {s} a color or a shape?", f"A {s} is a shape."))
  return out


_FACTS = _facts()


def text_example(seed: int, split: str = "train") -> dict:
  """One text-only example; see the module docstring."""
  if split not in TEXT_SPLITS:
    raise ValueError(f"unknown text split {split!r}; expected one of {TEXT_SPLITS}")
  rng = np.random.default_rng([100 + TEXT_SPLITS.index(split), int(seed)])
  kind = KINDS[int(rng.integers(len(KINDS)))]
  if kind == "fact":
    prompt, answer = _FACTS[int(rng.integers(len(_FACTS)))]
  elif kind == "arithmetic":
    a, b = (int(v) for v in rng.integers(0, 50, size=2))
    op = ("plus", "minus", "times")[int(rng.integers(3))]
    value = a + b if op == "plus" else (a - b if op == "minus" else a * b)
    prompt, answer = f"What is {a} {op} {b}?", f"{value}."
  else:  # a caption of a scene from the same generator, split by its first clause
    scene = render.sample_scene(int(rng.integers(1 << 30)), 64,
                                "train" if split == "train" else "test")
    caption = scene_text.captions(scene)[int(rng.integers(3))]
    words = caption.split(" ")
    cut = max(1, len(words) // 2)
    prompt, answer = " ".join(words[:cut]), " ".join(words[cut:])
  return {"kind": kind, "prompt": prompt, "answer": answer, "text": f"{prompt} {answer}"}
