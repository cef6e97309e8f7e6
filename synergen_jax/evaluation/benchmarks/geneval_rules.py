"""GenEval's rule engine (djghosh13/geneval evaluation/evaluate_images.py), behind a
detector interface: the one GenEval implementation of the project. The official
detector (Mask2Former Swin-S, mmdet 2.x) and colour classifier (CLIP ViT-L/14) cannot
run offline here; any `Detector` plugs in -- the embedded scene world's pixel scorer
is one (synergen_jax.evaluation.geneval.SceneDetector).

  Detection(box=(x0, y0, x1, y1), score, mask=None, color=None)
  Detector: detect(image) -> {class name: [Detection]}  (any order, any score)
            colors(image, detections, class name) -> [colour name per detection]
  keep(detected, tag, nms_threshold=1.0) -> {class: [Detection]}
      score > 0.3 (> 0.9 when tag == "counting"), by score, at most 16 per class,
      greedy NMS (off at the default 1.0)
  relative_position(a, b) -> set of "left of" | "right of" | "above" | "below"
      of A relative to B: box centres, offset shrunk by 0.1 x (dim A + dim B) per
      axis, normalised by the offset's length; a component beyond 0.5 is a relation
      (image y points down); no relation when the shrunk offset is ~0
  evaluate(detected, metadata, image=None, detector=None) -> (correct, reason)
      include clauses ANDed: the top-`count` objects of the class must exist; with
      `color`, at least `count` of them must be classified that colour; with
      `position` [relation, i], every one of them must stand in that relation to
      every object of include group i (which must itself have matched). exclude
      clauses: at least `count` detections of the class fail the image.
  evaluate_image(detector, image, metadata) -> (correct, reason)
"""

import dataclasses
from typing import Protocol

import numpy as np

THRESHOLD = 0.3
COUNTING_THRESHOLD = 0.9
MAX_OBJECTS = 16
POSITION_THRESHOLD = 0.1
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black",
          "white")


@dataclasses.dataclass
class Detection:
  box: tuple            # (x0, y0, x1, y1) in pixels
  score: float = 1.0
  mask: object = None   # bool [H, W] or None
  color: str | None = None


class Detector(Protocol):
  def detect(self, image) -> dict: ...
  def colors(self, image, detections: list, class_name: str) -> list: ...


def _iou(a, b) -> float:
  x0, y0 = max(a[0], b[0]), max(a[1], b[1])
  x1, y1 = min(a[2], b[2]), min(a[3], b[3])
  inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
  union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
  return inter / union if union > 0 else 0.0


def keep(detected: dict, tag: str, nms_threshold: float = 1.0) -> dict:
  threshold = COUNTING_THRESHOLD if tag == "counting" else THRESHOLD
  out = {}
  for name, dets in detected.items():
    order = sorted((d for d in dets if d.score > threshold), key=lambda d: -d.score)
    order = order[:MAX_OBJECTS]
    kept = []
    while order:
      best = order.pop(0)
      kept.append(best)
      if nms_threshold != 1:
        order = [d for d in order if _iou(best.box, d.box) < nms_threshold]
    if kept:
      out[name] = kept
  return out


def relative_position(a: Detection, b: Detection) -> set:
  boxes = np.array([a.box[:4], b.box[:4]], np.float64).reshape(2, 2, 2)  # [obj, corner, xy]
  center_a, center_b = boxes.mean(axis=-2)
  dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
  offset = center_a - center_b
  revised = np.maximum(np.abs(offset) - POSITION_THRESHOLD * (dim_a + dim_b), 0) * np.sign(offset)
  if np.all(np.abs(revised) < 1e-3):
    return set()
  dx, dy = revised / np.linalg.norm(offset)
  rel = set()
  if dx < -0.5:
    rel.add("left of")
  if dx > 0.5:
    rel.add("right of")
  if dy < -0.5:
    rel.add("above")
  if dy > 0.5:
    rel.add("below")
  return rel


def evaluate(detected: dict, metadata: dict, image=None, detector=None) -> tuple[bool, str]:
  """`detected`: after `keep`. `detector.colors` classifies colours (needed only for
  clauses with a colour)."""
  correct, reasons, groups = True, [], []
  for req in metadata.get("include", []):
    name, count = req["class"], int(req["count"])
    matched = True
    found = detected.get(name, [])[:count]
    if len(found) < count:
      correct = matched = False
      reasons.append(f"expected {name}>={count}, found {len(found)}")
    else:
      if "color" in req:
        colors = list(detector.colors(image, found, name))
        if colors.count(req["color"]) < count:
          correct = matched = False
          reasons.append(f"expected {req['color']} {name}>={count}, found "
                         f"{colors.count(req['color'])} {req['color']}; and "
                         + ", ".join(f"{colors.count(c)} {c}" for c in COLORS if c in colors))
      if "position" in req and matched:
        relation, target = req["position"]
        if groups[target] is None:
          correct = matched = False
          reasons.append(f"no target for {name} to be {relation}")
        else:
          for obj in found:
            for other in groups[target]:
              rels = relative_position(obj, other)
              if relation not in rels:
                correct = matched = False
                reasons.append(f"expected {name} {relation} target, found "
                               f"{' and '.join(sorted(rels))} target")
                break
            if not matched:
              break
    groups.append(found if matched else None)
  for req in metadata.get("exclude", []):
    name, count = req["class"], int(req["count"])
    if len(detected.get(name, [])) >= count:
      correct = False
      reasons.append(f"expected {name}<{count}, found {len(detected[name])}")
  return correct, "\n".join(reasons)


def evaluate_image(detector: Detector, image, metadata: dict) -> tuple[bool, str]:
  detected = keep(detector.detect(image), metadata.get("tag", ""))
  return evaluate(detected, metadata, image, detector)
