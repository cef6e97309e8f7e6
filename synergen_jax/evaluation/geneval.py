"""GenEval-style scoring of generated scene images with the pixel scene scorer.

Prompts come from held-out scene graphs (no text in the scene), phrased like the
training captions (`data_pipelines.scene_text.captions`):

  category        scenes          caption phrasing                    an image is right when
  single_object   1 object        "A large red circle on a dark ..."  that shape in that colour
  two_objects     2 objects       same                                both shapes (any colour)
  counting        2 - 4 objects   "An image with three objects: ..."  exactly n objects found
  colors          1 object        same as single_object               an object of that colour
  position        2 objects       "A red circle at the top left ..."  both objects, each in its
                                                                      3 x 3 region
  color_attr      2 objects with  same as single_object               both (shape, colour)
                  2 colours                                           pairs bound correctly

`gen/overall` is the mean of the category scores (GenEval's overall).

  prompts(scene_graphs, per_category) -> [{"category", "prompt", "scene"}]
  other_prompt_index(items) -> for each prompt, another prompt of its category (the
                               prompt-dependence control: that prompt's image)
  correct(category, image, scene) -> bool
"""

from data_pipelines import scene_scorer
from data_pipelines import scene_text

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


def correct(category: str, image, scene: dict) -> bool:
  found = scene_scorer.score_image(image)
  objs = scene["objects"]
  if category == "single_object" or category == "color_attr":
    return scene_scorer.match_fraction(found, scene) == 1.0
  if category == "colors":
    return any(f["color"] == objs[0]["color"] for f in found)
  if category == "two_objects":
    shapes = [f["shape"] for f in found]
    return all(shapes.count(o["shape"]) >= sum(p["shape"] == o["shape"] for p in objs)
               for o in objs)
  if category == "counting":
    return len(found) == len(objs)
  if category == "position":
    used = set()
    for o in objs:
      hit = next((j for j, f in enumerate(found) if j not in used and f["shape"] == o["shape"]
                  and f["color"] == o["color"] and f["region"] == o["region"]), None)
      if hit is None:
        return False
      used.add(hit)
    return True
  raise ValueError(f"unknown GenEval category {category!r}; known: {CATEGORIES}")


def score(items: list[dict], images, prefix: str = "gen") -> dict:
  """Per-category and overall accuracy of images[i] (several per item allowed).

  `images[i]` is a list of uint8 images generated for `items[i]`.
  """
  per_cat: dict[str, list[float]] = {}
  for item, imgs in zip(items, images, strict=True):
    per_cat.setdefault(item["category"], []).extend(
        float(correct(item["category"], im, item["scene"])) for im in imgs)
  out = {f"{prefix}/{c}": sum(v) / len(v) for c, v in per_cat.items() if v}
  if out:
    out[f"{prefix}/overall"] = sum(out.values()) / len(out)
  out[f"{prefix}/images"] = sum(len(v) for v in per_cat.values())
  return out
