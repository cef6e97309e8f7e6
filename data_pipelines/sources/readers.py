"""Raw (image + text) record sources with a field mapping, for pretokenization.

  open_raw_source(source_config) -> random-access sequence of raw records
  field_specs(source_config) -> {name: spec}       the resolved field mapping
  extract(record, fields, index, image_root="") -> RawExample(image=bytes|array|None, ...)

`source.kind` (file kinds read the sorted files matching the glob `source.data_dir`, in
which `{split}` is replaced by the split):
  "tfds"          `tfds.data_source(source.name, data_dir=source.data_dir)[source.split]`
                  (any TFDS dataset prepared as ArrayRecord); the image feature is
                  read undecoded (bytes) so that `image_io.decode_image` can handle
                  every pixel format and count failures instead of crashing.
  "array_record"  ArrayRecord files whose records are msgpack maps (flax.serialization)
                  of field -> bytes / str / list.
  "webdataset"    tar shards as img2dataset / webdataset write them (webdataset.py).
  "parquet"       parquet files, row group by row group (parquet.py).
  "llava"         LLaVA instruction data, a JSON list or JSONL (llava.py); image
                  paths relative to `source.image_root`.
Field names come from `source.fields` over the kind's defaults (field_mapping.py). An
image field holding a path (str, or a {"bytes": None, "path": p} map) is read from
`source.image_root`. A conversation field (conversations.py) makes a record a multi-turn
understanding example; without an image (and without `<image>`) a text-only one.

A record that cannot be used raises a `SourceError` whose `reason` is its skip-count key:
  undecodable_record  the source cannot decode it (a malformed JSON line or .json member,
                      a truncated tar member, a non-msgpack ArrayRecord entry, a TFDS
                      example that does not parse); `read_record` raises it
  missing_image       no image (field absent or empty, file not found under image_root,
                      or `<image>` in a conversation of a record without an image)
  missing_text        no caption, no question/answer pair and no conversation
  bad_conversation    a conversation that does not parse or alternate (conversations.py)
  bad_field           not a map, or a field of an unusable type (e.g. several images)
"""

import dataclasses
import glob
import os

import grain
import numpy as np
import tensorflow_datasets as tfds
from flax import serialization

from data_pipelines.sources import conversations
from data_pipelines.sources import field_mapping
from data_pipelines.sources import llava
from data_pipelines.sources import parquet
from data_pipelines.sources import webdataset

KINDS = tuple(field_mapping.KIND_DEFAULTS)  # tfds, array_record, webdataset, parquet, llava


@dataclasses.dataclass
class RawExample:
  id: str
  image: object  # bytes, np.ndarray or PIL image (image_io.decode_image); None: text only
  captions: list
  questions: list
  answers: list
  question_types: list
  scene_graph: str
  conversation: list = dataclasses.field(default_factory=list)  # [user, assistant, ...]


class SourceError(ValueError):
  """A raw record cannot be used; `reason` is its skip-count key (module docstring)."""
  reason = "bad_field"


class UndecodableRecord(SourceError):
  """The source could not decode a record (corrupt bytes, not msgpack, bad proto)."""
  reason = "undecodable_record"


class MissingImage(SourceError):
  """The record has no image, or its image file does not exist."""
  reason = "missing_image"


class MissingText(SourceError):
  """The record has no caption, question/answer pair or conversation."""
  reason = "missing_text"


class BadConversation(SourceError):
  """The record's conversation does not parse or its turns do not alternate."""
  reason = "bad_conversation"


def read_record(src, index: int):
  """`src[index]`, with any decoding failure of that record as `UndecodableRecord`.

  OSError (a file that vanished or cannot be read) and MemoryError are not a record's
  fault and propagate: skipping them would silently empty a dataset.
  """
  try:
    return src[index]
  except (OSError, MemoryError):
    raise
  except Exception as e:  # whatever the source's decoder raises (msgpack, json, ...)
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
  if isinstance(v, dict):
    raise SourceError(f"a text field holds a map {sorted(v)[:4]}; map a key inside it "
                      "(a dotted path, e.g. json.caption)")
  return [_text(x) for x in v]


class _MsgpackArrayRecordSource:
  """ArrayRecord files of msgpack maps."""

  def __init__(self, files: list[str]):
    self._src = grain.sources.ArrayRecordDataSource(files)

  def __len__(self):
    return len(self._src)

  def __getitem__(self, i):
    return serialization.msgpack_restore(self._src[i])


def split_path(path: str, split: str) -> str:
  """`path` with `{split}` replaced and `~` expanded."""
  return os.path.expanduser(str(path).replace("{split}", str(split)))


def _files(source, what: str) -> list[str]:
  pattern = split_path(source.data_dir, source.split)
  files = sorted(f for f in glob.glob(pattern) if os.path.isfile(f))
  if not files:
    raise FileNotFoundError(f"data.source.data_dir: no {what} files match {pattern!r}")
  return files


def field_specs(source) -> dict:
  """The resolved field mapping of a source config (field_mapping.resolve)."""
  return field_mapping.resolve(source)


def open_raw_source(source):
  """A random-access source of raw records; see the module docstring."""
  if source.kind not in KINDS:
    raise ValueError(f"data.source.kind must be one of {list(KINDS)}, got {source.kind!r}")
  fields = field_specs(source)
  if source.kind == "tfds":
    decoders = {fields["image"]: tfds.decode.SkipDecoding()}
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
    return _MsgpackArrayRecordSource(_files(source, "ArrayRecord"))
  if source.kind == "webdataset":
    return webdataset.WebDatasetSource(_files(source, "tar"))
  if source.kind == "parquet":
    columns = [c for name in field_mapping.NAMES for c in field_mapping.top_level(fields[name])]
    return parquet.ParquetSource(_files(source, "parquet"), list(dict.fromkeys(columns)))
  return llava.LlavaSource(_files(source, "JSON / JSONL"))


def _image(value, image_root: str, index: int):
  """The image value, with a path (str or {"path": p} without bytes) read from disk."""
  if isinstance(value, dict):  # HF datasets Image feature / img2dataset struct
    data = value.get("bytes")
    value = data if data is not None and len(data) else value.get("path")
    if value is None:
      raise MissingImage(f"record {index}: the image map has neither bytes nor a path")
  if isinstance(value, (list, tuple)):
    raise SourceError(f"record {index} has {len(value)} images; one image per record is "
                      "supported")
  if isinstance(value, str):
    if not value:
      raise MissingImage(f"record {index} has an empty image path")
    path = os.path.join(os.path.expanduser(image_root), value) if image_root else value
    try:
      with open(path, "rb") as f:
        return f.read()
    except FileNotFoundError:
      raise MissingImage(f"record {index}: image file {path!r} not found "
                         "(data.source.image_root)") from None
  return value


def extract(record, fields, index: int, image_root: str = "") -> RawExample:
  """Maps a raw record to a RawExample with the field mapping `fields` ({name: spec})."""
  if not isinstance(record, dict):
    raise SourceError(f"record {index} is a {type(record).__name__}, expected a dict")
  get = lambda name: field_mapping.lookup(record, fields.get(name) or "")
  flat = []
  conversation = get("conversation")
  if conversation is not None:
    try:
      flat = conversations.parse(conversation)
    except conversations.BadConversation as e:
      raise BadConversation(f"record {index}: {e}") from None
  image = get("image")
  if image is None:
    if not flat:
      raise MissingImage(f"record {index} has no image field {fields.get('image')!r}")
    if conversations.has_placeholder(flat):
      raise MissingImage(f"record {index}: its conversation shows "
                         f"{conversations.IMAGE_PLACEHOLDER} but it has no image")
  else:
    image = _image(image, image_root, index)
  rid = get("id")
  sg = get("scene_graph")
  out = RawExample(
      id=_text(rid) if rid is not None else str(index),
      image=image,
      captions=[c for c in _text_list(get("captions")) if c.strip()],
      questions=_text_list(get("questions")),
      answers=_text_list(get("answers")),
      question_types=_text_list(get("question_types")),
      scene_graph=_text(sg) if sg is not None else "",
      conversation=flat,
  )
  has_qa = bool(out.questions) and len(out.questions) == len(out.answers)
  if not (out.captions or has_qa or flat):
    raise MissingText(f"record {index} has no caption ({fields.get('captions')!r}), "
                      "question/answer pair or conversation")
  return out
