"""How sharp must a reconstruction be for the scene scorer? Object recovery under blur.

  python benchmarks/scorer_blur.py [--images=256] [--sigmas=0.5,0.8,1.0,1.3,1.6,2.0]

Blurs the validation renders (the images `benchmarks/vq_quality.py` reconstructs) with a
Gaussian of each standard deviation (pixels, per channel), rounds back to uint8 and
prints, per sigma, the mean per-image PSNR against the originals, the share of objects
the scorer recovers (`vq_eval.object_recovery`, the VQ's quality metric), and the misses
by "true shape/size->recovered shape" (`vq_eval.object_misses`). This calibrates the VQ figures:
a tokenizer whose reconstructions are as soft as a blur of sigma s cannot score above
the recovery printed for s.
"""

import json

import numpy as np
from absl import app, flags
from scipy import ndimage

from synergen_jax.vq_training import data as vq_data
from synergen_jax.vq_training import eval as vq_eval

_IMAGES = flags.DEFINE_integer("images", 256, "validation images")
_SIGMAS = flags.DEFINE_list("sigmas", ["0.5", "0.8", "1.0", "1.3", "1.6", "2.0"],
                            "Gaussian blur standard deviations, in pixels")


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
  """uint8 [n, H, W, 3] blurred spatially (not across channels), rounded to uint8."""
  out = ndimage.gaussian_filter(images.astype(np.float32), (0, sigma, sigma, 0))
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


def main(argv):
  del argv
  images, scenes = vq_data.validation_set(_IMAGES.value, 64)
  for sigma in [0.0] + [float(s) for s in _SIGMAS.value]:
    blurred = blur(images, sigma) if sigma else images
    total, misses = vq_eval.object_misses(blurred, scenes)
    row = {"sigma": sigma,
           "psnr": round(vq_eval.mean_psnr(blurred, images), 2) if sigma else None,
           "recovery": round((total - sum(misses.values())) / total, 4),
           "misses": dict(misses.most_common())}
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
  app.run(main)
