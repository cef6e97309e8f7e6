"""Scores an image of the scene dataset from pixels alone (no scene graph needed).

Public API:

  score_image(image uint8 [S, S, 3], ...) -> list of recovered objects, each
      {"shape": str, "color": str, "box": [x0, y0, x1, y1] (end exclusive),
       "center": [cx, cy], "region": str, "area": int, "fit": float (template IoU)}
  match_fraction(pred_objects, scene_graph, max_center_dist=None) -> float in [0, 1]
      The fraction of the scene graph's objects that have a recovered object of the
      same shape and colour (one-to-one, greedy by centre distance); with
      `max_center_dist` (a fraction of the image size) the centres must also agree.
      A scene without objects scores 1.0 when nothing was recovered, else 0.0.
  matched_objects(pred_objects, scene_graph, max_center_dist=None) -> list
      Per scene-graph object, the index of the recovered object matched to it, or None.
  score_against_scene(image, scene_graph, max_center_dist=None) -> dict
      {"recall": match_fraction, "precision": matched / recovered, "num_pred": int,
       "num_true": int}, for evaluating generated images.

Method: every pixel takes the nearest palette colour (objects, backgrounds, text
white) if it is within `max_color_dist` of it; pixels of each object colour are
split into 8-connected components; components smaller than `min_area_frac` of the
image are noise; each component's shape is the template (`palette.shape_mask`
fitted to the component's box) with the highest IoU. Works on the crisp renders
(>= 99% of objects right) and tolerates the colour noise of VQ reconstructions.
"""

import numpy as np
from scipy import ndimage

from data_pipelines.scenes import palette as pal
from data_pipelines.scenes.render import region_name

_OBJECT_RGB = np.array([pal.COLORS[c] for c in pal.COLOR_NAMES], np.float32)  # [C, 3]
_OTHER_RGB = np.array(list(pal.BACKGROUNDS) + [pal.TEXT_COLOR], np.float32)  # [K, 3]
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def color_labels(image: np.ndarray, max_color_dist: float = 90.0) -> np.ndarray:
  """int [S, S]: index into COLOR_NAMES of each pixel's object colour, -1 if none."""
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"image must be [H, W, 3] RGB, got shape {image.shape}")
  px = image.astype(np.float32)[..., None, :]  # [H, W, 1, 3]
  palette = np.concatenate([_OBJECT_RGB, _OTHER_RGB], axis=0)  # [C + K, 3]
  dist = np.sqrt(((px - palette) ** 2).sum(-1))  # [H, W, C + K]
  nearest = dist.argmin(-1)
  ok = (dist.min(-1) <= max_color_dist) & (nearest < len(_OBJECT_RGB))
  return np.where(ok, nearest, -1)


def _classify(component: np.ndarray, box) -> tuple[str, float]:
  """Best-fitting shape of a boolean mask [h, w] cropped to its own box."""
  h, w = component.shape
  best, best_iou = pal.SHAPES[0], -1.0
  for shape in pal.SHAPES:
    template = pal.shape_mask(shape, (0, 0, w, h), h, w)
    inter = np.logical_and(template, component).sum()
    union = np.logical_or(template, component).sum()
    iou = float(inter) / max(float(union), 1.0)
    if iou > best_iou:
      best, best_iou = shape, iou
  return best, best_iou


def score_image(image: np.ndarray, max_color_dist: float = 90.0,
                min_area_frac: float = 0.004) -> list[dict]:
  """Recovers the objects of a scene image; see the module docstring."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f"image must be uint8, got {image.dtype}")
  size = image.shape[0]
  labels = color_labels(image, max_color_dist)  # [S, S]
  min_area = max(4, int(min_area_frac * image.shape[0] * image.shape[1]))
  found = []
  for ci, color in enumerate(pal.COLOR_NAMES):
    comps, n = ndimage.label(labels == ci, structure=_EIGHT_CONNECTED)
    if n == 0:
      continue
    for k, sl in enumerate(ndimage.find_objects(comps), start=1):
      mask = comps[sl] == k  # [h, w]
      area = int(mask.sum())
      if area < min_area:
        continue
      y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
      shape, fit = _classify(mask, (x0, y0, x1, y1))
      cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
      found.append({"shape": shape, "color": color, "box": [x0, y0, x1, y1],
                    "center": [cx, cy], "region": region_name(cx, cy, size),
                    "area": area, "fit": fit})
  return found


def matched_objects(pred_objects, scene_graph, max_center_dist=None) -> list:
  """For each scene-graph object, the index into `pred_objects` of the recovered object
  matched to it (same shape and colour; one-to-one, greedy by centre distance, in the
  graph's order), or None. `match_fraction` counts these."""
  size = float(scene_graph["image_size"])
  used, matches = set(), []
  for obj in scene_graph["objects"]:
    best, best_d = None, None
    for j, p in enumerate(pred_objects):
      if j in used or p["shape"] != obj["shape"] or p["color"] != obj["color"]:
        continue
      d = float(np.hypot(p["center"][0] - obj["center"][0],
                         p["center"][1] - obj["center"][1])) / size
      if max_center_dist is not None and d > max_center_dist:
        continue
      if best_d is None or d < best_d:
        best, best_d = j, d
    if best is not None:
      used.add(best)
    matches.append(best)
  return matches


def _match(pred_objects, scene_graph, max_center_dist):
  return sum(m is not None for m in matched_objects(pred_objects, scene_graph, max_center_dist))


def match_fraction(pred_objects, scene_graph, max_center_dist=None) -> float:
  """Fraction of the scene's objects recovered with the right shape and colour."""
  n_true = len(scene_graph["objects"])
  if n_true == 0:
    return 1.0 if not pred_objects else 0.0
  return _match(pred_objects, scene_graph, max_center_dist) / n_true


def score_against_scene(image, scene_graph, max_center_dist=None) -> dict:
  """Recall / precision of the objects recovered from `image` against a scene graph."""
  pred = score_image(image)
  matched = _match(pred, scene_graph, max_center_dist)
  n_true = len(scene_graph["objects"])
  return {"recall": matched / n_true if n_true else float(not pred),
          "precision": matched / len(pred) if pred else float(n_true == 0),
          "num_pred": len(pred), "num_true": n_true}
