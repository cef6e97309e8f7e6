"""How many text and image targets the rows of real batches hold, against the model's
static per-row head budgets (`max_text_targets`, `max_gen_patches`).

Both output heads run on a static per-row buffer of target positions (model/synergen.py):
a budget below what the data holds drops targets (counted, `{task}/..._dropped`), one far
above it runs the head on positions that are never targets (compiled FLOPs that do no
work, docs/TPU_FIT.md). `benchmarks/head_budgets.py` measures a stage's train batches
with these functions and suggests budgets.
"""

import numpy as np

from synergen_jax.model.synergen import target_pair_mask

LANES = 128  # a suggested budget is a multiple of the TPU lane width (or the row length)


def row_targets(batch: dict) -> dict[str, np.ndarray]:
  """Per row of one task batch: {"text": text targets, "image": image-target patches,
  "tokens": non-pad tokens}, each [rows] int, counted exactly as the model counts them
  (a target never crosses a segment boundary)."""
  pair = np.asarray(target_pair_mask(np.asarray(batch["segment_ids"])))
  text = (np.asarray(batch["text_target"]) * pair)[:, 1:] > 0
  image = (np.asarray(batch["image_target"]) * pair)[:, 1:] > 0
  return {"text": text.sum(axis=1), "image": image.sum(axis=1),
          "tokens": (np.asarray(batch["segment_ids"]) > 0).sum(axis=1)}


def suggest(observed_max: int, row_length: int) -> int:
  """The observed maximum rounded up to a multiple of `LANES`, at most the row length."""
  return int(min(row_length, -(-max(int(observed_max), 1) // LANES) * LANES))


def summarize(per_row: np.ndarray, budget: int, row_length: int) -> dict:
  """Distribution of per-row target counts against a budget (0 = every position)."""
  x = np.asarray(per_row, np.int64)
  over = np.maximum(x - budget, 0) if budget > 0 else np.zeros_like(x)
  return {
      "rows": int(x.size), "mean": float(x.mean()), "p50": float(np.percentile(x, 50)),
      "p99": float(np.percentile(x, 99)), "max": int(x.max()),
      "fraction_of_row": float(x.mean() / row_length),
      "budget": int(budget), "rows_over_budget": int((over > 0).sum()),
      "targets_dropped": int(over.sum()),
      "budget_use": float(x.mean() / budget) if budget > 0 else float("nan"),
      "suggested_budget": suggest(x.max(), row_length),
  }
