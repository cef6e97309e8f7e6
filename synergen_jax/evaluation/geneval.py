"""GenEval-style scoring of generated scene images with the pixel scene scorer.

Prompts come from held-out scene graphs (no text in the scene), phrased like the
training captions (`data_pipelines.scenes.text.captions`):

  category        scenes          caption phrasing                    an image is right when
  single_object   1 object        "A large red circle on a dark ..."  that shape in that colour
  two_objects     2 objects       same                                both shapes (any colour)
  counting        2 - 4 objects   "An image with three objects: ..."  exactly n objects found
  colors          1 object        same as single_object               an object of that colour
  position        2 objects       "A red circle at the top left ..."  both objects, each in its
                                                                      3 x 3 region
  color_attr      2 objects with  same as single_object               both (shape, colour)
                  2 colours                                           pairs bound correctly

`gen/overall` is the mean of the category scores (GenEval's overall). Each category is
GenEval metadata (`clauses`) judged by GenEval's rule engine
(`benchmarks.geneval_rules`) on the pixel scene scorer's detections (`SceneDetector`).

  prompts(scene_graphs, per_category) -> [{"category", "prompt", "scene"}]
  other_prompt_index(items) -> for each prompt, another prompt of its category (the
                               prompt-dependence control: that prompt's image)
  clauses(category, scene) -> GenEval metadata {tag, include, exclude}
  correct(category, image, scene) -> bool
"""

from data_pipelines.scenes import scorer
from data_pipelines.scenes import text as scene_text
from synergen_jax.evaluation.benchmarks import geneval_rules

CATEGORIES = ("single_object", "two_objects", "counting", "colors", "position", "color_attr")


def _wants(category: str, scene: dict) -> bool:
  objs = scene["objects"]
  if scene.get("text"):
    return False
  if category in ("single_object", "colors"):
    return len(objs) == 1
  if category in ("two_objects", "position"):
    return len(objs) == 2
  if category == "counting":
    return 2 <= len(objs) <= 4
  if category == "color_attr":
    return len(objs) == 2 and objs[0]["color"] != objs[1]["color"]
  raise ValueError(f"unknown GenEval category {category!r}; known: {CATEGORIES}")


_PHRASING = {"single_object": 0, "two_objects": 0, "counting": 1, "colors": 0,
             "position": 2, "color_attr": 0}


def prompts(scene_graphs, per_category: int) -> list[dict]:
  """Up to `per_category` prompts per category, from the scenes in order."""
  out = []
  for category in CATEGORIES:
    chosen = [s for s in scene_graphs if _wants(category, s)][:per_category]
    for scene in chosen:
      out.append({"category": category, "scene": scene,
                  "prompt": scene_text.captions(scene)[_PHRASING[category]]})
  return out


def other_prompt_index(items: list[dict]) -> list[int]:
  """For each prompt, the index of another prompt of the same category (its category's
  prompts rotated by half their count; itself only if it is alone)."""
  by_cat: dict[str, list[int]] = {}
  for i, it in enumerate(items):
    by_cat.setdefault(it["category"], []).append(i)
  out = [0] * len(items)
  for idx in by_cat.values():
    shift = max(len(idx) // 2, 1)
    for j, i in enumerate(idx):
      out[i] = idx[(j + shift) % len(idx)]
  return out


class SceneDetector:
  """The scene world's pixel scorer (`scenes.scorer.score_image`) as a GenEval detector
  (`benchmarks.geneval_rules.Detector`). Every recovered object is reported, with score
  1.0, under several class names, so GenEval's clauses can ask for what the scene
  captions name: "object", its shape ("circle"), "<colour> object", "<colour> <shape>"
  and "<colour> <shape> in the <3 x 3 region>". `findings`: the scorer's findings of the
  image when already computed (it is then not scored again)."""

  def __init__(self, findings: list | None = None):
    self._findings = findings

  def detect(self, image) -> dict:
    out: dict[str, list] = {}
    findings = scorer.score_image(image) if self._findings is None else self._findings
    for f in findings:
      det = geneval_rules.Detection(box=tuple(f["box"]), score=1.0, color=f["color"])
      for name in ("object", f["shape"], f"{f['color']} object",
                   f"{f['color']} {f['shape']}",
                   f"{f['color']} {f['shape']} in the {f['region']}"):
        out.setdefault(name, []).append(det)
    return out

  def colors(self, image, detections, class_name) -> list:
    del image, class_name
    return [d.color for d in detections]


def _counted(names) -> list[dict]:
  counts: dict[str, int] = {}
  for n in names:
    counts[n] = counts.get(n, 0) + 1
  return [{"class": n, "count": c} for n, c in counts.items()]


def clauses(category: str, scene: dict) -> dict:
  """The GenEval metadata ({tag, include, exclude}) a scene prompt of `category` asks for:

    single_object, color_attr  one "<colour> <shape>" per object
    two_objects                each shape, as many times as the scene has it
    counting                   "object" >= n and not >= n + 1 (GenEval's counting form)
    colors                     a "<colour> object"
    position                   each "<colour> <shape> in the <region>" (the captions
                               name absolute 3 x 3 regions, not GenEval's relations)
  """
  objs = scene["objects"]
  if category in ("single_object", "color_attr"):
    include = _counted(f"{o['color']} {o['shape']}" for o in objs)
  elif category == "colors":
    include = [{"class": f"{objs[0]['color']} object", "count": 1}]
  elif category == "two_objects":
    include = _counted(o["shape"] for o in objs)
  elif category == "counting":
    return {"tag": category, "include": [{"class": "object", "count": len(objs)}],
            "exclude": [{"class": "object", "count": len(objs) + 1}]}
  elif category == "position":
    include = _counted(f"{o['color']} {o['shape']} in the {o['region']}" for o in objs)
  else:
    raise ValueError(f"unknown GenEval category {category!r}; known: {CATEGORIES}")
  return {"tag": category, "include": include, "exclude": []}


def correct(category: str, image, scene: dict, findings: list | None = None) -> bool:
  """GenEval's rule engine on the scene detector's findings (`findings`: the image's
  `scorer.score_image`, when already computed)."""
  return geneval_rules.evaluate_image(SceneDetector(findings), image,
                                      clauses(category, scene))[0]


def score(items: list[dict], images, prefix: str = "gen") -> dict:
  """Per-category and overall accuracy of images[i] (several per item allowed), and
  `{prefix}/objects_per_image`: the mean number of objects the scorer finds in an image
  (a generator that scatters many objects passes "a <colour> object" by chance; compare
  with the prompts' own count, `objects_per_prompt`).

  `images[i]` is a list of uint8 images generated for `items[i]`.
  """
  per_cat: dict[str, list[float]] = {}
  found = []
  for item, imgs in zip(items, images, strict=True):
    for im in imgs:
      findings = scorer.score_image(im)  # once per image: the clauses and the count
      per_cat.setdefault(item["category"], []).append(
          float(correct(item["category"], im, item["scene"], findings)))
      found.append(len(findings))
  out = {f"{prefix}/{c}": sum(v) / len(v) for c, v in per_cat.items() if v}
  if out:
    out[f"{prefix}/overall"] = sum(out.values()) / len(out)
  out[f"{prefix}/images"] = sum(len(v) for v in per_cat.values())
  if found:
    out[f"{prefix}/objects_per_image"] = sum(found) / len(found)
  return out


def objects_per_prompt(items: list[dict]) -> float:
  """The mean number of objects the prompts' scenes hold."""
  return sum(len(it["scene"]["objects"]) for it in items) / max(len(items), 1)
