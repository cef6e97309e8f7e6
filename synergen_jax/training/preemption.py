"""SIGTERM (preemption) handling: the loop polls `should_stop(step)`, saves, exits.

Single process: a flag set by the signal handler (or `request()`). Multi-process:
Orbax's `reached_preemption` (JAX's preemption sync point, which JAX's distributed
runtime arms on SIGTERM), so that every host stops at the same step and writes the same
checkpoint; a host-local flag would let hosts disagree and deadlock.
"""

import signal
import threading

import jax

PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM: "terminated, not finished" to a scheduler


class Preempted(Exception):
  """Raised after the preemption checkpoint is written; the process should exit."""

  def __init__(self, step: int):
    super().__init__(f"preempted at step {step}; checkpoint saved, rerun to resume")
    self.step = step


class PreemptionWatcher:
  """Installs a SIGTERM handler for its lifetime (main thread only)."""

  def __init__(self):
    self._flag = threading.Event()
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
    return False

  def _handle(self, signum, frame):
    del signum, frame
    self._flag.set()

  def request(self) -> None:
    """Asks the loop to stop as if SIGTERM had arrived (tests, external hooks)."""
    self._flag.set()

  def should_stop(self, manager, step: int) -> bool:
    if jax.process_count() > 1:
      return bool(manager.reached_preemption(step))
    return self._flag.is_set()
