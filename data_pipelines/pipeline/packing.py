"""Skip counting and first-fit packing of examples into fixed-length rows.

  SkipCountingIterDataset(parent): drops `skip(reason)` markers produced by earlier
      maps and counts them per reason (and counts examples flagged as truncated);
      raises RuntimeError after `max_consecutive_skips` skips in a row (data that can
      never feed the task, instead of spinning forever); the counts are part of the iterator state
      (so they survive a checkpoint restore) and readable via `iterator.counts`.
  pack_examples(ds, seq_len, num_bins, pad_id, seed) -> IterDataset of packed rows:
      the example fields (`batch.EXAMPLE_FIELDS`, in the examples' dtypes), each
      [seq_len, ...] and padded with the schema's pad values (`batch.padding_struct`),
      plus segment_ids [seq_len] (1..k, 0 = pad) and positions [seq_len] (restart at 0
      in every segment). Built on grain's FirstFitPackIterDataset (checkpointable).
  AttachSkipCounts(parent): attaches to every batch (under `COUNTS_KEY`) the skip counts
      of the SkipCounting iterators upstream, summed, as of the moment the batch was made.
      It runs in the thread that makes the batch, so the counts a batch carries do not
      depend on how far a prefetch thread has run ahead: the consumer logs them per step
      deterministically, also across a restore.
The pipeline's `metrics()` reports packing efficiency per task (non-pad share of rows).
"""

import grain

from synergen_jax import batch as batch_lib

SKIP_KEY = "_skip"
COUNTS_KEY = "_skip_counts"  # a batch's snapshot of the skip counts (AttachSkipCounts)
TRUNCATED_KEY = "_truncated"  # set on examples cut to seq_len; counted, then removed


def skip(reason: str) -> dict:
  """A marker element standing for a record skipped because of `reason`."""
  return {SKIP_KEY: reason}


def is_skip(element) -> bool:
  return isinstance(element, dict) and SKIP_KEY in element


class _SkipCountingIterator(grain.DatasetIterator):

  def __init__(self, parent: grain.DatasetIterator, max_consecutive_skips: int):
    super().__init__(parent)
    self.counts: dict[str, int] = {}
    self.passed = 0
    self._max_skips = max_consecutive_skips

  def __next__(self):
    skipped = 0
    while True:
      element = next(self._parent)
      if is_skip(element):
        reason = element[SKIP_KEY]
        self.counts[reason] = self.counts.get(reason, 0) + 1
        skipped += 1
        if skipped >= self._max_skips:
          raise RuntimeError(f"{skipped} records in a row were skipped (counts so far: "
                             f"{self.counts}); the data cannot feed this task")
        continue
      if element.pop(TRUNCATED_KEY, False):
        self.counts["overlong_truncated"] = self.counts.get("overlong_truncated", 0) + 1
      self.passed += 1
      return element

  def get_state(self):
    return {"parent": self._parent.get_state(), "counts": dict(self.counts),
            "passed": self.passed}

  def set_state(self, state):
    self._parent.set_state(state["parent"])
    self.counts = dict(state["counts"])
    self.passed = int(state["passed"])


class SkipCountingIterDataset(grain.IterDataset):
  """Drops and counts skip markers (see module doc)."""

  def __init__(self, parent: grain.IterDataset, max_consecutive_skips: int = 10_000):
    super().__init__(parent)
    self._max_skips = max_consecutive_skips

  def __iter__(self) -> _SkipCountingIterator:
    return _SkipCountingIterator(self._parent.__iter__(), self._max_skips)


def find_counters(it) -> list:
  """The SkipCounting iterators inside an iterator chain (one per input stream)."""
  seen, found = set(), []
  stack = [it]
  while stack:
    node = stack.pop()
    if id(node) in seen:
      continue
    seen.add(id(node))
    if isinstance(node, _SkipCountingIterator):
      found.append(node)
      continue
    for attr in ("_parents", "_parent", "_iterator", "_parent_iter"):
      try:
        child = getattr(node, attr, None)
      except AssertionError:  # grain's `_parent` of a node with several parents
        continue
      if child is None:
        continue
      stack.extend(child if isinstance(child, (list, tuple)) else [child])
  return found


class _AttachSkipCountsIterator(grain.DatasetIterator):

  def __init__(self, parent: grain.DatasetIterator):
    super().__init__(parent)
    self._counters = find_counters(parent)

  def __next__(self):
    batch = next(self._parent)
    counts: dict[str, int] = {}
    for counter in self._counters:
      for reason, n in counter.counts.items():
        counts[reason] = counts.get(reason, 0) + n
    return dict(batch, **{COUNTS_KEY: counts})

  def get_state(self):
    return self._parent.get_state()

  def set_state(self, state):
    self._parent.set_state(state)


class AttachSkipCounts(grain.IterDataset):
  """Batches carry their skip-count snapshot (see module doc)."""

  def __iter__(self) -> _AttachSkipCountsIterator:
    return _AttachSkipCountsIterator(self._parent.__iter__())


def _rename(row: dict) -> dict:
  out = {k: row[k] for k in batch_lib.EXAMPLE_FIELDS}
  for k in batch_lib.PACKING_FIELDS:  # grain gives every field its own; all are equal
    out[k] = row[f"tokens_{k}"].astype(batch_lib.DTYPES[k])
  return out


def pack_examples(ds: grain.IterDataset, seq_len: int, num_bins: int, pad_id: int,
                  seed: int) -> grain.IterDataset:
  """First-fit packs examples (dicts of `batch.EXAMPLE_FIELDS`) into rows of seq_len."""
  length = {k: seq_len for k in batch_lib.EXAMPLE_FIELDS}
  padding = batch_lib.padding_struct(pad_id)
  packed = grain.experimental.FirstFitPackIterDataset(
      ds, length_struct=length, num_packing_bins=num_bins, seed=seed,
      shuffle_bins=True, padding_struct=padding)
  return packed.map(_rename)
