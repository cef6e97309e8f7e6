"""Validation of a VQ tokenizer on the scene dataset.

Metrics (all on the uint8 round trip encode -> decode, as the generator will see it):
  psnr             mean per-image PSNR in dB (pixel range 255)
  codebook_usage   share of the codebook used by the validation set
  perplexity       exp(entropy) of the validation code distribution
  object_recovery  share of the scenes' objects whose shape and colour the pixel-only
                   scene scorer recovers from the reconstructions
  object_recovery_original  the same on the original renders (the scorer's ceiling)
"""

import collections

import numpy as np

from data_pipelines.scenes.scorer import matched_objects, score_image


def object_misses(images: np.ndarray, scenes: list[dict]) -> tuple[int, collections.Counter]:
  """(number of objects, the objects the scorer misses) over all images.

  Misses are counted by "shape/size->recovered": `recovered` is the shape the scorer gave
  the unmatched component of the object's colour nearest its centre (centre within the
  object's box grown by 2 px): the object was seen with the wrong shape; "none" when no
  such component survives the scorer (lost, merged, or off-colour).
  """
  total, misses = 0, collections.Counter()
  for image, scene in zip(images, scenes):
    pred = score_image(image)
    matches = matched_objects(pred, scene)
    used = set(matches)
    free = [p for j, p in enumerate(pred) if j not in used]
    total += len(scene["objects"])
    for obj, match in zip(scene["objects"], matches):
      if match is not None:
        continue
      x0, y0, x1, y1 = obj["box"]
      near = [p for p in free if p["color"] == obj["color"]
              and x0 - 2 <= p["center"][0] <= x1 + 2 and y0 - 2 <= p["center"][1] <= y1 + 2]
      dist = lambda p: np.hypot(p["center"][0] - obj["center"][0], p["center"][1] - obj["center"][1])
      got = min(near, key=dist)["shape"] if near else "none"
      misses[f"{obj['shape']}/{obj['size']}->{got}"] += 1
  return total, misses


def object_recovery(images: np.ndarray, scenes: list[dict]) -> float:
  """Share of all objects (pooled over images) recovered with the right shape and colour."""
  total, misses = object_misses(images, scenes)
  return (total - sum(misses.values())) / max(total, 1)


def mean_psnr(recons: np.ndarray, images: np.ndarray) -> float:
  """Mean over images of the per-image PSNR in dB (uint8 pixel range 255)."""
  mse = np.mean((recons.astype(np.float64) - images.astype(np.float64)) ** 2, axis=(1, 2, 3))
  return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))


def reconstruct(tok, variables, images: np.ndarray, batch_size: int = 64,
                encode_batch=None) -> tuple[np.ndarray, np.ndarray]:
  """(codes int32 [n, h, w], reconstructions uint8 [n, H, W, 3]): the encode -> decode
  round trip of `images` in batches."""
  encode_batch = encode_batch or tok.batch_encoder(variables)
  codes, recons = [], []
  for i in range(0, len(images), batch_size):
    c = encode_batch(images[i:i + batch_size])
    codes.append(np.asarray(c))
    recons.append(np.asarray(tok.decode(variables, c)))
  return np.concatenate(codes), np.concatenate(recons)


def metrics(codebook_size: int, codes: np.ndarray, recons: np.ndarray, images: np.ndarray,
            scenes: list[dict]) -> dict:
  """The metrics of the module docstring from a round trip's codes and reconstructions."""
  counts = np.bincount(codes.reshape(-1), minlength=codebook_size)
  p = counts / counts.sum()
  nz = p[p > 0]
  return {
      "psnr": mean_psnr(recons, images),
      "codebook_usage": float(np.mean(counts > 0)),
      "perplexity": float(np.exp(-np.sum(nz * np.log(nz)))),
      "object_recovery": object_recovery(recons, scenes),
      "object_recovery_original": object_recovery(images, scenes),
      "num_images": int(len(images)),
  }


def evaluate(tok, variables, images: np.ndarray, scenes: list[dict], batch_size: int = 64,
             encode_batch=None) -> dict:
  """Round-trips `images` through the tokenizer and scores the reconstructions."""
  codes, recons = reconstruct(tok, variables, images, batch_size, encode_batch)
  return metrics(tok.config.codebook_size, codes, recons, images, scenes)
