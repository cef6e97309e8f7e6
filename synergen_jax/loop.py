"""The training loop both trainers run (an LLM stage, `training/trainer.py`; the VQ
tokenizer, `vq_training/trainer.py`): steps, periodic hooks, phase timers, preemption.
A leaf of the import layers (no JAX, no project module but `preemption`).

  timers = Timers()
  hooks = [Hook("log", write_row, every=10, also_at=(last,)),
           Hook("evaluate", validate, every=100, not_at=(total,)),
           checkpoint := Hook("checkpoint", save, every=200, also_at=(last,)),
           preemption_hook(watcher, manager, checkpoint, save_now)]
  state, step = run(state, step, last, next_batch, train_step, hooks, timers, "vq")

After each step the hooks due at that step run in the order given (each trainer keeps its
own order), every one timed under its name; the data and the step are timed as "data"
and "step" (as flax's `report_progress.timed(...)`: the step's time is its dispatch, the
device work shows where a hook waits for it). The preemption check is a hook too:
on SIGTERM it saves the current step (unless the checkpoint hook just did), waits for
the writes and raises `preemption.Preempted`, which the command line turns into exit
status 143.
"""

import collections
import contextlib
import dataclasses
import time
from typing import Any, Callable, Sequence

from synergen_jax import preemption


class Timers:
  """Wall seconds per phase of a run, and since the run started."""

  def __init__(self):
    self.start = time.perf_counter()
    self.seconds: dict[str, float] = collections.defaultdict(float)

  @contextlib.contextmanager
  def timed(self, phase: str):
    t0 = time.perf_counter()
    try:
      yield
    finally:
      self.seconds[phase] += time.perf_counter() - t0

  def elapsed(self) -> float:
    """Seconds since the run started."""
    return time.perf_counter() - self.start

  def line(self) -> str:
    """`data 1.2s, step 30.5s, log 0.4s, ...` in the order the phases first ran."""
    return ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items())


@dataclasses.dataclass(frozen=True)
class Hook:
  """A periodic action: `run(step, state, metrics)` after the steps it is due at."""

  name: str                            # its phase timer
  run: Callable[[int, Any, Any], None]  # (step just done, train state, that step's metrics)
  every: int = 0                       # due at the multiples of `every` (0: never)
  also_at: tuple[int, ...] = ()        # and at these steps
  not_at: tuple[int, ...] = ()         # but never at these

  def due(self, step: int) -> bool:
    if step in self.not_at:
      return False
    return bool(self.every and step % self.every == 0) or step in self.also_at


def preemption_hook(watcher: preemption.PreemptionWatcher, manager, checkpoint: Hook,
                    save_now: Callable[[int, Any], None]) -> Hook:
  """The check after every step: on SIGTERM (every process at the same step, see
  `PreemptionWatcher.should_stop`) `save_now(step, state)` unless `checkpoint` saved this
  step, wait for the checkpoint writes of `manager`, raise `preemption.Preempted`."""
  def run(step, state, metrics):
    del metrics
    if watcher.should_stop(manager, step):
      if not checkpoint.due(step):
        save_now(step, state)
      manager.wait_until_finished()
      raise preemption.Preempted(step)
  return Hook("preempt", run, every=1)


def run(state, step: int, last: int, next_batch: Callable[[int], Any],
        train_step: Callable[[Any, Any], tuple[Any, Any]], hooks: Sequence[Hook],
        timers: Timers, signal_name: str) -> tuple[Any, int]:
  """Steps `step + 1 .. last`: `next_batch(step)` (the batch of the step about to run),
  `train_step(state, batch) -> (state, metrics)`, then the hooks due. Returns (state,
  the last step done). `signal_name` names the test hook `preemption.signal_point` after
  each step."""
  while step < last:
    with timers.timed("data"):
      batch = next_batch(step)
    with timers.timed("step"):
      state, metrics = train_step(state, batch)
    step += 1
    preemption.signal_point(signal_name, step)  # test hook (no-op unless set)
    for hook in hooks:
      if hook.due(step):
        with timers.timed(hook.name):
          hook.run(step, state, metrics)
  return state, step
