"""The batch schema: the fields of a task batch, their dtypes, pad values and shapes.

Every batch the model reads is a dict of these fields (docs/ARCHITECTURE.md, "The batch
contract"): a packed training batch from `data_pipelines`, an inference prompt, a
one-position decode step, the all-zero batch that traces shapes.

  field          dtype      shape                      pad value
  tokens         int32      # [batch, length]          the tokenizer's pad id (an argument)
  image_codes    int32      # [batch, length, m*n]     0
  is_image       bool       # [batch, length]          False
  patch_index    int32      # [batch, length]          0
  segment_ids    int32      # [batch, length]          0 (segment 0 is padding)
  positions      int32      # [batch, length]          0
  text_target    float32    # [batch, length]          0.0
  image_target   float32    # [batch, length]          0.0

An example (one unpacked sequence, `data_pipelines.pipeline.sequences`) holds `EXAMPLE_FIELDS`
over its n positions ([n], image_codes [n, m*n]); packing or padding adds segment_ids
and positions. A prompt and a decode step hold `INPUT_FIELDS` (no targets).

It imports nothing from the project, so the data pipelines and the model both build on it.
"""

import dataclasses
from typing import Any, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Field:
  dtype: np.dtype
  pad: bool | int | float | None  # None: the tokenizer's pad id
  codes_axis: bool = False        # a trailing m*n axis: a folded patch's codes


SCHEMA = {
    "tokens": Field(np.dtype(np.int32), None),                     # [batch, length]
    "image_codes": Field(np.dtype(np.int32), 0, codes_axis=True),  # [batch, length, m*n]
    "is_image": Field(np.dtype(bool), False),                      # [batch, length]
    "patch_index": Field(np.dtype(np.int32), 0),                   # [batch, length]
    "segment_ids": Field(np.dtype(np.int32), 0),                   # [batch, length]
    "positions": Field(np.dtype(np.int32), 0),                     # [batch, length]
    "text_target": Field(np.dtype(np.float32), 0.0),               # [batch, length]
    "image_target": Field(np.dtype(np.float32), 0.0),              # [batch, length]
}
FIELDS = tuple(SCHEMA)
DTYPES = {k: f.dtype for k, f in SCHEMA.items()}
PACKING_FIELDS = ("segment_ids", "positions")  # added when examples become rows
TARGET_FIELDS = ("text_target", "image_target")
EXAMPLE_FIELDS = tuple(k for k in FIELDS if k not in PACKING_FIELDS)
INPUT_FIELDS = tuple(k for k in FIELDS if k not in TARGET_FIELDS)


def pad_value(name: str, pad_id: int | None) -> bool | int | float:
  """The value of field `name` on padding (tokens: `pad_id`)."""
  pad = SCHEMA[name].pad
  if pad is None:
    if pad_id is None:
      raise ValueError(f"{name} pads with the tokenizer's pad id: pass pad_id")
    return pad_id
  return pad


def padding_struct(pad_id: int) -> dict:
  """Pad values of an example's fields, for grain's packer (`padding_struct`)."""
  return {k: pad_value(k, pad_id) for k in EXAMPLE_FIELDS}


def _shape(name: str, lead: tuple[int, ...], mn: int) -> tuple[int, ...]:
  return tuple(lead) + ((mn,) if SCHEMA[name].codes_axis else ())


def make(lead: tuple[int, ...], mn: int, fields: Sequence[str] = FIELDS, *,
         pad_id: int | None = None, xp: Any = np, **values) -> dict:
  """Arrays of `fields`, each of shape `lead` (+ [m*n] for image_codes) and its dtype:
  `values` (broadcast, cast) where given, pad values elsewhere (`pad_id` is needed only
  when tokens are padded). `xp`: numpy (writable arrays of their own) or jax.numpy."""
  unknown = sorted(set(values) - set(fields))
  if unknown:
    raise ValueError(f"values for {unknown}, which are not among the fields {tuple(fields)}")
  out = {}
  for k in fields:
    shape, dtype = _shape(k, lead, mn), DTYPES[k]
    if k not in values:
      out[k] = xp.full(shape, pad_value(k, pad_id), dtype)
    elif xp is np:
      out[k] = np.array(np.broadcast_to(np.asarray(values[k], dtype), shape))
    else:
      out[k] = xp.broadcast_to(xp.asarray(values[k], dtype), shape)
  return out


def empty(lead: tuple[int, ...], mn: int, pad_id: int, fields: Sequence[str] = FIELDS, *,
          xp: Any = np) -> dict:
  """All-pad arrays of `fields` (see `make`), e.g. lead = (batch, length)."""
  return make(lead, mn, fields, pad_id=pad_id, xp=xp)


def pad_to(examples: Sequence[dict], width: int, pad_id: int, mn: int,
           fields: Sequence[str] = FIELDS) -> dict:
  """One example (1-D arrays) per row, right-padded to `width`: numpy arrays
  [len(examples), width] of `fields`; segment_ids 1 and positions 0.. on an example's
  positions, pad values after it."""
  out = empty((len(examples), width), mn, pad_id, fields)
  for r, e in enumerate(examples):
    n = len(e["tokens"])
    if n > width:
      raise ValueError(f"an example of {n} tokens does not fit a row of {width}")
    for k in fields:
      if k == "segment_ids":
        out[k][r, :n] = 1
      elif k == "positions":
        out[k][r, :n] = np.arange(n)
      else:
        out[k][r, :n] = e[k]
  return out
