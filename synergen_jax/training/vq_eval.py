"""Validation of a VQ tokenizer on the scene dataset.

Metrics (all on the uint8 round trip encode -> decode, as the generator will see it):
  psnr             mean per-image PSNR in dB (pixel range 255)
  codebook_usage   share of the codebook used by the validation set
  perplexity       exp(entropy) of the validation code distribution
  object_recovery  share of the scenes' objects whose shape and colour the pixel-only
                   scene scorer recovers from the reconstructions
  object_recovery_original  the same on the original renders (the scorer's ceiling)
"""

import numpy as np

from data_pipelines.scene_scorer import match_fraction, score_image


def object_recovery(images: np.ndarray, scenes: list[dict]) -> float:
  """Share of all objects (pooled over images) recovered with the right shape and colour."""
  matched = total = 0
  for image, scene in zip(images, scenes):
    n = len(scene["objects"])
    matched += round(match_fraction(score_image(image), scene) * n)
    total += n
  return matched / max(total, 1)


def mean_psnr(recons: np.ndarray, images: np.ndarray) -> float:
  """Mean over images of the per-image PSNR in dB (uint8 pixel range 255)."""
  mse = np.mean((recons.astype(np.float64) - images.astype(np.float64)) ** 2, axis=(1, 2, 3))
  return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))


def evaluate(tok, variables, images: np.ndarray, scenes: list[dict], batch_size: int = 64,
             encode_batch=None) -> dict:
  """Round-trips `images` through the tokenizer and scores the reconstructions."""
  encode_batch = encode_batch or tok.batch_encoder(variables)
  codes, recons = [], []
  for i in range(0, len(images), batch_size):
    c = encode_batch(images[i:i + batch_size])
    codes.append(c)
    recons.append(np.asarray(tok.decode(variables, c)))
  codes, recons = np.concatenate(codes), np.concatenate(recons)
  psnr = mean_psnr(recons, images)
  counts = np.bincount(codes.reshape(-1), minlength=tok.config.codebook_size)
  p = counts / counts.sum()
  nz = p[p > 0]
  return {
      "psnr": psnr,
      "codebook_usage": float(np.mean(counts > 0)),
      "perplexity": float(np.exp(-np.sum(nz * np.log(nz)))),
      "object_recovery": object_recovery(recons, scenes),
      "object_recovery_original": object_recovery(images, scenes),
      "num_images": int(len(images)),
  }
