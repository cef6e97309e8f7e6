"""The checkpointable iterator of {task: batch} and its counters.

  TaskBatchIterator(datasets, sharding) -> next(it) = {task: batch}
      numpy arrays [B_local, ...] when `sharding` is None, else global `jax.Array`s made
      with `jax.make_array_from_process_local_data(sharding, local)`;
      `get_state()` / `set_state(state)` (JSON-able; what Orbax's grain checkpoint
      handler stores) restore the exact stream, counters included;
      `counters()` / `metrics()`: this process's examples, tokens, skip counts and
      packing efficiency.
  metrics_from_counters(counters) -> {task}/examples, /tokens, /skipped/{reason},
      /packing_efficiency
  sum_over_processes(counters) -> additive counters summed over all processes
  pod_metrics(it) -> `metrics_from_counters` of the counters summed over all processes
      (every process calls it at the same step; it all-gathers; the trainer logs it)
"""

import json

import grain
import jax
import numpy as np
from jax.experimental import multihost_utils

from data_pipelines.pipeline import packing


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


def sum_over_processes(counters: dict) -> dict:
  """Additive counters summed over all processes (every process calls it at the same
  step: it all-gathers them as JSON); `counters` itself on one process."""
  if jax.process_count() == 1:
    return counters
  blob = np.frombuffer(json.dumps(counters).encode(), np.uint8)
  sizes = np.asarray(multihost_utils.process_allgather(np.array([blob.size]))).reshape(-1)
  padded = np.zeros(int(sizes.max()), np.uint8)
  padded[:blob.size] = blob
  total: dict = {}
  for row, n in zip(np.asarray(multihost_utils.process_allgather(padded)), sizes):
    for k, v in json.loads(bytes(row[:n]).decode()).items():
      total[k] = total.get(k, 0) + v
  return total


def pod_metrics(it) -> dict:
  """The data iterator's metrics (examples, tokens, packing efficiency, skipped records
  per reason) summed over all processes' input streams (see `sum_over_processes`)."""
  return metrics_from_counters(sum_over_processes(it.counters()))
