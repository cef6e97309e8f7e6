"""Procedural scenes: a scene graph sampled from a seed, rendered with numpy.

Public API (pure numpy; deterministic by `(split, seed)`):

  render_scene(seed, image_size=64, split="train", text_prob=0.3, cell=0, max_objects=4)
      -> (image uint8 [S, S, 3], scene_graph dict)
  sample_scene(seed, image_size=64, split="train", text_prob=0.3, cell=0, max_objects=4)
      -> scene_graph
  draw_scene(scene_graph) -> image uint8 [S, S, 3]

Placement (`cell`):
  0       free: objects anywhere in the canvas (every pixel offset)
  c > 0   in token cells: the canvas is a grid of c x c pixel cells and every object (and
          the text) is centred in its own cell. With c = VQ downsampling x fold (e.g. 4 x 4
          = 16 px), an object's codes always fill the same slots of one folded image token,
          so the fold MLP sees each object at one offset instead of c * c of them
          (docs/LEARNING.md, "the shift problem"). Object sides are `CELL_SIDES` of the
          cell (large 13-14 px, small 11-12 px at c = 16), sized so that the demo's 4x VQ
          reconstructs them (object recovery 0.94 vs 0.92 for the free world's sizes).

A scene has 1-`max_objects` (default 4) non-overlapping objects (shape from `palette.SHAPES`, colour
from `palette.COLORS`, size "small" or "large"), each (shape, colour) pair at
most once, on a dark background; a share of scenes (`text_prob`) also carries a
short white text of 1-3 glyphs (digits / capitals, 3 x 5 px at 64 px, scaled
with the image size), which needs fine detail to read.

Scene graph (JSON-serialisable):
  {"image_size": S, "split": str, "seed": int, "background": [r, g, b],
   "objects": [{"shape": str, "color": str, "size": "small"|"large",
                "box": [x0, y0, x1, y1],        # pixels, end exclusive
                "center": [cx, cy],             # pixels (float)
                "region": "top left" | ... | "center"}, ...],
   "text": str ("" when none), "text_box": [x0, y0, x1, y1] or None}

Splits: "train", "validation", "test" draw (shape, colour) pairs outside
`HELDOUT_PAIRS`; "compositional" puts at least one held-out pair in every scene.
Each split has its own seed stream, so seed 0 of "train" and of "test" differ.
"""

import numpy as np

from data_pipelines.scenes import palette as pal

SPLITS = ("train", "validation", "test", "compositional")
_SPLIT_STREAM = {name: i + 1 for i, name in enumerate(SPLITS)}
_MAX_PLACEMENT_TRIES = 200
# Object side as a fraction of the cell, per size, under in-cell placement.
CELL_SIDES = {"large": (0.8125, 0.875), "small": (0.6875, 0.75)}
MAX_OBJECTS = 4

_ALLOWED_PAIRS = tuple(
    (s, c) for s in pal.SHAPES for c in pal.COLOR_NAMES if (s, c) not in pal.HELDOUT_PAIRS
)
_HELDOUT = tuple(sorted(pal.HELDOUT_PAIRS))
ALL_PAIRS = tuple((s, c) for s in pal.SHAPES for c in pal.COLOR_NAMES)


def region_name(cx: float, cy: float, image_size: int) -> str:
  """3 x 3 region of a point: "top left", ..., "center", ..., "bottom right"."""
  third = image_size / 3
  h = "left" if cx < third else ("right" if cx >= 2 * third else "center")
  v = "top" if cy < third else ("bottom" if cy >= 2 * third else "middle")
  if v == "middle" and h == "center":
    return "center"
  return f"{v} {h}"


def _overlaps(box, boxes, gap: int) -> bool:
  x0, y0, x1, y1 = box
  for b in boxes:
    if x0 < b[2] + gap and b[0] < x1 + gap and y0 < b[3] + gap and b[1] < y1 + gap:
      return True
  return False


def _place(rng, w: int, h: int, image_size: int, boxes, gap: int):
  """A random box of w x h pixels inside the canvas clear of `boxes`, or None."""
  margin = 1
  for _ in range(_MAX_PLACEMENT_TRIES):
    x0 = int(rng.integers(margin, image_size - margin - w + 1))
    y0 = int(rng.integers(margin, image_size - margin - h + 1))
    box = [x0, y0, x0 + w, y0 + h]
    if not _overlaps(box, boxes, gap):
      return box
  return None


def cells_of(image_size: int, cell: int) -> int:
  """Cells per side of the in-cell placement grid; validates `cell`."""
  if cell < 0 or (cell and (image_size % cell or image_size // cell < 2)):
    raise ValueError(f"cell must be 0 (free placement) or divide image_size={image_size} "
                     f"into at least 2 x 2 cells, got {cell}")
  return image_size // cell if cell else 0


def _cell_box(rng, w: int, h: int, cell: int, free_cells: list):
  """A w x h box centred in a cell drawn from `free_cells` (removed from it), or None."""
  if not free_cells or w > cell or h > cell:
    return None
  row, col = free_cells.pop(int(rng.integers(len(free_cells))))
  x0 = col * cell + (cell - w) // 2
  y0 = row * cell + (cell - h) // 2
  return [x0, y0, x0 + w, y0 + h]


def _rng(seed: int, split: str) -> np.random.Generator:
  if split not in _SPLIT_STREAM:
    raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
  if seed < 0:
    raise ValueError(f"seed must be >= 0, got {seed}")
  return np.random.default_rng([_SPLIT_STREAM[split], int(seed)])


def sample_scene(seed: int, image_size: int = 64, split: str = "train",
                 text_prob: float = 0.3, cell: int = 0, max_objects: int = MAX_OBJECTS
                 ) -> dict:
  """Samples a scene graph (no pixels). Deterministic by (split, seed, image_size, cell,
  max_objects); `cell=0, max_objects=4` is the free world of every earlier release."""
  if image_size < 32:
    raise ValueError(f"image_size must be >= 32 pixels, got {image_size}")
  n_cells = cells_of(image_size, cell)
  if not 1 <= max_objects <= MAX_OBJECTS:
    raise ValueError(f"max_objects must be in [1, {MAX_OBJECTS}], got {max_objects}")
  rng = _rng(seed, split)
  background = list(pal.BACKGROUNDS[int(rng.integers(len(pal.BACKGROUNDS)))])
  num_objects = int(rng.integers(1, max_objects + 1))
  pairs = list(_ALLOWED_PAIRS)
  chosen = []
  if split == "compositional":
    chosen.append(_HELDOUT[int(rng.integers(len(_HELDOUT)))])
    pairs = [p for p in ALL_PAIRS if p != chosen[0]]
  order = rng.permutation(len(pairs))
  chosen += [pairs[i] for i in order[: num_objects - len(chosen)]]

  gap = max(2, image_size // 32)
  free_cells = [(r, c) for r in range(n_cells) for c in range(n_cells)]
  boxes, objects = [], []
  for shape, color in chosen:
    size = "large" if rng.random() < 0.5 else "small"
    if cell:
      lo, hi = CELL_SIDES[size]
      side = int(round(cell * rng.uniform(lo, hi)))
      box = _cell_box(rng, side, side, cell, free_cells)
    else:
      lo, hi = (0.28, 0.36) if size == "large" else (0.17, 0.22)
      side = int(round(image_size * rng.uniform(lo, hi)))
      box = _place(rng, side, side, image_size, boxes, gap)
    if box is None:  # canvas full: keep the scene with fewer objects
      continue
    boxes.append(box)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    objects.append({"shape": shape, "color": color, "size": size, "box": box,
                    "center": [cx, cy], "region": region_name(cx, cy, image_size)})

  text, text_box = "", None
  if rng.random() < text_prob:
    n = int(rng.integers(1, 4))
    candidate = "".join(pal.TEXT_ALPHABET[int(i)]
                        for i in rng.integers(len(pal.TEXT_ALPHABET), size=n))
    w, h = pal.text_extent(candidate, max(1, image_size // 64))
    box = (_cell_box(rng, w, h, cell, free_cells) if cell
           else _place(rng, w, h, image_size, boxes, gap))
    if box is not None:
      text, text_box = candidate, box
  return {"image_size": int(image_size), "split": split, "seed": int(seed),
          "background": background, "objects": objects, "text": text,
          "text_box": text_box}


def draw_scene(scene: dict) -> np.ndarray:
  """Renders a scene graph to uint8 pixels [S, S, 3] (crisp, no anti-aliasing)."""
  s = int(scene["image_size"])
  img = np.empty((s, s, 3), dtype=np.uint8)
  img[:] = np.asarray(scene["background"], dtype=np.uint8)
  for obj in scene["objects"]:
    img[pal.shape_mask(obj["shape"], obj["box"], s, s)] = pal.COLORS[obj["color"]]
  if scene.get("text"):
    x0, y0 = scene["text_box"][:2]
    ink = pal.text_mask(scene["text"], max(1, s // 64))  # [h, w]
    h, w = ink.shape
    img[y0:y0 + h, x0:x0 + w][ink] = pal.TEXT_COLOR
  return img


def render_scene(seed: int, image_size: int = 64, split: str = "train",
                 text_prob: float = 0.3, cell: int = 0, max_objects: int = MAX_OBJECTS
                 ) -> tuple[np.ndarray, dict]:
  """(image uint8 [S, S, 3], scene_graph) for one seed; see the module docstring."""
  scene = sample_scene(seed, image_size=image_size, split=split, text_prob=text_prob,
                       cell=cell, max_objects=max_objects)
  return draw_scene(scene), scene
