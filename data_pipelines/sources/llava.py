"""LLaVA-style instruction data (a JSON list or JSONL file) as a record source.

  LlavaSource(files) -> len(src), src[i] -> {"id", "image", "conversations", ...}

A file whose first non-blank character is "[" is a JSON list (loaded whole: convert a
very large one to JSONL, e.g. `jq -c '.[]' in.json > out.jsonl`); any other file is JSONL,
one record per non-blank line, indexed by byte offset when opened and parsed when read, so
a malformed line raises for that record only (it is skipped as undecodable). Records keep
their file order, files as given (sorted by the caller). The image is a path relative to
`data.source.image_root`, resolved by the field mapping (sources.extract).
"""

import json

import numpy as np


def _first_char(path: str) -> bytes:
  with open(path, "rb") as f:
    while True:
      chunk = f.read(4096)
      if not chunk:
        return b""
      stripped = chunk.lstrip()
      if stripped:
        return stripped[:1]


def _load_list(path: str) -> list:
  try:
    with open(path, "rb") as f:
      records = json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"data.source.data_dir: {path} starts with '[' but is not a valid "
                     f"JSON list ({e}); write one record per line (JSONL) to skip bad "
                     "records instead") from None
  if not isinstance(records, list):
    raise ValueError(f"data.source.data_dir: {path} is not a JSON list")
  return records


def _line_offsets(path: str) -> tuple[np.ndarray, np.ndarray]:
  """(offsets, lengths) int64 [N] of the non-blank lines."""
  offsets, lengths, pos = [], [], 0
  with open(path, "rb") as f:
    for line in f:
      if line.strip():
        offsets.append(pos)
        lengths.append(len(line))
      pos += len(line)
  return np.asarray(offsets, np.int64), np.asarray(lengths, np.int64)


class LlavaSource:
  """Random access over the records of JSON-list / JSONL files; see the module docstring."""

  def __init__(self, files: list[str]):
    self._files = list(files)
    self._parts = []  # per file: a list of records, or (offsets, lengths) of JSONL lines
    sizes = []
    for path in self._files:
      if _first_char(path) == b"[":
        part = _load_list(path)
        sizes.append(len(part))
      else:
        part = _line_offsets(path)
        sizes.append(len(part[0]))
      self._parts.append(part)
    self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])  # [F + 1]
    self._open_file, self._handle = None, None

  def __len__(self) -> int:
    return int(self._starts[-1])

  def __getitem__(self, i: int):
    if not 0 <= i < len(self):
      raise IndexError(f"record {i} out of range [0, {len(self)})")
    f = int(np.searchsorted(self._starts, i, side="right")) - 1
    j = i - int(self._starts[f])
    part = self._parts[f]
    if isinstance(part, list):
      return part[j]
    if self._open_file != f:
      if self._handle is not None:
        self._handle.close()
      self._handle = open(self._files[f], "rb")  # pylint: disable=consider-using-with
      self._open_file = f
    self._handle.seek(int(part[0][j]))
    return json.loads(self._handle.read(int(part[1][j])))

  def close(self) -> None:
    if self._handle is not None:
      self._handle.close()
      self._handle, self._open_file = None, None
