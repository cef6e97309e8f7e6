"""Grain plumbing of the multimodal tasks: pretokenized shards -> packed per-task batches.

  make_pipeline(config, tokenizer, fold, grid, *, split="train", sharding=None,
                process_index=None, process_count=None, num_streams=0, extra=None,
                tasks=TASKS) -> iterator.TaskBatchIterator

Input streams (streams.py): a global batch is the concatenation, in stream order, of one
batch of (global batch / S) rows from each of S input streams; stream s reads the
disjoint slice [s::S] of the records. Processes split the streams (each reads the
streams of the rows its devices hold, `streams.input_streams`), so the batches, and the
losses, depend on S (`num_streams`, default: one stream per process) and not on how
many processes run.

Per task ("understanding", "generation"), per stream of this process:
  ArrayRecord shards (records.shard_files of `config.task_pretokenized_dir(task)`:
  the task's own directory if set, else data.pretokenized_dir) -> the stream's slice
  [s::S] -> seeded shuffle (reshuffled every epoch) -> repeat
  -> random_map: decode record, choose prompt/answer (CFG dropout for generation),
     build the sequence (sequences.py), drop/truncate over-long ones (examples.py)
     -> skip counting (a record with a conversation, e.g. llava, is that multi-turn
     conversation in the understanding task, cut at a turn boundary when too long; a
     text-only one has no image and is skipped by the generation task as "no_image")
  -> first-fit packing into seq_len rows (packing.py) -> batch (global batch / S)
then the process's streams concatenated row-wise (`streams.ConcatStreams`) -> thread
prefetch. `next(it)` gives `{"understanding": batch, "generation": batch}`; each batch
follows the batch contract of docs/ARCHITECTURE.md: numpy arrays [B_local, L(, m*n)]
when `sharding` is None, else global `jax.Array`s [B_global, L(, m*n)] made with
`jax.make_array_from_process_local_data(sharding, local)` (`sharding` shards dim 0).

`it.get_state()` / `it.set_state(state)` are JSON-able and restore the exact stream
(what Orbax's grain checkpoint handler stores); `it.metrics()` returns skip counts,
examples and tokens seen and packing efficiency (iterator.py).
"""

import grain
import jax

from data_pipelines import config as config_lib
from data_pipelines.pipeline import examples
from data_pipelines.pipeline import iterator
from data_pipelines.pipeline import packing
from data_pipelines.pipeline import records
from data_pipelines.pipeline import streams

TASKS = ("understanding", "generation")
_TASK_SEED_OFFSET = {"understanding": 0, "generation": 1000003}


def task_dataset(config, tokenizer, fold, grid, task, split="train",
                 process_index=0, process_count=1, num_streams=0,
                 sharding=None) -> grain.IterDataset:
  """The per-process IterDataset of packed local batches of one task (see module doc);
  `config` is a `config.DataConfig`."""
  tcfg = config.task(task)
  count, mine = streams.input_streams(
      num_streams, tcfg.batch_size, f"data.{task}.batch_size",
      process_index=process_index, process_count=process_count, sharding=sharding)
  stream_bs = tcfg.batch_size // count
  seed = config.seed + _TASK_SEED_OFFSET[task]
  parts = []
  for stream in mine:
    ds = streams.record_dataset(config, split, seed, stream, count, task=task)
    ds = ds.random_map(examples.ExampleBuilder(config, tokenizer, fold, grid, task), seed=seed + 1)
    it = packing.SkipCountingIterDataset(ds.to_iter_dataset())
    bins = tcfg.packing_bins or stream_bs
    it = packing.pack_examples(it, tcfg.seq_len, bins, tokenizer.pad_id, seed=seed + 2)
    parts.append(it.batch(stream_bs, drop_remainder=True))
  it = packing.AttachSkipCounts(streams.concat_streams(parts))
  if config.prefetch_buffer:
    it = grain.experimental.ThreadPrefetchIterDataset(
        it, prefetch_buffer_size=config.prefetch_buffer)
  return it


def make_pipeline(config, tokenizer, fold, grid, *, split="train", sharding=None,
                  process_index=None, process_count=None, num_streams: int = 0,
                  extra: dict | None = None,
                  tasks: tuple[str, ...] = TASKS) -> iterator.TaskBatchIterator:
  """Builds the pipelines of `tasks` (a subset of TASKS: a stage that trains no generation
  builds no generation batches); see the module docstring. `extra`: more {task: batch
  IterDataset} read in the same steps (e.g. text replay in a multimodal stage).
  `config` is a `config.DataConfig` (`config.resolve` makes one of a ConfigDict)."""
  if not isinstance(config, config_lib.DataConfig):
    raise TypeError(f"make_pipeline takes a data_pipelines.config.DataConfig, got "
                    f"{type(config).__name__} (config.resolve makes one)")
  tasks = tuple(tasks)
  if not tasks or any(t not in TASKS for t in tasks) or len(set(tasks)) != len(tasks):
    raise ValueError(f"tasks {tasks!r}: expected a non-empty subset of {TASKS}")
  fold, grid = tuple(int(v) for v in fold), tuple(int(v) for v in grid)
  if grid[0] % fold[0] or grid[1] % fold[1]:
    raise ValueError(f"code grid {grid} is not divisible by the fold {fold}")
  pi = jax.process_index() if process_index is None else process_index
  pc = jax.process_count() if process_count is None else process_count
  for directory in sorted({config.task_pretokenized_dir(t) for t in tasks}):
    _check_first_record(directory, grid, split)
  datasets = {t: task_dataset(config, tokenizer, fold, grid, t, split, pi, pc, num_streams,
                              sharding) for t in tasks}
  for t, ds in (extra or {}).items():
    if t in datasets:
      raise ValueError(f"extra task {t!r} is one of the pipeline's own tasks {TASKS}")
    datasets[t] = ds
  return iterator.TaskBatchIterator(datasets, sharding)


def _check_first_record(directory, grid, split, look: int = 1000):
  """Fails early when the pretokenized codes do not match the model's code grid (checks
  the first record with an image among the first `look`)."""
  files = records.shard_files(directory, split)
  src = grain.sources.ArrayRecordDataSource(files)
  if len(src) == 0:
    raise ValueError(f"{directory}: split {split!r} has no records")
  for i in range(min(look, len(src))):
    try:
      rec = records.decode_record(src[i])
    except records.RecordError:
      continue
    if not records.has_image(rec):
      continue
    if tuple(rec["gen_codes"].shape) != tuple(grid):
      raise ValueError(
          f"{files[0]}: pretokenized code grid {rec['gen_codes'].shape} does not match the "
          f"expected {tuple(grid)} (data.image_size / data.vq_downsample); re-run pretokenize")
    return
