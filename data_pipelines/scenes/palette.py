"""The visual vocabulary of the embedded scene dataset: shapes, colours, font.

Shared by the renderer (`render.py`) and the pixel-only scorer (`scorer.py`),
so both agree on what a "red triangle" looks like:

- `SHAPES`: circle, square, triangle (apex up), diamond, cross.
- `COLORS`: six saturated, well separated RGB colours (name -> (r, g, b)).
- `BACKGROUNDS`: dark neutral backgrounds; `TEXT_COLOR`: white, used only for text.
- `shape_mask(shape, box, height, width)`: the boolean pixel mask of a shape drawn
  into a box `[x0, y0, x1, y1)` (pixel units, end exclusive) on an H x W canvas.
- `GLYPHS`: a 3 x 5 bitmap font (digits and a few capitals) for the small text
  that makes some images need fine detail to read.
"""

import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond", "cross")

COLORS = {
    "red": (230, 30, 30),
    "green": (30, 190, 60),
    "blue": (40, 90, 240),
    "yellow": (240, 220, 30),
    "purple": (160, 50, 210),
    "orange": (250, 140, 20),
}
COLOR_NAMES = tuple(COLORS)

BACKGROUNDS = ((20, 20, 20), (44, 44, 44), (28, 32, 48))
TEXT_COLOR = (245, 245, 245)

# Attribute combinations never drawn in train/validation/test; the held-out
# "compositional" split puts at least one of them in every scene. Every shape and
# every colour still occurs in train (with other partners).
HELDOUT_PAIRS = frozenset({
    ("circle", "green"),
    ("square", "purple"),
    ("triangle", "orange"),
    ("diamond", "red"),
    ("cross", "blue"),
})

# 3 x 5 bitmap glyphs, one string per row, '#' = ink.
GLYPHS = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", "###", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", ".#.", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
    "A": (".#.", "#.#", "###", "#.#", "#.#"),
    "C": ("###", "#..", "#..", "#..", "###"),
    "E": ("###", "#..", "###", "#..", "###"),
    "F": ("###", "#..", "###", "#..", "#.."),
    "H": ("#.#", "#.#", "###", "#.#", "#.#"),
    "K": ("#.#", "##.", "#..", "##.", "#.#"),
    "L": ("#..", "#..", "#..", "#..", "###"),
    "P": ("###", "#.#", "###", "#..", "#.."),
    "T": ("###", ".#.", ".#.", ".#.", ".#."),
    "X": ("#.#", "#.#", ".#.", "#.#", "#.#"),
}
GLYPH_W, GLYPH_H = 3, 5
TEXT_ALPHABET = "".join(GLYPHS)


def shape_mask(shape: str, box, height: int, width: int) -> np.ndarray:
  """Boolean mask [height, width] of `shape` inscribed in `box` = (x0, y0, x1, y1).

  Pixel (row y, col x) is inside when its centre (x + .5, y + .5) is inside the
  continuous shape. The box is in pixels, end exclusive, and may be non-square
  (the scorer fits templates into detected boxes).
  """
  x0, y0, x1, y1 = (float(v) for v in box)
  ys = np.arange(height, dtype=np.float32)[:, None] + 0.5  # [H, 1]
  xs = np.arange(width, dtype=np.float32)[None, :] + 0.5  # [1, W]
  inside_box = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)  # [H, W]
  cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
  hw, hh = max((x1 - x0) / 2, 1e-6), max((y1 - y0) / 2, 1e-6)
  u, v = (xs - cx) / hw, (ys - cy) / hh  # both in [-1, 1] inside the box
  if shape == "square":
    m = inside_box
  elif shape == "circle":
    m = u * u + v * v <= 1.0
  elif shape == "triangle":  # apex at top centre, base along the bottom edge
    m = inside_box & (np.abs(u) <= (v + 1.0) / 2.0)
  elif shape == "diamond":
    m = np.abs(u) + np.abs(v) <= 1.0
  elif shape == "cross":  # plus sign, arms one third of the box wide
    m = inside_box & ((np.abs(u) <= 1 / 3) | (np.abs(v) <= 1 / 3))
  else:
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
  return np.asarray(m & inside_box)


def text_extent(text: str, scale: int) -> tuple[int, int]:
  """(width, height) in pixels of `text` rendered with the bitmap font."""
  n = len(text)
  return (n * (GLYPH_W + 1) - 1) * scale, GLYPH_H * scale


def text_mask(text: str, scale: int) -> np.ndarray:
  """Boolean ink mask [GLYPH_H * scale, width] of `text` (1 px gap between glyphs)."""
  w, h = text_extent(text, scale)
  out = np.zeros((GLYPH_H, w // scale), dtype=bool)
  for i, ch in enumerate(text):
    if ch not in GLYPHS:
      raise ValueError(f"character {ch!r} has no glyph; alphabet is {TEXT_ALPHABET!r}")
    g = np.array([[c == "#" for c in row] for row in GLYPHS[ch]], dtype=bool)
    out[:, i * (GLYPH_W + 1): i * (GLYPH_W + 1) + GLYPH_W] = g
  return np.kron(out, np.ones((scale, scale), dtype=bool)).astype(bool)
