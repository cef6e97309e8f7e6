"""The pretokenized shards: what `pretokenize.py` writes and the pipelines read.

  shard_path(directory, split, shard, num_shards) -> .../{split}.array_record-NNNNN-of-NNNNN
  shard_files(directory, split) -> the complete shards of a split, sorted

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

import os

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


def shard_path(directory: str, split: str, shard: int, num_shards: int) -> str:
  return os.path.join(directory, f"{split}.array_record-{shard:05d}-of-{num_shards:05d}")


def shard_files(directory: str, split: str) -> list[str]:
  """The complete pretokenized shards of a split, sorted; raises if there are none."""
  directory = os.path.expanduser(directory)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"data.pretokenized_dir {directory!r} does not exist; run "
                            "python -m data_pipelines.pretokenize first")
  prefix = f"{split}.array_record-"
  files = sorted(os.path.join(directory, f) for f in os.listdir(directory)
                 if f.startswith(prefix) and not f.endswith((".tmp", ".json")))
  if not files:
    raise FileNotFoundError(f"no pretokenized shards {prefix}* in {directory!r}")
  return files
