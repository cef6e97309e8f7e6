"""A PNG montage of generated images, one row per prompt with the prompt written above.

(Not `synergen_jax/image_grid.py`, which is the fold index math of a code grid.)
"""

import textwrap

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont


def image_montage(rows: list[tuple[str, np.ndarray]], scale: int = 2, gap: int = 4,
               line_height: int = 12) -> PIL.Image.Image:
  """rows: (prompt, uint8 images [k, H, W, 3]) -> one RGB image."""
  if not rows:
    raise ValueError("no rows to draw")
  h, w = rows[0][1].shape[1:3]
  cols = max(r[1].shape[0] for r in rows)
  cell_w, cell_h = w * scale, h * scale
  width = cols * (cell_w + gap) + gap
  chars = max(8, width // 6)
  texts = [textwrap.wrap(p, chars) or [""] for p, _ in rows]
  height = sum(len(t) * line_height + cell_h + 2 * gap for t in texts) + gap
  canvas = PIL.Image.new("RGB", (width, height), (255, 255, 255))
  draw = PIL.ImageDraw.Draw(canvas)
  font = PIL.ImageFont.load_default()
  y = gap
  for (prompt, images), lines in zip(rows, texts):
    for line in lines:
      draw.text((gap, y), line, fill=(0, 0, 0), font=font)
      y += line_height
    y += gap
    for c, im in enumerate(images):
      tile = PIL.Image.fromarray(np.asarray(im, np.uint8)).resize((cell_w, cell_h),
                                                                  PIL.Image.NEAREST)
      canvas.paste(tile, (gap + c * (cell_w + gap), y))
    y += cell_h + gap
  return canvas
