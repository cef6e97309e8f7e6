"""Dynamic tiling geometry and robust image decoding."""

import io

import numpy as np
import PIL.Image
import pytest

from data_pipelines.pipeline import tiling
from data_pipelines.sources import image_io


@pytest.mark.parametrize("w,h,max_tiles,expected", [
    (64, 64, 1, (1, 1)),
    (64, 64, 6, (1, 1)),
    (128, 64, 6, (2, 1)),
    (64, 192, 6, (1, 3)),
    (300, 100, 12, (6, 2)),  # exact ratio tie: large image takes the bigger grid
    (150, 50, 12, (3, 1)),
    (1000, 10, 6, (6, 1)),
    (128, 128, 6, (2, 2)),  # tie between 1x1 and 2x2: the larger image takes 2x2
    (40, 40, 6, (1, 1)),    # tie but small: stays 1x1
])
def test_find_tile_grid(w, h, max_tiles, expected):
  assert tiling.find_tile_grid(w, h, max_tiles, tile_size=64) == expected


def test_candidate_grids_bounds():
  grids = tiling.candidate_grids(6)
  assert all(1 <= c * r <= 6 for c, r in grids)
  assert (2, 3) in grids and (3, 2) in grids and (1, 6) in grids and (7, 1) not in grids
  with pytest.raises(ValueError):
    tiling.candidate_grids(0)


def test_dynamic_tiles_layout_and_thumbnail():
  img = np.zeros((64, 128, 3), np.uint8)
  img[:, 64:] = 200  # right half bright
  tiles, grid = tiling.dynamic_tiles(img, 32, max_tiles=6, use_thumbnail=True)
  assert grid == (2, 1)
  assert tiles.shape == (3, 32, 32, 3)  # 2 tiles + thumbnail
  assert tiles[0].mean() < 5 and tiles[1].mean() > 195  # raster order: left, right
  assert 90 < tiles[2].mean() < 110  # the thumbnail sees both halves
  single, grid = tiling.dynamic_tiles(img[:, :64], 64, max_tiles=6, use_thumbnail=True)
  assert grid == (1, 1) and single.shape == (1, 64, 64, 3)  # no thumbnail for one tile


def test_resize_center_crop():
  img = np.zeros((40, 80, 3), np.uint8)
  img[:, 20:60] = 255
  out = image_io.resize_center_crop(img, 20)
  assert out.shape == (20, 20, 3)
  assert out.min() > 200  # the centre square is the bright band


def _png(img: PIL.Image.Image) -> bytes:
  buf = io.BytesIO()
  img.save(buf, format="PNG")
  return buf.getvalue()


def test_decode_handles_pixel_formats():
  rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
  np.testing.assert_array_equal(image_io.decode_image(_png(PIL.Image.fromarray(rgb))), rgb)
  rgba = np.concatenate([rgb, np.full((5, 7, 1), 255, np.uint8)], -1)
  np.testing.assert_array_equal(image_io.decode_image(_png(PIL.Image.fromarray(rgba))), rgb)
  transparent = rgba.copy()
  transparent[..., 3] = 0
  assert (image_io.decode_image(_png(PIL.Image.fromarray(transparent))) == 255).all()
  gray = image_io.decode_image(_png(PIL.Image.fromarray(rgb[..., 0])))
  assert gray.shape == (5, 7, 3) and (gray[..., 1] == rgb[..., 0]).all()
  pal = image_io.decode_image(_png(PIL.Image.fromarray(rgb).quantize(8)))
  assert pal.shape == (5, 7, 3) and pal.dtype == np.uint8
  deep = (np.arange(35, dtype=np.uint16).reshape(5, 7) * 1800)
  dec16 = image_io.decode_image(_png(PIL.Image.fromarray(deep)))
  np.testing.assert_array_equal(dec16[..., 0], (deep >> 8).astype(np.uint8))
  np.testing.assert_array_equal(image_io.decode_image(deep)[..., 0], (deep >> 8).astype(np.uint8))


@pytest.mark.parametrize("bad", [b"", b"\x89PNG garbage", np.zeros((0, 4, 3), np.uint8),
                                 np.zeros((4, 4, 5), np.uint8), "not an image"])
def test_decode_rejects_bad_inputs(bad):
  with pytest.raises(image_io.ImageDecodeError):
    image_io.decode_image(bad)
