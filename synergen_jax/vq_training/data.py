"""Images of the embedded scene dataset for VQ training, rendered on the fly by seed.

Step s of a run with seed r uses train-split scenes r * 10**8 + s * batch + [0, batch), so
the data order depends only on (seed, step): a resumed run sees the same batches.
"""

import numpy as np

from data_pipelines.scenes.render import render_scene

_SEED_STRIDE = 10**8


def train_batch(step: int, batch_size: int, image_size: int, seed: int = 0,
                text_prob: float = 0.3, cell: int = 0, max_objects: int = 4) -> np.ndarray:
  """uint8 [batch, size, size, 3] train-split images of one step (the scene world of
  `scenes.sample_scene`: placement `cell`, 1-`max_objects` objects)."""
  first = seed * _SEED_STRIDE + step * batch_size
  return np.stack([render_scene(first + i, image_size, "train", text_prob, cell,
                                max_objects)[0] for i in range(batch_size)])


def validation_set(num_images: int, image_size: int, text_prob: float = 0.3, cell: int = 0,
                   max_objects: int = 4) -> tuple[np.ndarray, list[dict]]:
  """(uint8 [n, size, size, 3], scene graphs) of validation seeds 0..n-1."""
  pairs = [render_scene(i, image_size, "validation", text_prob, cell, max_objects)
           for i in range(num_images)]
  return np.stack([p[0] for p in pairs]), [p[1] for p in pairs]
