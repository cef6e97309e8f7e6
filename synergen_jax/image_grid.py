"""Index math between a VQ code grid and its folded m x n patches.

Pure array-shape logic shared by the model (token folding / unfolding), the data
pipelines (building `image_codes`) and inference (re-assembling a generated grid).
Works on NumPy and JAX arrays alike (only `.reshape` and `.swapaxes` are used).

A grid [h, w] folds into (h // m) * (w // n) patches laid out in raster order of
patches; inside a patch the m * n codes are row-major.
"""

from typing import Any


def check_foldable(h: int, w: int, m: int, n: int, what: str = "grid") -> None:
  """Raises ValueError unless an h x w grid splits into whole m x n patches."""
  if m <= 0 or n <= 0:
    raise ValueError(f"fold size must be positive, got (m, n) = ({m}, {n})")
  if h % m or w % n:
    raise ValueError(
        f"{what} of {h} x {w} codes is not divisible by the fold (m, n) = ({m}, {n}); "
        f"expected h % m == 0 and w % n == 0"
    )


def num_patches(h: int, w: int, m: int, n: int) -> int:
  check_foldable(h, w, m, n)
  return (h // m) * (w // n)


def fold_grid(grid: Any, m: int, n: int) -> Any:
  """[..., h, w] -> [..., (h//m) * (w//n), m * n]."""
  h, w = grid.shape[-2], grid.shape[-1]
  check_foldable(h, w, m, n)
  batch = grid.shape[:-2]
  x = grid.reshape(*batch, h // m, m, w // n, n)
  x = x.swapaxes(-3, -2)  # [..., h//m, w//n, m, n]
  return x.reshape(*batch, (h // m) * (w // n), m * n)


def unfold_patches(patches: Any, h: int, w: int, m: int, n: int) -> Any:
  """Inverse of `fold_grid`: [..., P, m * n] -> [..., h, w]."""
  check_foldable(h, w, m, n)
  p, mn = patches.shape[-2], patches.shape[-1]
  if p != (h // m) * (w // n) or mn != m * n:
    raise ValueError(
        f"patches of shape [..., {p}, {mn}] do not unfold to a {h} x {w} grid with "
        f"fold ({m}, {n}); expected [..., {(h // m) * (w // n)}, {m * n}]"
    )
  batch = patches.shape[:-2]
  x = patches.reshape(*batch, h // m, w // n, m, n)
  x = x.swapaxes(-3, -2)  # [..., h//m, m, w//n, n]
  return x.reshape(*batch, h, w)
