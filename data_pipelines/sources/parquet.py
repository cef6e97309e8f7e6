"""Parquet files (HF `datasets` exports, img2dataset's parquet output) as a record source.

  ParquetSource(files, columns) -> len(src), src[i] -> {column: value}

Rows in file order (files as given, sorted by the caller), then row-group order. Opening
reads only each file's footer (row counts per row group). A read loads one row group of
the wanted `columns` (those of the field mapping that the file has; all when None) and
keeps it until a row of another row group is asked for, so reading rows in order holds
one row group in memory, never a whole file. Values are Python values: an image column is
bytes, or a {"bytes": ..., "path": ...} map (HF's Image feature); text columns are str.
"""

import numpy as np
import pyarrow.parquet as pq


class ParquetSource:
  """Random access over the rows of parquet files; see the module docstring."""

  def __init__(self, files: list[str], columns: list[str] | None = None):
    self._files = list(files)
    self._groups = []  # (file index, row group index) per non-empty row group
    sizes = []
    self._columns = []  # per file: the wanted columns it has (None = all)
    for f, path in enumerate(self._files):
      try:
        meta = pq.read_metadata(path)
        names = pq.read_schema(path).names
      except Exception as e:  # pyarrow raises ArrowInvalid / OSError for non-parquet files
        raise ValueError(f"data.source.data_dir: {path} is not a readable parquet file "
                         f"({type(e).__name__}: {e})") from None
      self._columns.append(None if columns is None else [c for c in columns if c in names])
      for g in range(meta.num_row_groups):
        n = meta.row_group(g).num_rows
        if n:
          self._groups.append((f, g))
          sizes.append(n)
    self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])  # [G + 1]
    self._cached, self._rows = None, None

  def __len__(self) -> int:
    return int(self._starts[-1])

  def _row_group(self, k: int) -> list:
    if self._cached != k:
      f, g = self._groups[k]
      self._rows, self._cached = None, None  # drop the previous row group first
      table = pq.ParquetFile(self._files[f]).read_row_group(g, columns=self._columns[f])
      self._rows, self._cached = table.to_pylist(), k
    return self._rows

  def __getitem__(self, i: int) -> dict:
    if not 0 <= i < len(self):
      raise IndexError(f"record {i} out of range [0, {len(self)})")
    k = int(np.searchsorted(self._starts, i, side="right")) - 1
    return self._row_group(k)[i - int(self._starts[k])]
