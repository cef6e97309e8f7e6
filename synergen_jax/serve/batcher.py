"""Gathers concurrent requests into one batched model call.

One worker thread owns the model. Request handlers `submit` jobs into a bounded queue
and wait on the job's future; the worker takes the oldest job and, while other requests
are still being prepared (`expecting`: image decoding, tokenizing) or the group's last
batch was bigger than what is queued (its clients are coming back), waits up to `window_s`
(or a quarter of the group's last call, at most 0.2 s, if longer) from that job's arrival for more jobs of the same group (kind + static sampling
settings), up to `max_batch` (a lone request does not wait), and runs them as one call of `Engine.answer_batch` /
`Engine.generate_batch`. A full queue raises `QueueFull` (the API answers 503 with
Retry-After); a job whose client went away or timed out is `cancel`led and skipped if
it has not started (its slot is free at once).
"""

import collections
import concurrent.futures
import dataclasses
import itertools
import logging
import threading
import time
from typing import Any, Callable, Hashable


class QueueFull(Exception):
  pass


@dataclasses.dataclass(eq=False)
class Job:
  group: Hashable              # jobs run together only with jobs of the same group
  payload: Any                 # what the runner needs for this row
  future: concurrent.futures.Future = dataclasses.field(
      default_factory=concurrent.futures.Future)
  arrived: float = dataclasses.field(default_factory=time.monotonic)
  id: int = 0

  def cancel(self) -> bool:
    return self.future.cancel()


class Batcher:
  """runner(group, [payload, ...]) -> [result, ...] (same order), called on the worker."""

  def __init__(self, runner: Callable, max_batch: int = 8, window_s: float = 0.01,
               max_queue: int = 64):
    self.runner = runner
    self.max_batch = int(max_batch)
    self.window_s = float(window_s)
    self.max_queue = int(max_queue)
    self._queue: collections.deque[Job] = collections.deque()
    self._cv = threading.Condition()
    self._ids = itertools.count(1)
    self._stop = False
    self._held = 0
    self._expected = 0
    self._last = {}  # group -> size of its last batch
    self._last_s = {}  # group -> seconds its last batch took
    self.stats = collections.Counter()
    self.batch_sizes = collections.Counter()
    self._first: list[Callable] = []
    self._thread = threading.Thread(target=self._work, name="synergen-batcher", daemon=True)
    self._thread.start()

  # ---- handler side ----------------------------------------------------------------------
  def pending(self) -> int:
    with self._cv:
      return sum(1 for j in self._queue if not j.future.cancelled())

  def expecting(self):
    """Context manager around preparing a request: the worker may wait (up to the
    window) for it to be submitted before it starts a batch."""
    batcher = self

    class _Expect:
      def __enter__(self):
        with batcher._cv:
          batcher._expected += 1

      def __exit__(self, *exc):
        with batcher._cv:
          batcher._expected -= 1
          batcher._cv.notify_all()

    return _Expect()

  def submit(self, group: Hashable, payloads: list) -> list[Job]:
    """All or none: QueueFull if the jobs do not fit the queue's bound."""
    with self._cv:
      if self._stop:
        raise QueueFull("the server is shutting down")
      live = [j for j in self._queue if not j.future.cancelled()]
      if len(live) + len(payloads) > self.max_queue:
        self.stats["rejected"] += len(payloads)
        raise QueueFull(f"{len(live)} requests are queued (the limit is {self.max_queue})")
      jobs = [Job(group, p, id=next(self._ids)) for p in payloads]
      self._queue = collections.deque(live)
      self._queue.extend(jobs)
      self.stats["submitted"] += len(jobs)
      self._cv.notify_all()
    return jobs

  # ---- tests / shutdown ------------------------------------------------------------------
  def hold(self):
    """Context manager: the worker starts no batch while held (tests fill the queue)."""
    batcher = self

    class _Hold:
      def __enter__(self):
        with batcher._cv:
          batcher._held += 1

      def __exit__(self, *exc):
        with batcher._cv:
          batcher._held -= 1
          batcher._cv.notify_all()

    return _Hold()

  def run_first(self, fn: Callable) -> None:
    """Runs fn() on the worker before its next batch (warm-up compiles)."""
    with self._cv:
      self._first.append(fn)
      self._cv.notify_all()

  def close(self, timeout: float = 5.0):
    with self._cv:
      self._stop = True
      for j in self._queue:
        j.cancel()
      self._queue.clear()
      self._cv.notify_all()
    self._thread.join(timeout)

  # ---- worker ----------------------------------------------------------------------------
  def _take(self) -> list[Job] | None:
    with self._cv:
      while True:
        if self._stop:
          return None
        if self._first:
          return [self._first.pop(0)]
        while self._queue and self._queue[0].future.cancelled():
          self._queue.popleft()
          self.stats["cancelled"] += 1
        if not self._queue or self._held:
          self._cv.wait(0.5)
          continue
        first = self._queue[0]
        same = [j for j in self._queue if j.group == first.group and not j.future.cancelled()]
        # The window grows with the group's last call (a quarter of it, at most 0.2 s):
        # clients of a slow call take longer to come back than `window_s`.
        window = max(self.window_s, min(0.2, 0.25 * self._last_s.get(first.group, 0.0)))
        wait = first.arrived + window - time.monotonic()
        # Wait (up to the window) only when more are likely to come: requests being
        # prepared, or the last batch of this group was bigger (its clients come back).
        likely = self._expected > 0 or self._last.get(first.group, 0) > len(same)
        if len(same) < self.max_batch and wait > 0 and likely:
          self._cv.wait(wait)
          continue
        batch = []
        for j in same[:self.max_batch]:
          self._queue.remove(j)
          if j.future.set_running_or_notify_cancel():
            batch.append(j)
          else:
            self.stats["cancelled"] += 1
        if batch:
          self._last[first.group] = len(batch)
          return batch

  def _work(self):
    while True:
      batch = self._take()
      if batch is None:
        return
      if callable(batch[0]):
        try:
          batch[0]()
        except Exception:  # noqa: BLE001 — a failed warm-up only means compiles later
          logging.exception("warm-up failed")
        continue
      t = time.monotonic()
      try:
        results = self.runner(batch[0].group, [j.payload for j in batch])
      except BaseException as e:  # noqa: BLE001 — every waiter gets the error
        self.stats["failed_batches"] += 1
        for j in batch:
          j.future.set_exception(e)
        continue
      with self._cv:
        self._last_s[batch[0].group] = time.monotonic() - t
      self.stats["batches"] += 1
      self.stats["rows"] += len(batch)
      self.batch_sizes[len(batch)] += 1
      for j, r in zip(batch, results):
        j.future.set_result(r)
