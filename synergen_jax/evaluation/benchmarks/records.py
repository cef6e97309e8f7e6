"""Shared pieces of the loaders: image references, skip counts, streaming readers.

  ImageRef(path=..., data=..., tsv=(path, offset, column))  decode() -> uint8 [H, W, 3]
  Skips: counts of skipped rows by reason (like data_pipelines.pretokenize's
         skip_reasons); .add(reason), .as_dict()
  jsonl_rows(path) -> (line number, dict) per non-empty line, streamed
  parquet_rows(paths, columns=None) -> dict per row, one row group at a time
  cell_image(v, skips) -> ImageRef or None: a parquet image cell (HF Image struct or raw
                         bytes); None after counting a missing image in `skips`

Only JSON, parquet, TSV and image bytes are read: no pickle, no eval of the data.
"""

import base64
import collections
import csv
import dataclasses
import glob
import json
import os
import sys

import numpy as np
import pyarrow.parquet as pq

from data_pipelines.sources import image_io

MISSING_IMAGE = "missing_image"
UNDECODABLE_IMAGE = image_io.ImageDecodeError.reason
MISSING_FIELD = "missing_field"
BAD_JSON = "bad_json"


class Skips:
  """Rows skipped, by reason."""

  def __init__(self):
    self.counts = collections.Counter()

  def add(self, reason: str) -> None:
    self.counts[reason] += 1

  @property
  def total(self) -> int:
    return sum(self.counts.values())

  def as_dict(self) -> dict:
    return dict(sorted(self.counts.items()))


@dataclasses.dataclass(frozen=True)
class ImageRef:
  """Where an item's image is: a file, bytes in memory, or a base64 cell of a TSV row
  (path, byte offset of the row, column index), read again when decoded."""

  path: str | None = None
  data: bytes | None = None
  tsv: tuple | None = None

  def decode(self) -> np.ndarray:
    """uint8 [H, W, 3]; image_io.ImageDecodeError if unreadable."""
    if self.path is not None:
      if not os.path.isfile(self.path):
        raise image_io.ImageDecodeError(f"no file {self.path}")
      with open(self.path, "rb") as f:
        return image_io.decode_image(f.read())
    if self.tsv is not None:
      return image_io.decode_image(tsv_base64_cell(*self.tsv))
    return image_io.decode_image(self.data or b"")


def jsonl_rows(path: str):
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
      if line.strip():
        try:
          yield n, json.loads(line)
        except json.JSONDecodeError:
          yield n, None


def parquet_files(data_dir: str) -> list[str]:
  return sorted(glob.glob(os.path.join(data_dir, "**", "*.parquet"), recursive=True))


def parquet_rows(paths, columns=None):
  """Rows of parquet files as dicts, one row group in memory at a time. `columns`
  (names) limits what is read: the scorer leaves the image columns out."""
  for path in paths:
    f = pq.ParquetFile(path)
    names = set(f.schema_arrow.names)
    cols = None if columns is None else [c for c in columns if c in names]
    for g in range(f.num_row_groups):
      yield from f.read_row_group(g, columns=cols).to_pylist()


def cell_image(v, skips: Skips) -> ImageRef | None:
  """A parquet image cell (an HF Image struct or raw bytes) -> its ImageRef; None, counted
  as a missing image, when the cell holds no bytes."""
  if isinstance(v, dict):
    v = v.get("bytes")
  if isinstance(v, (bytes, bytearray)) and len(v):
    return ImageRef(data=bytes(v))
  skips.add(MISSING_IMAGE)
  return None


def tsv_reader(path: str):
  """(byte offset of the row, header-keyed dict, column index of `image`) per data row
  of a TSV, streamed (quoted cells may span lines)."""
  csv.field_size_limit(sys.maxsize)
  with open(path, "rb") as f:
    pos = [0]

    def lines():
      for raw in f:
        pos[0] += len(raw)
        yield raw.decode("utf-8")

    it = lines()
    reader = csv.reader(it, delimiter="\t")
    header = next(reader, None)
    if header is None:
      return
    image_col = header.index("image") if "image" in header else None
    while True:
      start = pos[0]
      row = next(reader, None)
      if row is None:
        return
      yield start, dict(zip(header, row)), image_col


def tsv_base64_cell(path: str, offset: int, column: int) -> bytes:
  """The base64 image cell of the TSV row at `offset`, decoded to bytes."""
  csv.field_size_limit(sys.maxsize)
  with open(path, "rb") as f:
    f.seek(offset)

    def lines():
      for raw in f:
        yield raw.decode("utf-8")

    row = next(csv.reader(lines(), delimiter="\t"), None)
  if row is None or column >= len(row) or not row[column]:
    raise image_io.ImageDecodeError("empty image cell")
  try:
    return base64.b64decode(row[column], validate=False)
  except ValueError as e:
    raise image_io.ImageDecodeError(f"bad base64: {e}") from e


def present(row: dict, *fields) -> bool:
  """Every field there and not empty (None, '' or NaN-as-text count as missing)."""
  for k in fields:
    v = row.get(k)
    if v is None or (isinstance(v, str) and v.strip() in ("", "nan", "NaN")):
      return False
  return True


def find(data_dir: str, pattern: str) -> list[str]:
  return sorted(glob.glob(os.path.join(data_dir, "**", pattern), recursive=True))
