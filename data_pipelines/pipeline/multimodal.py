"""Grain input pipelines: pretokenized shards -> packed per-task batches -> global arrays.

  make_pipeline(config, tokenizer, fold, grid, *, split="train", sharding=None,
                process_index=None, process_count=None, num_streams=0) -> TaskBatchIterator

Input streams: a global batch is the concatenation, in stream order, of one batch of
(global batch / S) rows from each of S input streams; stream s reads the disjoint slice
[s::S] of the records. Processes split the streams (each reads the streams of the rows
its devices hold, `input_streams`), so the batches, and the losses, depend on S
(`num_streams`, default: one stream per process) and not on how many processes run.

Per task ("understanding", "generation"), per stream of this process:
  ArrayRecord shards (pretokenize.shard_files of `pretokenized_dir(config, task)`: the
  task's own directory if set, else data.pretokenized_dir) -> the stream's slice [s::S]
  -> seeded shuffle (reshuffled every epoch) -> repeat
  -> random_map: decode record, choose prompt/answer (CFG dropout for generation),
     build the sequence (sequences.py), drop/truncate over-long ones -> skip counting
     (a record with a conversation, e.g. llava, is that multi-turn conversation in the
     understanding task, cut at a turn boundary when too long; a text-only one has no
     image and is skipped by the generation task as "no_image")
  -> first-fit packing into seq_len rows -> batch (global batch / S)
then the process's streams concatenated row-wise (`ConcatStreams`) -> thread prefetch.
`next(it)` gives `{"understanding": batch, "generation": batch}`; each batch follows the
batch contract of docs/ARCHITECTURE.md: numpy arrays [B_local, L(, m*n)] when `sharding`
is None, else global `jax.Array`s [B_global, L(, m*n)] made with
`jax.make_array_from_process_local_data(sharding, local)` (`sharding` shards dim 0).

`it.get_state()` / `it.set_state(state)` are JSON-able and restore the exact stream
(what Orbax's grain checkpoint handler stores); `it.metrics()` returns skip counts,
examples and tokens seen and packing efficiency.
"""

import grain
import jax
import numpy as np

from data_pipelines import config as config_lib
from data_pipelines import conversations
from data_pipelines import packing
from data_pipelines import pretokenize
from data_pipelines import records
from data_pipelines import sequences

TASKS = ("understanding", "generation")
_TASK_SEED_OFFSET = {"understanding": 0, "generation": 1000003}


def question_probs(rec, type_weights) -> np.ndarray | None:
  """Sampling probabilities [num_questions] of a record's questions under
  `data.und_type_weights` ((type, weight) pairs; a type not listed weighs 0), or None
  when the weights are empty (every question equally likely). All zero when the record
  has no question of a weighted type."""
  if not type_weights:
    return None
  weight = {str(t): float(w) for t, w in type_weights}
  types = list(rec.get("question_types") or [])
  if len(types) != len(rec["questions"]):
    types = [""] * len(rec["questions"])  # untyped questions: none is weighted
  w = np.asarray([weight.get(t, 0.0) for t in types], dtype=np.float64)
  total = w.sum()
  return w / total if total > 0 else w


def _understanding_example(rec, rng, config, tok, fold):
  """A caption example, or a conversation of up to `und_qa_turns` question/answer turns
  about the image (distinct questions, random order; fewer when they would not fit the
  task's seq_len)."""
  has_qa = bool(rec["questions"]) and len(rec["questions"]) == len(rec["answers"])
  p = question_probs(rec, config.get("und_type_weights", ())) if has_qa else None
  has_qa = has_qa and (p is None or bool(p.any()))
  use_caption = bool(rec["captions"]) and (not has_qa or rng.random() < config.und_caption_prob)
  if use_caption:
    answer = rec["captions"][int(rng.integers(len(rec["captions"])))]
    return sequences.build_understanding(tok, rec["und_codes"], config.caption_prompt, answer,
                                         fold, config.system_prompt)
  if not has_qa:
    return None
  k = min(max(int(config.get("und_qa_turns", 1)), 1), len(rec["questions"]))
  if p is not None:  # question types weighted (data.und_type_weights)
    k = min(k, int(np.count_nonzero(p)))
    order = [int(i) for i in rng.choice(len(p), size=k, replace=False, p=p)]
  elif k == 1:
    order = [int(rng.integers(len(rec["questions"])))]
  else:
    order = rng.permutation(len(rec["questions"]))[:k]
  turns = [(rec["questions"][i], rec["answers"][i]) for i in order]
  seq_len = config.understanding.seq_len
  while True:
    example = sequences.build_conversation(tok, rec["und_codes"], turns, fold,
                                           config.system_prompt)
    if len(turns) == 1 or len(example["tokens"]) <= seq_len:
      return example
    turns = turns[:-1]


def _generation_example(rec, rng, config, tok, fold):
  if not rec["captions"]:
    return None
  caption = rec["captions"][int(rng.integers(len(rec["captions"])))]
  uncond = rng.random() < config.cfg_dropout
  prompt = sequences.generation_prompt(caption, uncond, config.generation_prefix,
                                       config.uncond_prompt)
  return sequences.build_generation(tok, rec["gen_codes"], prompt, fold, config.system_prompt,
                                   uncond=uncond)


class ExampleBuilder:
  """grain random-map transform: record bytes -> example dict or a skip marker."""

  def __init__(self, config, tokenizer, fold, grid, task):
    self.config, self.tok, self.fold, self.grid, self.task = config, tokenizer, fold, grid, task
    self.seq_len = config[task].seq_len

  def __call__(self, data: bytes, rng: np.random.Generator):
    try:
      rec = records.decode_record(data)
    except records.RecordError:
      return packing.skip("undecodable_record")
    if records.has_image(rec):
      codes = rec["und_codes"] if self.task == "understanding" else rec["gen_codes"][None]
      if tuple(codes.shape[1:]) != tuple(self.grid):
        return packing.skip("wrong_code_grid")
    elif self.task == "generation" or not rec["conversation"]:
      return packing.skip("no_image")
    if self.task == "understanding" and rec["conversation"]:
      return self._conversation(rec)
    build = _understanding_example if self.task == "understanding" else _generation_example
    example = build(rec, rng, self.config, self.tok, self.fold)
    if example is None:
      return packing.skip("no_text")
    fitted = sequences.fit_length(example, self.seq_len, self.config.overlong)
    if fitted is None:
      return packing.skip("overlong_dropped")
    if fitted is not example:
      fitted[packing.TRUNCATED_KEY] = True
    return fitted

  def _conversation(self, rec):
    """The record's multi-turn conversation, cut at a turn boundary when too long."""
    tiles = rec["und_codes"] if records.has_image(rec) else None
    try:
      fitted = sequences.fit_conversation(
          self.tok, tiles, conversations.turns(rec["conversation"]), self.fold,
          self.config.system_prompt, self.seq_len, self.config.overlong)
    except ValueError:  # e.g. <image> twice in a record not written by pretokenize
      return packing.skip("bad_conversation")
    if fitted is None:
      return packing.skip("overlong_dropped")
    example, truncated = fitted
    if truncated:
      example[packing.TRUNCATED_KEY] = True
    return example


def pretokenized_dir(config, task: str | None = None) -> str:
  """Where a task's records are: `data.{task}.pretokenized_dir`, or `data.pretokenized_dir`
  when that is "" (e.g. SFT: LLaVA conversations for understanding, caption pairs for
  generation)."""
  return (config[task].get("pretokenized_dir", "") if task else "") or config.pretokenized_dir


def record_dataset(config, split, seed, process_index=0, process_count=1,
                   task: str | None = None) -> grain.MapDataset:
  """Pretokenized record bytes (of `task`'s directory) of one stream's disjoint slice
  [process_index::process_count] (stream index and count), shuffled, repeated."""
  directory = pretokenized_dir(config, task)
  files = pretokenize.shard_files(directory, split)
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


def task_dataset(config, tokenizer, fold, grid, task, split="train",
                 process_index=0, process_count=1, num_streams=0,
                 sharding=None) -> grain.IterDataset:
  """The per-process IterDataset of packed local batches of one task (see module doc)."""
  tcfg = config[task]
  streams, mine = input_streams(num_streams, int(tcfg.batch_size), f"data.{task}.batch_size",
                                process_index=process_index, process_count=process_count,
                                sharding=sharding)
  stream_bs = tcfg.batch_size // streams
  seed = int(config.seed) + _TASK_SEED_OFFSET[task]
  parts = []
  for stream in mine:
    ds = record_dataset(config, split, seed, stream, streams, task=task)
    ds = ds.random_map(ExampleBuilder(config, tokenizer, fold, grid, task), seed=seed + 1)
    it = packing.SkipCountingIterDataset(ds.to_iter_dataset())
    bins = tcfg.packing_bins or stream_bs
    it = packing.pack_examples(it, tcfg.seq_len, bins, tokenizer.pad_id, seed=seed + 2)
    parts.append(it.batch(stream_bs, drop_remainder=True))
  it = packing.AttachSkipCounts(concat_streams(parts))
  if config.prefetch_buffer:
    it = grain.experimental.ThreadPrefetchIterDataset(
        it, prefetch_buffer_size=int(config.prefetch_buffer))
  return it


class TaskBatchIterator(grain.DatasetIterator):
  """Iterator of {task: batch}; checkpointable; see the module docstring.

  A `grain.DatasetIterator` (parents: the task iterators), so Orbax's grain
  checkpoint handler (`grain.checkpoint.CheckpointHandler`) saves it as JSON.
  """

  def __init__(self, datasets: dict, sharding=None):
    self._its = {t: ds.__iter__() for t, ds in datasets.items()}
    super().__init__(list(self._its.values()))
    self._sharding = sharding
    self._stats = {t: {"rows": 0, "tokens": 0, "positions": 0, "examples": 0} for t in datasets}
    self._skips = {t: {} for t in datasets}  # the last batch's skip-count snapshot

  def __iter__(self):
    return self

  def _global(self, batch: dict) -> dict:
    if self._sharding is None:
      return batch
    return {k: jax.make_array_from_process_local_data(self._sharding, v)
            for k, v in batch.items()}

  def next_local(self) -> dict:
    """The next {task: batch} as this process's numpy arrays."""
    out = {}
    for task, it in self._its.items():
      batch = next(it)
      if packing.COUNTS_KEY in batch:
        batch = dict(batch)
        self._skips[task] = batch.pop(packing.COUNTS_KEY)
      seg = batch["segment_ids"]
      s = self._stats[task]
      s["rows"] += seg.shape[0]
      s["positions"] += seg.size
      s["tokens"] += int((seg > 0).sum())
      s["examples"] += int(sum(len(np.unique(r[r > 0])) for r in seg))
      out[task] = batch
    return out

  def __next__(self) -> dict:
    return {t: self._global(b) for t, b in self.next_local().items()}

  def get_state(self) -> dict:
    return {"tasks": {t: it.get_state() for t, it in self._its.items()},
            "stats": {t: dict(s) for t, s in self._stats.items()},
            "skips": {t: dict(s) for t, s in self._skips.items()}}

  def set_state(self, state: dict) -> None:
    missing = set(self._its) - set(state.get("tasks", {}))
    if missing:
      raise ValueError(f"data iterator state lacks tasks {sorted(missing)}")
    for t, it in self._its.items():
      try:
        it.set_state(state["tasks"][t])
      except (KeyError, TypeError, ValueError) as e:
        raise ValueError(
            f"data iterator state of task {t!r} does not fit this pipeline ({e}); "
            "train.input_streams and the process count must be those the checkpoint was "
            "written with") from None
      self._stats[t] = dict(state["stats"][t])
      self._skips[t] = dict(state.get("skips", {}).get(t, {}))  # absent: older checkpoints

  def close(self) -> None:
    """Stops prefetch threads (also done when the iterator is garbage collected)."""
    if self._closed:
      return
    for it in self._its.values():
      it.close()
    super().close()

  def counters(self) -> dict:
    """Additive counters over the batches this process consumed so far (deterministic per
    step, part of the iterator state): {task}/examples, /tokens, /positions and
    /skipped/{reason} as of the last consumed batch (records a prefetch thread read ahead
    are counted once their batch is consumed). Sum them over processes for a pod."""
    out = {}
    for t in self._its:
      s = self._stats[t]
      for k in ("examples", "tokens", "positions"):
        out[f"{t}/{k}"] = s[k]
      for reason, n in sorted(self._skips[t].items()):
        out[f"{t}/skipped/{reason}"] = n
    return out

  def metrics(self) -> dict:
    """`metrics_from_counters(self.counters())`."""
    return metrics_from_counters(self.counters())


def metrics_from_counters(counters: dict) -> dict:
  """{task}/examples, /tokens, /skipped/{reason} and /packing_efficiency (the non-pad
  share of the rows) from `TaskBatchIterator.counters()` (of one or several processes)."""
  out = {k: v for k, v in counters.items() if not k.endswith("/positions")}
  for k, positions in counters.items():
    if k.endswith("/positions"):
      task = k[:-len("/positions")]
      out[f"{task}/packing_efficiency"] = counters[f"{task}/tokens"] / max(positions, 1)
  return out


def make_pipeline(config, tokenizer, fold, grid, *, split="train", sharding=None,
                  process_index=None, process_count=None, num_streams: int = 0,
                  extra: dict | None = None) -> TaskBatchIterator:
  """Builds both task pipelines; see the module docstring. `extra`: more {task: batch
  IterDataset} read in the same steps (e.g. text replay in a multimodal stage)."""
  config_lib.validate(config)
  fold, grid = tuple(int(v) for v in fold), tuple(int(v) for v in grid)
  if grid[0] % fold[0] or grid[1] % fold[1]:
    raise ValueError(f"code grid {grid} is not divisible by the fold {fold}")
  pi = jax.process_index() if process_index is None else process_index
  pc = jax.process_count() if process_count is None else process_count
  for directory in sorted({pretokenized_dir(config, t) for t in TASKS}):
    _check_first_record(directory, grid, split)
  datasets = {t: task_dataset(config, tokenizer, fold, grid, t, split, pi, pc, num_streams,
                              sharding) for t in TASKS}
  for t, ds in (extra or {}).items():
    if t in datasets:
      raise ValueError(f"extra task {t!r} is one of the pipeline's own tasks {TASKS}")
    datasets[t] = ds
  return TaskBatchIterator(datasets, sharding)


def _check_first_record(directory, grid, split, look: int = 1000):
  """Fails early when the pretokenized codes do not match the model's code grid (checks
  the first record with an image among the first `look`)."""
  files = pretokenize.shard_files(directory, split)
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
