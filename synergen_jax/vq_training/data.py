"""Images of the embedded scene dataset for VQ training, rendered on the fly by seed.

Step s of a run with seed r uses train-split scenes r * 10**8 + s * batch + [0, batch), so
the data order depends only on (seed, step): a resumed run sees the same batches.
"""

import numpy as np

from data_pipelines.scenes.render import render_scene

_SEED_STRIDE = 10**8


def train_batch(step: int, batch_size: int, image_size: int, seed: int = 0,
                text_prob: float = 0.3, cell: int = 0, max_objects: int = 4,
                crop: int = 0) -> np.ndarray:
  """uint8 [batch, size, size, 3] train-split images of one step (the scene world of
  `scenes.sample_scene`: placement `cell`, 1-`max_objects` objects); with `crop`, uint8
  [batch, crop, crop, 3] windows of them (`crop_around`)."""
  first = seed * _SEED_STRIDE + step * batch_size
  out = []
  for i in range(batch_size):
    image, scene = render_scene(first + i, image_size, "train", text_prob, cell, max_objects)
    out.append(crop_around(image, scene, crop, cell or 8, first + i) if crop else image)
  return np.stack(out)


def crop_around(image: np.ndarray, scene: dict, crop: int, align: int, seed: int
                ) -> np.ndarray:
  """A crop x crop window of `image` holding the centre of one of its objects or of its
  text (chosen by `seed`), its origin a multiple of `align` px inside the image."""
  boxes = [o["box"] for o in scene["objects"]] + ([scene["text_box"]]
                                                   if scene.get("text_box") else [])
  x0, y0, x1, y1 = boxes[int(np.random.default_rng(seed).integers(len(boxes)))]
  size = image.shape[0]

  def origin(c0, c1):  # the aligned window whose middle is nearest the box's centre
    o = int(round(((c0 + c1) / 2 - crop / 2) / align)) * align
    return min(max(o, 0), size - crop)

  ox, oy = origin(x0, x1), origin(y0, y1)
  return image[oy:oy + crop, ox:ox + crop]


def validation_set(num_images: int, image_size: int, text_prob: float = 0.3, cell: int = 0,
                   max_objects: int = 4) -> tuple[np.ndarray, list[dict]]:
  """(uint8 [n, size, size, 3], scene graphs) of validation seeds 0..n-1."""
  pairs = [render_scene(i, image_size, "validation", text_prob, cell, max_objects)
           for i in range(num_images)]
  return np.stack([p[0] for p in pairs]), [p[1] for p in pairs]
