"""The batch schema (synergen_jax/batch.py) against what the builders produce."""

import grain
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines.pipeline import packing
from data_pipelines.pipeline import sequences
from data_pipelines.pipeline import text as text_pipeline
from synergen_jax import batch as batch_lib
from synergen_jax.configs import models
from synergen_jax.inference import decoding, image_generation, session
from synergen_jax.model import ModelConfig
from synergen_jax.model.dummy import dummy_batch
from synergen_jax.model.synthetic import synthetic_task_batch
from tests import model_utils

FOLD = (2, 2)
MN = FOLD[0] * FOLD[1]


@pytest.fixture(scope="module")
def tok():
  return model_utils.sequence_tokenizer()


_grid = model_utils.code_grid


def _examples(tok):
  return [
      sequences.build_understanding(tok, np.stack([_grid(0), _grid(1)]),
                                    "What color is the square?", "red", FOLD),
      sequences.build_generation(tok, _grid(2), sequences.generation_prompt("a red square",
                                                                            False), FOLD),
      sequences.build_conversation(tok, None, [("Hi?", "red")], FOLD),
      text_pipeline.TextExample(tok, MN, 64)(("plain", "a red square")),
  ]


def _check_fields(b, fields, lead):
  assert list(b) == list(fields)
  for k in fields:
    assert np.asarray(b[k]).dtype == batch_lib.DTYPES[k], k
    trailing = (MN,) if k == "image_codes" else ()
    assert np.asarray(b[k]).shape == lead + trailing, k


def test_examples_and_packed_rows_follow_the_schema(tok):
  examples = _examples(tok)
  for ex in examples:
    _check_fields(ex, batch_lib.EXAMPLE_FIELDS, (len(ex["tokens"]),))
  seq_len = sum(len(e["tokens"]) for e in examples) + 9
  pad_id = 5  # not the tokenizer's 0: the packer must pad tokens with the argument
  ds = grain.MapDataset.source(examples).to_iter_dataset()
  row = next(iter(packing.pack_examples(ds, seq_len, 1, pad_id, seed=0)))
  assert set(row) == set(batch_lib.FIELDS)
  _check_fields({k: row[k] for k in batch_lib.FIELDS}, batch_lib.FIELDS, (seq_len,))
  pad = row["segment_ids"] == 0
  assert pad.sum() == 9
  for k in batch_lib.FIELDS:
    np.testing.assert_array_equal(row[k][pad], batch_lib.pad_value(k, pad_id), err_msg=k)
  # The real positions are the examples' (one bin: segment s is example s - 1).
  for s, ex in enumerate(examples, 1):
    for k in batch_lib.EXAMPLE_FIELDS:
      np.testing.assert_array_equal(row[k][row["segment_ids"] == s], ex[k], err_msg=k)


def test_the_packer_pads_with_the_schema(monkeypatch):
  seen = {}
  real = grain.experimental.FirstFitPackIterDataset

  def spy(ds, **kwargs):
    seen.update(kwargs)
    return real(ds, **kwargs)

  monkeypatch.setattr(grain.experimental, "FirstFitPackIterDataset", spy)
  packing.pack_examples(grain.MapDataset.source([]).to_iter_dataset(), 16, 2, 7, seed=0)
  assert seen["padding_struct"] == batch_lib.padding_struct(7)
  assert list(seen["length_struct"]) == list(batch_lib.EXAMPLE_FIELDS)
  # The values grain fills its buffers with (np.full casts them to the example's dtype).
  struct = batch_lib.padding_struct(7)
  assert struct == {"tokens": 7, "image_codes": 0, "is_image": False, "patch_index": 0,
                    "text_target": 0.0, "image_target": 0.0}
  assert {k: type(v) for k, v in struct.items()} == {
      "tokens": int, "image_codes": int, "is_image": bool, "patch_index": int,
      "text_target": float, "image_target": float}


def test_empty_is_all_pad_values():
  for xp in (np, jnp):
    b = batch_lib.empty((2, 3), MN, pad_id=9, xp=xp)
    _check_fields(b, batch_lib.FIELDS, (2, 3))
    for k in batch_lib.FIELDS:
      assert (np.asarray(b[k]) == batch_lib.pad_value(k, 9)).all(), k
  assert (batch_lib.empty((4,), MN, 9)["tokens"] == 9).all()
  with pytest.raises(ValueError, match="pad_id"):
    batch_lib.make((2, 3), MN)  # tokens would be padded, with no pad id


def test_make_casts_and_broadcasts_values():
  b = batch_lib.make((2, 3), MN, batch_lib.INPUT_FIELDS, tokens=np.arange(3, dtype=np.int64),
                     is_image=1, positions=[[0, 1, 2]])
  _check_fields(b, batch_lib.INPUT_FIELDS, (2, 3))
  np.testing.assert_array_equal(b["tokens"], [[0, 1, 2], [0, 1, 2]])
  assert b["is_image"].all() and (b["segment_ids"] == 0).all()
  b["tokens"][0, 0] = 5  # numpy arrays are writable and not shared between rows
  assert b["tokens"][1, 0] == 0
  with pytest.raises(ValueError, match="text_target"):
    batch_lib.make((2, 3), MN, batch_lib.INPUT_FIELDS, tokens=0, text_target=1.0)


def test_pad_to_right_pads_one_example_per_row(tok):
  examples = _examples(tok)[:2]
  width = max(len(e["tokens"]) for e in examples) + 3
  b = batch_lib.pad_to(examples, width, 11, MN)
  _check_fields(b, batch_lib.FIELDS, (2, width))
  for r, e in enumerate(examples):
    n = len(e["tokens"])
    np.testing.assert_array_equal(b["segment_ids"][r], [1] * n + [0] * (width - n))
    np.testing.assert_array_equal(b["positions"][r, :n], np.arange(n))
    for k in batch_lib.FIELDS:
      if k not in batch_lib.PACKING_FIELDS:
        np.testing.assert_array_equal(b[k][r, :n], e[k], err_msg=k)
      assert (b[k][r, n:] == batch_lib.pad_value(k, 11)).all(), k
  with pytest.raises(ValueError, match="does not fit"):
    batch_lib.pad_to(examples, 4, 11, MN)


def test_model_and_inference_batches_follow_the_schema(tok):
  config = ModelConfig.from_config_dict(models.tiny())
  assert config.patch_size == MN
  _check_fields(dummy_batch(config, 2, 5), batch_lib.FIELDS, (2, 5))
  for task in ("understanding", "generation"):
    _check_fields(synthetic_task_batch(config, np.random.default_rng(0), 2, 32, task),
                  batch_lib.FIELDS, (2, 32))
  rows = jnp.arange(3)
  _check_fields(decoding.text_step_batch(config, rows, rows), batch_lib.INPUT_FIELDS, (3, 1))
  step = image_generation.patch_step_batch(config, 7, jnp.zeros((3, MN)), 2, rows)
  _check_fields(step, batch_lib.INPUT_FIELDS, (3, 1))
  assert (np.asarray(step["patch_index"]) == 2).all() and np.asarray(step["is_image"]).all()
  examples = _examples(tok)
  _check_fields(session.pad_prompts(examples, 5, tok.pad_id, MN, width=128),
                batch_lib.INPUT_FIELDS, (5, 128))
  _check_fields(session.pad_prompts(examples, 5, tok.pad_id, MN, width=128, with_targets=True),
                batch_lib.FIELDS, (5, 128))
