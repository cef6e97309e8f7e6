"""Augmentation of VQ code grids: whole-code shifts (the shift problem's data-side probe).

  shift_codes(codes [..., h, w], k, rng) -> codes moved by up to k codes in x and y

A fold of m x n codes is equivariant only to shifts by whole folded tokens; shifting the
code grid by whole codes shows the fold the same object at other slot offsets without
rendering new images. The gap is filled with the grid's corner code (the background in
the scene world). Measured in docs/LEARNING.md ("the shift problem, model side").
"""

import numpy as np


def shift_codes(codes: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
  """codes [..., h, w] (leading dims: independent grids), each grid moved by dy, dx drawn
  uniformly from [-k, k]; cells moved in from outside take the grid's top-left code."""
  codes = np.asarray(codes)
  if k < 0:
    raise ValueError(f"shift k must be >= 0, got {k}")
  if k == 0:
    return codes.copy()
  *lead, h, w = codes.shape
  flat = codes.reshape(-1, h, w)
  out = np.empty_like(flat)
  for i, grid in enumerate(flat):
    dy, dx = (int(v) for v in rng.integers(-k, k + 1, size=2))
    canvas = np.full((h + 2 * k, w + 2 * k), grid[0, 0], dtype=codes.dtype)
    canvas[k:k + h, k:k + w] = grid
    out[i] = canvas[k - dy:k - dy + h, k - dx:k - dx + w]
  return out.reshape(codes.shape)
