"""Captions and question/answer pairs generated from a scene graph.

Public API (deterministic by the scene's (split, seed)):

  captions(scene) -> list[str]                       several phrasings of one scene
  qa_pairs(scene) -> list[tuple[type, question, answer]]
  QA_TYPES = ("color", "shape", "count", "position", "relation", "existence", "text")

Answers are short and canonical (lower case words, digits, "yes"/"no"; the text
answer is the exact glyph string), so evaluation can compare strings exactly.
Every question refers to objects unambiguously (e.g. "the circle" only when the
scene has one circle), and questions about absent objects never name a held-out
(shape, colour) pair outside the compositional split.
"""

import numpy as np

from data_pipelines.scenes import palette as pal
from data_pipelines.scenes import render

QA_TYPES = ("color", "shape", "count", "position", "relation", "existence", "text")
_NUMBER_WORDS = ("no", "one", "two", "three", "four")


def _rng(scene: dict, stream: int) -> np.random.Generator:
  split_id = render.SPLITS.index(scene["split"]) + 1
  return np.random.default_rng([split_id, int(scene["seed"]), stream])


def _name(obj: dict, with_size: bool = False) -> str:
  size = f"{obj['size']} " if with_size else ""
  return f"{size}{obj['color']} {obj['shape']}"


def _a(phrase: str) -> str:
  """Indefinite article + phrase ("an orange circle", "a red square")."""
  return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _join(parts: list[str]) -> str:
  if len(parts) == 1:
    return parts[0]
  return ", ".join(parts[:-1]) + " and " + parts[-1]


def captions(scene: dict) -> list[str]:
  """Three caption phrasings: a list, a counted list, and a positional description."""
  objs = scene["objects"]
  n = len(objs)
  listed = _join([_a(_name(o, with_size=True)) for o in objs]) if objs else "nothing"
  where = _join([f"{_a(_name(o))} at the {o['region']}" for o in objs]) if objs else "nothing"
  noun = "object" if n == 1 else "objects"
  out = [
      f"{listed[0].upper()}{listed[1:]} on a dark background.",
      f"An image with {_NUMBER_WORDS[n] if n < 5 else n} {noun}: {listed}.",
      f"{where[0].upper()}{where[1:]}.",
  ]
  if scene.get("text"):
    out = [c + f' The text "{scene["text"]}" is written in white.' for c in out]
  return out


def _unique_by(objs, key):
  values = [o[key] for o in objs]
  return [o for o in objs if values.count(o[key]) == 1]


def qa_pairs(scene: dict) -> list[tuple[str, str, str]]:
  """Question/answer pairs of every type that the scene supports (see QA_TYPES)."""
  rng = _rng(scene, stream=1)
  objs = scene["objects"]
  size = scene["image_size"]
  out = []
  for o in _unique_by(objs, "shape"):
    out.append(("color", f"What color is the {o['shape']}?", o["color"]))
  for o in _unique_by(objs, "color"):
    out.append(("shape", f"What shape is the {o['color']} object?", o["shape"]))
  out.append(("count", "How many objects are there?", str(len(objs))))
  color = pal.COLOR_NAMES[int(rng.integers(len(pal.COLOR_NAMES)))]
  out.append(("count", f"How many {color} objects are there?",
              str(sum(o["color"] == color for o in objs))))
  for o in objs:
    out.append(("position", f"Where is the {_name(o)}?", o["region"]))
  margin = size / 8
  for i, a in enumerate(objs):
    for b in objs[i + 1:]:
      dx = a["center"][0] - b["center"][0]
      dy = a["center"][1] - b["center"][1]
      if abs(dx) > margin:
        out.append(("relation", f"Is the {_name(a)} left or right of the {_name(b)}?",
                    "left" if dx < 0 else "right"))
      if abs(dy) > margin:
        out.append(("relation", f"Is the {_name(a)} above or below the {_name(b)}?",
                    "above" if dy < 0 else "below"))
  present = {(o["shape"], o["color"]) for o in objs}
  if objs:
    o = objs[int(rng.integers(len(objs)))]
    out.append(("existence", f"Is there {_a(_name(o))}?", "yes"))
  absent = [p for p in render.ALL_PAIRS if p not in present
            and (scene["split"] == "compositional" or p not in pal.HELDOUT_PAIRS)]
  shape, color = absent[int(rng.integers(len(absent)))]
  out.append(("existence", f"Is there {_a(color + ' ' + shape)}?", "no"))
  if scene.get("text"):
    out.append(("text", "What is written in the image?", scene["text"]))
  else:
    out.append(("text", "Is there any text in the image?", "no"))
  return out
