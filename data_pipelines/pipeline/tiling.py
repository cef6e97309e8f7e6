"""InternVL-1.5 dynamic resolution for the understanding task (METHOD.md section 7).

  find_tile_grid(width, height, max_tiles, tile_size) -> (cols, rows)
  dynamic_tiles(image, tile_size, max_tiles, use_thumbnail) -> (tiles, (cols, rows))
      tiles: uint8 [T, tile_size, tile_size, 3], the cols x rows grid in raster order,
      plus a global thumbnail last when use_thumbnail and cols * rows > 1.

Each tile is VQ-encoded and folded separately; the sequence builder concatenates
the tiles' folded tokens inside one `<boi>` ... `<eoi>`.
"""

import numpy as np

from data_pipelines.sources import image_io


def candidate_grids(max_tiles: int, min_tiles: int = 1) -> list[tuple[int, int]]:
  """All (cols, rows) with min_tiles <= cols * rows <= max_tiles, by tile count."""
  if max_tiles < 1 or min_tiles < 1 or min_tiles > max_tiles:
    raise ValueError(f"need 1 <= min_tiles <= max_tiles, got {min_tiles}, {max_tiles}")
  grids = {(c, r) for n in range(min_tiles, max_tiles + 1)
           for c in range(1, n + 1) for r in range(1, n + 1) if min_tiles <= c * r <= max_tiles}
  return sorted(grids, key=lambda g: (g[0] * g[1], g))


def find_tile_grid(width: int, height: int, max_tiles: int, tile_size: int,
                   min_tiles: int = 1) -> tuple[int, int]:
  """The grid whose aspect ratio is closest to the image's (InternVL-1.5 rule).

  Ties go to the larger grid when the image has more than half its pixel area.
  """
  aspect = width / height
  area = width * height
  best, best_diff = (1, 1), float("inf")
  for cols, rows in candidate_grids(max_tiles, min_tiles):
    diff = abs(aspect - cols / rows)
    if diff < best_diff:
      best, best_diff = (cols, rows), diff
    elif diff == best_diff and area > 0.5 * tile_size * tile_size * cols * rows:
      best = (cols, rows)
  return best


def dynamic_tiles(image: np.ndarray, tile_size: int, max_tiles: int,
                  use_thumbnail: bool) -> tuple[np.ndarray, tuple[int, int]]:
  """Splits uint8 [H, W, 3] into tiles [T, tile_size, tile_size, 3]; see module doc."""
  h, w = image.shape[:2]
  cols, rows = find_tile_grid(w, h, max_tiles, tile_size)
  resized = image_io.resize(image, cols * tile_size, rows * tile_size)
  tiles = resized.reshape(rows, tile_size, cols, tile_size, 3).swapaxes(1, 2)
  tiles = tiles.reshape(rows * cols, tile_size, tile_size, 3)
  if use_thumbnail and rows * cols > 1:
    thumb = image_io.resize(image, tile_size, tile_size)
    tiles = np.concatenate([tiles, thumb[None]], axis=0)
  return np.ascontiguousarray(tiles), (cols, rows)
