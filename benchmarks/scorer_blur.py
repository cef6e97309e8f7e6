"""How sharp must a reconstruction be for the scene scorer? Object recovery under blur.

  python benchmarks/scorer_blur.py [--images=256] [--sigmas=0.5,0.8,1.0,1.3,1.6,2.0]

Blurs the validation renders (the images `benchmarks/vq_quality.py` reconstructs) with a
Gaussian of each standard deviation (pixels, per channel), rounds back to uint8 and
prints, per sigma, the mean per-image PSNR against the originals, the share of objects
the scorer recovers (`vq_eval.object_recovery`, the VQ's quality metric), and the shapes
it then confuses (true shape, size -> recovered shape). This calibrates the VQ figures:
a tokenizer whose reconstructions are as soft as a blur of sigma s cannot score above
the recovery printed for s.
"""

import collections
import json

import numpy as np
from absl import app, flags
from scipy import ndimage

from data_pipelines.scene_scorer import score_image
from synergen_jax.training import vq_data, vq_eval

_IMAGES = flags.DEFINE_integer("images", 256, "validation images")
_SIGMAS = flags.DEFINE_list("sigmas", ["0.5", "0.8", "1.0", "1.3", "1.6", "2.0"],
                            "Gaussian blur standard deviations, in pixels")


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
  """uint8 [n, H, W, 3] blurred spatially (not across channels), rounded to uint8."""
  out = ndimage.gaussian_filter(images.astype(np.float32), (0, sigma, sigma, 0))
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


def confusions(images: np.ndarray, scenes: list[dict]) -> dict:
  """'shape/size->recovered' counts for objects whose colour is found within 4 px of their
  centre but with another shape ('none' when no such component survives)."""
  out = collections.Counter()
  for image, scene in zip(images, scenes):
    pred = score_image(image)
    for obj in scene["objects"]:
      near = [p for p in pred if p["color"] == obj["color"]
              and abs(p["center"][0] - obj["center"][0]) < 4
              and abs(p["center"][1] - obj["center"][1]) < 4]
      got = near[0]["shape"] if near else "none"
      if got != obj["shape"]:
        out[f"{obj['shape']}/{obj['size']}->{got}"] += 1
  return dict(out.most_common())


def main(argv):
  del argv
  images, scenes = vq_data.validation_set(_IMAGES.value, 64)
  for sigma in [0.0] + [float(s) for s in _SIGMAS.value]:
    blurred = blur(images, sigma) if sigma else images
    row = {"sigma": sigma,
           "psnr": round(vq_eval.mean_psnr(blurred, images), 2) if sigma else None,
           "recovery": round(vq_eval.object_recovery(blurred, scenes), 4),
           "confusions": confusions(blurred, scenes)}
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
  app.run(main)
