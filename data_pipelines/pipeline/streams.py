"""Stream arithmetic: which records a stream reads, which streams a process reads, and
how a process's streams make one batch.

  record_dataset(config, split, seed, stream, num_streams, task) -> grain.MapDataset
      the record bytes of stream s's disjoint slice [s::S], shuffled, repeated
  input_streams(num_streams, global_rows, field, process_index=, process_count=,
                sharding=) -> (S, this process's streams)
  concat_streams(datasets) -> their batches concatenated row-wise (`ConcatStreams`)

A global batch is the concatenation, in stream order, of one batch of (global batch / S)
rows from each of S input streams, so the batches depend on S and not on how many
processes read them (see `multimodal.py`).
"""

import grain
import numpy as np

from data_pipelines.pipeline import records


def record_dataset(config, split, seed, process_index=0, process_count=1,
                   task: str | None = None) -> grain.MapDataset:
  """Pretokenized record bytes (of `task`'s directory) of one stream's disjoint slice
  [process_index::process_count] (stream index and count), shuffled, repeated.
  `config` is a `config.DataConfig`; `task`'s own directory (e.g. SFT: LLaVA
  conversations for understanding, caption pairs for generation), else
  `data.pretokenized_dir`."""
  directory = config.task_pretokenized_dir(task) if task else config.pretokenized_dir
  files = records.shard_files(directory, split)
  ds = grain.MapDataset.source(grain.sources.ArrayRecordDataSource(files))
  if len(ds) < process_count:
    raise ValueError(f"{directory}: {len(ds)} records cannot feed "
                     f"{process_count} input streams")
  ds = ds[process_index::process_count]
  if config.shuffle:
    ds = ds.shuffle(seed=seed)
  return ds.repeat(config.num_epochs)


def input_streams(num_streams: int, global_rows: int, field: str, *, process_index: int,
                  process_count: int, sharding=None) -> tuple[int, list[int]]:
  """(S, the streams this process reads) for global batches of `global_rows` rows.

  S = `num_streams`, or the process count when 0; it must be a multiple of the process
  count and divide `global_rows` (`field` names the batch size in the errors). Each
  process reads S / process_count consecutive streams: those of the rows its devices
  hold under `sharding` (a contiguous block of rows; the global batch is the streams in
  order), or block `process_index` without a sharding.
  """
  streams = int(num_streams) or process_count
  if streams % process_count:
    raise ValueError(f"{streams} input streams do not split over {process_count} "
                     f"processes; expected a multiple of {process_count}")
  if global_rows % streams:
    raise ValueError(f"{field}={global_rows} is not divisible by the {streams} input "
                     f"streams (one per process unless set)")
  per_process = streams // process_count
  block = process_index
  if sharding is not None and process_count > 1:
    index = sharding.addressable_devices_indices_map((global_rows,))
    starts = sorted({sl[0].indices(global_rows)[0] for sl in index.values()})
    stops = sorted({sl[0].indices(global_rows)[1] for sl in index.values()})
    local = global_rows // process_count
    if stops[-1] - starts[0] != local or starts[0] % local:
      raise ValueError(f"{field}: this process's devices hold rows {starts[0]}..{stops[-1]} "
                       f"of {global_rows}, not one block of {local}")
    block = starts[0] // local
  return streams, list(range(block * per_process, (block + 1) * per_process))


class ConcatStreams(grain.IterDataset):
  """Row-wise concatenation of batch datasets: one batch of each, in order, per step."""

  def __init__(self, parents):
    super().__init__(list(parents))

  def __iter__(self):
    return _ConcatStreamsIterator([p.__iter__() for p in self._parents])


class _ConcatStreamsIterator(grain.DatasetIterator):

  def __init__(self, parents):
    super().__init__(parents)
    self._streams = parents

  def __next__(self):
    batches = [next(it) for it in self._streams]
    return {k: np.concatenate([b[k] for b in batches], axis=0) for k in batches[0]}

  def get_state(self):
    return {"streams": [it.get_state() for it in self._streams]}

  def set_state(self, state):
    got = len(state["streams"]) if "streams" in state else 1
    if got != len(self._streams):
      raise ValueError(f"data iterator state has {got} input streams, this pipeline reads "
                       f"{len(self._streams)} (train.input_streams and the process count "
                       "must be those the checkpoint was written with)")
    for it, st in zip(self._streams, state["streams"]):
      it.set_state(st)


def concat_streams(datasets: list) -> grain.IterDataset:
  """One stream as it is (checkpoint state unchanged), several via `ConcatStreams`."""
  return datasets[0] if len(datasets) == 1 else ConcatStreams(datasets)
