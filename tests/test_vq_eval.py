"""VQ validation metrics: PSNR and object recovery on images with known answers."""

import numpy as np
import pytest

from data_pipelines import scene_palette as pal
from data_pipelines.scenes import draw_scene
from synergen_jax.training import vq_data, vq_eval


def test_mean_psnr_is_the_mean_of_per_image_values():
  images = np.full((2, 8, 8, 3), 100, np.uint8)
  recons = images.copy()
  recons[0] += 1  # MSE 1 -> 20 log10(255) dB
  recons[1] += 10  # MSE 100 -> 20 log10(255) - 20 dB
  expected = 20 * np.log10(255.0) - 10.0
  assert vq_eval.mean_psnr(recons, images) == pytest.approx(expected, abs=1e-9)


def test_object_recovery_counts_objects_pooled_over_images():
  images, scenes = vq_data.validation_set(16, 64)
  assert vq_eval.object_recovery(images, scenes) == 1.0
  # Erase one object from the first scene with objects: exactly one object is lost.
  i = next(i for i, s in enumerate(scenes) if s["objects"])
  erased = dict(scenes[i], objects=scenes[i]["objects"][1:])
  edited = images.copy()
  edited[i] = draw_scene(erased)
  total = sum(len(s["objects"]) for s in scenes)
  assert vq_eval.object_recovery(edited, scenes) == pytest.approx((total - 1) / total)
  # Recolour it instead (to a colour absent from the scene): also lost.
  obj = scenes[i]["objects"][0]
  other = next(c for c in pal.COLOR_NAMES
               if c not in {o["color"] for o in scenes[i]["objects"]})
  recoloured = dict(scenes[i], objects=[dict(obj, color=other)] + scenes[i]["objects"][1:])
  edited[i] = draw_scene(recoloured)
  assert vq_eval.object_recovery(edited, scenes) == pytest.approx((total - 1) / total)
