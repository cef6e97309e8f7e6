"""Random but well-formed task batches (docs/ARCHITECTURE.md, "The batch contract"), for
tests and benchmarks.

Rows are packed with several examples; each example is
`<s> text... <boi> [folded image patches] <eoi> text... </s>`; understanding puts
targets on the trailing text, generation on the image patches and `<eoi>`.
"""

import numpy as np

from synergen_jax import batch as batch_lib
from synergen_jax.model.config import ModelConfig


def synthetic_task_batch(config: ModelConfig, rng: np.random.Generator, batch_size: int,
                         length: int, task: str = "understanding",
                         examples_per_row: int = 2) -> dict[str, np.ndarray]:
  if task not in ("understanding", "generation"):
    raise ValueError(f"task must be 'understanding' or 'generation', got {task!r}")
  c = config
  v = c.vocab_size
  boi, eoi, img = v + 0, v + 1, v + 3
  bos, eos = 1, 2
  mn, patches = c.patch_size, c.patches_per_tile
  out = batch_lib.empty((batch_size, length), mn, pad_id=0)
  example_len = length // examples_per_row
  for row in range(batch_size):
    start = 0
    for seg in range(1, examples_per_row + 1):
      n_img = min(patches, max(1, example_len - 8))
      n_text = max(2, (example_len - n_img - 4) // 2)
      toks = ([bos] + list(rng.integers(3, v, n_text)) + [boi] + [img] * n_img + [eoi]
              + list(rng.integers(3, v, n_text)) + [eos])
      toks = toks[:example_len]
      n = len(toks)
      sl = slice(start, start + n)
      out["tokens"][row, sl] = toks
      out["segment_ids"][row, sl] = seg
      out["positions"][row, sl] = np.arange(n)
      img_pos = [i for i, t in enumerate(toks) if t == img]
      for k, i in enumerate(img_pos):
        out["is_image"][row, start + i] = True
        out["patch_index"][row, start + i] = k % patches
        out["image_codes"][row, start + i] = rng.integers(0, c.codebook_size, mn)
      after = (img_pos[-1] + 1) if img_pos else n
      if task == "understanding":
        out["text_target"][row, start + after + 1: start + n] = 1.0
      else:
        for i in img_pos:
          out["image_target"][row, start + i] = 1.0
        if after < n:
          out["text_target"][row, start + after] = 1.0  # <eoi>
      start += n
  return out
