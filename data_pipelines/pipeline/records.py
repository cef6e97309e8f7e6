"""The pretokenized record: what `pretokenize.py` writes and the pipelines read.

One ArrayRecord record = msgpack (flax.serialization; no pickle) of
  id              str
  gen_codes       int32 [h, w]        codes of the short-edge-resized, centre-cropped image
  und_codes       int32 [T, h, w]     codes of the dynamic tiles (thumbnail last, if any)
  und_grid        int32 [2]           (cols, rows) of the tile grid
  captions, questions, answers, question_types   list[str] (may be empty)
  scene_graph     str                 JSON ("" for real datasets)
  conversation    list[str]           [user, assistant, user, assistant, ...] turn texts
                                      (conversations.py; a user turn may hold `<image>`);
                                      written only when not empty, read as [] if absent
A text-only record (a conversation without an image) has empty codes: gen_codes [0, 0],
und_codes [0, 0, 0], und_grid [0, 0] (`has_image` is False).
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
  if rec.get("conversation"):
    out["conversation"] = [str(s) for s in rec["conversation"]]
  return serialization.msgpack_serialize(out)


def text_only_codes() -> dict:
  """The empty code fields of a text-only record."""
  return {"gen_codes": np.zeros((0, 0), np.int32), "und_codes": np.zeros((0, 0, 0), np.int32),
          "und_grid": np.zeros((2,), np.int32)}


def has_image(rec: dict) -> bool:
  """Whether a decoded record has image codes (False for a text-only conversation)."""
  return rec["und_codes"].shape[0] > 0 and rec["gen_codes"].size > 0


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
  rec["conversation"] = list(rec.get("conversation", []))
  if len(rec["conversation"]) % 2:
    raise RecordError(f"record {rec.get('id', '?')!r}: a conversation needs an answer to "
                      f"every user turn, got {len(rec['conversation'])} turn texts")
  return rec
