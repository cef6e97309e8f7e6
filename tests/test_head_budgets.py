"""training/head_budgets: per-row target counts as the model counts them, and what a
budget would drop (= what `target_weights` leaves out)."""

import numpy as np
import pytest

from synergen_jax.model.synergen import target_weights
from synergen_jax.training import head_budgets
from tests import model_utils as mu


@pytest.mark.parametrize("task", ["understanding", "generation"])
def test_row_targets_and_drops_agree_with_the_model_counts(task):
  config = mu.tiny_config()
  b = mu.batch(config, task, batch_size=4, length=64, seed=5, examples_per_row=3)
  counts = head_budgets.row_targets(b)
  mn = b["image_codes"].shape[-1]
  text_all, image_all = target_weights(b, max_gen_patches=64, max_text_targets=64)
  assert counts["text"].sum() == float(text_all) > 0
  assert counts["image"].sum() * mn == float(image_all)
  assert (counts["tokens"] == (np.asarray(b["segment_ids"]) > 0).sum(1)).all()
  budget = int(counts["text"].max()) - 1
  s = head_budgets.summarize(counts["text"], budget, 64)
  text_kept, _ = target_weights(b, max_gen_patches=64, max_text_targets=budget)
  assert s["targets_dropped"] == float(text_all - text_kept) >= 1
  assert s["rows_over_budget"] == int((counts["text"] > budget).sum())
  assert s["max"] == budget + 1 and s["rows"] == 4
  assert head_budgets.summarize(counts["text"], 0, 64)["targets_dropped"] == 0


def test_suggested_budget_is_the_max_rounded_to_lanes_within_the_row():
  assert head_budgets.suggest(3000, 4096) == 3072
  assert head_budgets.suggest(3072, 4096) == 3072
  assert head_budgets.suggest(30, 128) == 128
  assert head_budgets.suggest(4000, 4000) == 4000
