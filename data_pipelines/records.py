"""The pretokenized record: what `pretokenize.py` writes and the pipelines read.

One ArrayRecord record = msgpack (flax.serialization; no pickle) of
  id              str
  gen_codes       int32 [h, w]        codes of the short-edge-resized, centre-cropped image
  und_codes       int32 [T, h, w]     codes of the dynamic tiles (thumbnail last, if any)
  und_grid        int32 [2]           (cols, rows) of the tile grid
  captions, questions, answers, question_types   list[str] (may be empty)
  scene_graph     str                 JSON ("" for real datasets)
"""

import numpy as np
from flax import serialization

TEXT_LISTS = ("captions", "questions", "answers", "question_types")


class RecordError(ValueError):
  """A pretokenized record is malformed."""


def encode_record(rec: dict) -> bytes:
  out = {
      "id": str(rec["id"]),
      "gen_codes": np.asarray(rec["gen_codes"], np.int32),
      "und_codes": np.asarray(rec["und_codes"], np.int32),
      "und_grid": np.asarray(rec["und_grid"], np.int32),
      "scene_graph": str(rec.get("scene_graph", "")),
  }
  for k in TEXT_LISTS:
    out[k] = [str(s) for s in rec.get(k, [])]
  return serialization.msgpack_serialize(out)


def decode_record(data: bytes) -> dict:
  """bytes -> record dict; raises RecordError naming what is wrong."""
  try:
    rec = serialization.msgpack_restore(bytes(data))
  except Exception as e:  # msgpack raises several unrelated exception types
    raise RecordError(f"undecodable record ({type(e).__name__}: {e})") from e
  if not isinstance(rec, dict):
    raise RecordError("record is not a dict")
  for k in ("gen_codes", "und_codes", "und_grid"):
    if k not in rec or not isinstance(rec[k], np.ndarray):
      raise RecordError(f"record {rec.get('id', '?')!r} lacks array field {k!r}")
  if rec["gen_codes"].ndim != 2 or rec["und_codes"].ndim != 3:
    raise RecordError(f"record {rec.get('id', '?')!r}: gen_codes must be [h, w] and "
                      f"und_codes [T, h, w], got {rec['gen_codes'].shape}, "
                      f"{rec['und_codes'].shape}")
  for k in TEXT_LISTS:
    rec[k] = list(rec.get(k, []))
  return rec
