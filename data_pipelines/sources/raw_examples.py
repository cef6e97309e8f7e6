"""One split of a raw source read as `readers.RawExample`s, the records that cannot be
used skipped and counted by reason: the read loop of pretokenization
(`pipeline/pretokenize.py`) and of the evaluation's records (`synergen_jax/evaluation/data.py`).

  split = RawSplit(source_config, "validation")     # `source.split` replaced
  items = split.examples(indices, prepare, skips)   # prepare(raw) of each usable record

A record is skipped when the source refuses it (`readers.SourceError`: undecodable,
no image, no text, ...) or `prepare` cannot decode its image (`image_io.ImageDecodeError`);
`skips[reason]` counts it, the reason being the error's `reason`.
"""

import dataclasses
from typing import Any, Callable, Iterable, Iterator

from data_pipelines.sources import image_io
from data_pipelines.sources import readers


class RawSplit:
  """`readers.open_raw_source` of `source` (a `data_pipelines.config.Source`) with its
  split replaced by `split`."""

  def __init__(self, source, split: str):
    self.source = dataclasses.replace(source, split=split)
    self.records = readers.open_raw_source(self.source)
    self.fields = readers.field_specs(self.source)
    self.image_root = readers.split_path(self.source.image_root, split)

  def __len__(self) -> int:
    return len(self.records)

  def example(self, index: int) -> readers.RawExample:
    """Record `index` as a RawExample; raises `readers.SourceError` if it cannot be used."""
    record = readers.read_record(self.records, index)
    return readers.extract(record, self.fields, index, self.image_root)

  def examples(self, indices: Iterable[int], prepare: Callable[[readers.RawExample], Any],
               skips: dict[str, int]) -> Iterator[Any]:
    """`prepare(raw)` of each usable record of `indices`, in order (see the module doc)."""
    for i in indices:
      try:
        item = prepare(self.example(int(i)))
      except (image_io.ImageDecodeError, readers.SourceError) as e:
        skips[e.reason] = skips.get(e.reason, 0) + 1
        continue
      yield item
