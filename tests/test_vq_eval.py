"""VQ validation metrics: PSNR and object recovery on images with known answers."""

import numpy as np
import pytest

from data_pipelines.scenes import palette as pal
from data_pipelines.scenes.render import draw_scene
from synergen_jax.vq_training import data as vq_data
from synergen_jax.vq_training import eval as vq_eval


def test_mean_psnr_is_the_mean_of_per_image_values():
  images = np.full((2, 8, 8, 3), 100, np.uint8)
  recons = images.copy()
  recons[0] += 1  # MSE 1 -> 20 log10(255) dB
  recons[1] += 10  # MSE 100 -> 20 log10(255) - 20 dB
  expected = 20 * np.log10(255.0) - 10.0
  assert vq_eval.mean_psnr(recons, images) == pytest.approx(expected, abs=1e-9)


def _first_scene_with_objects(scenes):
  return next(i for i, s in enumerate(scenes) if s["objects"])


def test_object_recovery_and_misses_on_edited_scenes():
  images, scenes = vq_data.validation_set(16, 64)
  total = sum(len(s["objects"]) for s in scenes)
  assert vq_eval.object_recovery(images, scenes) == 1.0
  assert vq_eval.object_misses(images, scenes) == (total, {})
  i = _first_scene_with_objects(scenes)
  obj, rest = scenes[i]["objects"][0], scenes[i]["objects"][1:]
  key = f"{obj['shape']}/{obj['size']}"

  def with_first(replacement):  # the images with scene i's first object replaced
    edited = images.copy()
    edited[i] = draw_scene(dict(scenes[i], objects=replacement + rest))
    return edited

  # Erased: lost, nothing of its colour there.
  erased = with_first([])
  assert vq_eval.object_recovery(erased, scenes) == pytest.approx((total - 1) / total)
  assert vq_eval.object_misses(erased, scenes) == (total, {f"{key}->none": 1})
  # Recoloured (to a colour absent from the scene): lost the same way.
  other = next(c for c in pal.COLOR_NAMES if c not in {o["color"] for o in scenes[i]["objects"]})
  recoloured = with_first([dict(obj, color=other)])
  assert vq_eval.object_misses(recoloured, scenes) == (total, {f"{key}->none": 1})
  # Another shape in the same box and colour: seen, with that shape.
  shape = "square" if obj["shape"] != "square" else "circle"
  reshaped = with_first([dict(obj, shape=shape)])
  assert vq_eval.object_recovery(reshaped, scenes) == pytest.approx((total - 1) / total)
  assert vq_eval.object_misses(reshaped, scenes) == (total, {f"{key}->{shape}": 1})
