"""WebDataset tar shards (the layout img2dataset and webdataset write) as a record source.

  WebDatasetSource(files) -> len(src), src[i] -> {"__key__": key, "__url__": tar, ext: value}

The tars are read in the given (sorted) order; inside a tar, members are grouped by key,
the member path up to the first dot of its basename ("00000/000000017.jpg" -> key
"00000/000000017", extension "jpg"; "a.seg.png" -> key "a", extension "seg.png"), records
in the order their keys first appear. Values: a `.json` member parsed (a malformed one
raises, and the record is skipped as undecodable), every other member as bytes (images;
`.txt` captions are decoded by the field mapping).

Opening scans the tar headers only (the standard library's `tarfile` seeks over the data):
about 100 bytes of index per member. Reading a record seeks to its members. Plain `.tar`
shards only (what img2dataset writes): a compressed tar cannot be read by offset.
"""

import json
import os
import tarfile

import numpy as np


def split_member_name(name: str) -> tuple[str, str]:
  """"dir/base.ext1.ext2" -> ("dir/base", "ext1.ext2"); no dot -> (name, "")."""
  directory, base = os.path.split(name)
  stem, dot, ext = base.partition(".")
  return (os.path.join(directory, stem) if directory else stem), (ext if dot else "")


def _index_tar(path: str) -> list[tuple[str, list]]:
  """[(key, [(ext, data offset, size), ...]), ...] of one tar, keys in first-seen order."""
  try:
    with tarfile.open(path, mode="r:") as tar:
      groups: dict[str, list] = {}
      for member in tar:
        if not member.isfile():
          continue
        key, ext = split_member_name(member.name)
        if not ext:
          continue
        members = groups.setdefault(key, [])
        if all(e != ext for e, _, _ in members):  # a repeated member: the first one counts
          members.append((ext, member.offset_data, member.size))
  except tarfile.ReadError as e:
    raise ValueError(f"data.source.data_dir: {path} is not a readable uncompressed tar "
                     f"({e}); img2dataset and webdataset write plain .tar shards "
                     "(decompress .tar.gz shards first)") from None
  return list(groups.items())


class WebDatasetSource:
  """Random access over the samples of tar shards; see the module docstring."""

  def __init__(self, files: list[str]):
    self._files = list(files)
    self._keys, self._members, counts = [], [], []
    for path in self._files:
      groups = _index_tar(path)
      counts.append(len(groups))
      for key, members in groups:
        self._keys.append(key)
        self._members.append(tuple(members))
    self._starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])  # [F + 1]
    self._open_file, self._handle = None, None

  def __len__(self) -> int:
    return len(self._keys)

  def _file_handle(self, f: int):
    if self._open_file != f:
      if self._handle is not None:
        self._handle.close()
      self._handle = open(self._files[f], "rb")  # pylint: disable=consider-using-with
      self._open_file = f
    return self._handle

  def __getitem__(self, i: int) -> dict:
    if not 0 <= i < len(self):
      raise IndexError(f"record {i} out of range [0, {len(self)})")
    f = int(np.searchsorted(self._starts, i, side="right")) - 1
    handle = self._file_handle(f)
    record = {"__key__": self._keys[i], "__url__": self._files[f]}
    for ext, offset, size in self._members[i]:
      handle.seek(offset)
      data = handle.read(size)
      if len(data) != size:
        raise ValueError(f"member {self._keys[i]}.{ext} is truncated ({len(data)} of "
                         f"{size} bytes)")
      record[ext] = json.loads(data) if ext == "json" else data
    return record

  def close(self) -> None:
    if self._handle is not None:
      self._handle.close()
      self._handle, self._open_file = None, None
