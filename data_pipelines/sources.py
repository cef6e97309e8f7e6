"""Raw (image + text) record sources with a field mapping, for pretokenization.

  open_raw_source(source_config) -> random-access sequence of raw records
  extract(record, fields) -> RawExample(image=bytes|array, captions=[...], ...)

`source.kind`:
  "tfds"          `tfds.data_source(source.name, data_dir=source.data_dir)[source.split]`
                  (any TFDS dataset prepared as ArrayRecord); the image feature is
                  read undecoded (bytes) so that `image_io.decode_image` can handle
                  every pixel format and count failures instead of crashing.
  "array_record"  a glob of ArrayRecord files (`source.data_dir`) whose records are
                  msgpack maps (flax.serialization) of field -> bytes / str / list.
Field names come from `source.fields` (see config.py); a missing text field is
an empty list, a missing image field is an error of that record. `read_record` turns
whatever a source raises while decoding one record (a truncated or non-msgpack
ArrayRecord entry, a TFDS example that does not parse) into `UndecodableRecord`, so
that pretokenization skips and counts it instead of stopping.
"""

import dataclasses
import glob
import os

import numpy as np


@dataclasses.dataclass
class RawExample:
  id: str
  image: object  # bytes, np.ndarray or PIL image; decoded by image_io.decode_image
  captions: list
  questions: list
  answers: list
  question_types: list
  scene_graph: str


class SourceError(ValueError):
  """A raw record lacks its image or has text fields of the wrong type."""


class UndecodableRecord(SourceError):
  """The source could not decode a record (corrupt bytes, not msgpack, bad proto)."""


def read_record(src, index: int):
  """`src[index]`, with any decoding failure of that record as `UndecodableRecord`.

  OSError (a file that vanished or cannot be read) and MemoryError are not a record's
  fault and propagate: skipping them would silently empty a dataset.
  """
  try:
    return src[index]
  except (OSError, MemoryError):
    raise
  except Exception as e:  # whatever the source's decoder raises (msgpack, protobuf, ...)
    raise UndecodableRecord(
        f"record {index} cannot be decoded: {type(e).__name__}: {e}") from e


def _text(v) -> str:
  if isinstance(v, (bytes, bytearray, np.bytes_)):
    return bytes(v).decode("utf-8", errors="replace")
  if isinstance(v, np.ndarray) and v.ndim == 0:
    return _text(v.item())
  return str(v)


def _text_list(v) -> list:
  if v is None:
    return []
  if isinstance(v, (str, bytes, bytearray, np.bytes_)):
    return [_text(v)]
  if isinstance(v, np.ndarray) and v.ndim == 0:
    return [_text(v)]
  return [_text(x) for x in v]


class _MsgpackArrayRecordSource:
  """ArrayRecord files of msgpack maps."""

  def __init__(self, pattern: str):
    import grain  # local import: grain is heavy and only needed here
    files = sorted(glob.glob(os.path.expanduser(pattern)))
    if not files:
      raise FileNotFoundError(f"data.source.data_dir: no ArrayRecord files match {pattern!r}")
    self._src = grain.sources.ArrayRecordDataSource(files)

  def __len__(self):
    return len(self._src)

  def __getitem__(self, i):
    from flax import serialization
    return serialization.msgpack_restore(self._src[i])


def open_raw_source(source):
  """A random-access source of raw records; see the module docstring."""
  if source.kind == "tfds":
    import tensorflow_datasets as tfds
    decoders = {source.fields.image: tfds.decode.SkipDecoding()}
    try:
      splits = tfds.data_source(source.name, data_dir=os.path.expanduser(source.data_dir),
                                decoders=decoders)
    except Exception as e:
      raise FileNotFoundError(
          f"data.source: cannot open TFDS dataset {source.name!r} in {source.data_dir!r} "
          f"(build it first, e.g. python -m data_pipelines.build): {e}") from e
    if source.split not in splits:
      raise ValueError(f"data.source.split={source.split!r} not in {sorted(splits)}")
    return splits[source.split]
  if source.kind == "array_record":
    return _MsgpackArrayRecordSource(source.data_dir)
  raise ValueError(f"data.source.kind must be 'tfds' or 'array_record', got {source.kind!r}")


def extract(record, fields, index: int) -> RawExample:
  """Maps a raw record to a RawExample with the configured field names."""
  if not isinstance(record, dict):
    raise SourceError(f"record {index} is a {type(record).__name__}, expected a dict")
  image = record.get(fields.image)
  if image is None:
    raise SourceError(f"record {index} has no image field {fields.image!r}")
  get = lambda name: record.get(fields[name]) if fields.get(name) else None
  rid = get("id")
  sg = get("scene_graph")
  return RawExample(
      id=_text(rid) if rid is not None else str(index),
      image=image,
      captions=_text_list(get("captions")),
      questions=_text_list(get("questions")),
      answers=_text_list(get("answers")),
      question_types=_text_list(get("question_types")),
      scene_graph=_text(sg) if sg is not None else "",
  )
