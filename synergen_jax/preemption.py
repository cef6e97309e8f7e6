"""SIGTERM (preemption) handling: the loop polls `should_stop(step)`, saves, exits.

Single process: a flag set by the signal handler (or `request()`). Multi-process:
Orbax's `reached_preemption` (JAX's preemption sync point, which JAX's distributed
runtime arms on SIGTERM), so that every host stops at the same step and writes the same
checkpoint; a host-local flag would let hosts disagree and deadlock.

`signal_point(name, step)` is a test hook: when the environment variable
SYNERGEN_SIGTERM_AT (or SYNERGEN_SIGKILL_AT) is `name` or `name@step`, the process sends
itself that signal there, so that a test can interrupt a real CLI run at a chosen phase
or step (tests/test_restart.py). Unset, it does nothing.
"""

import os
import signal
import threading
import time

PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM: "terminated, not finished" to a scheduler


SIGNAL_AT_ENV = {"SYNERGEN_SIGTERM_AT": signal.SIGTERM,
                 "SYNERGEN_SIGKILL_AT": signal.SIGKILL}


def signal_point(name: str, step: int | None = None, ready=None) -> None:
  """Test hook: sends this process SIGTERM (SIGKILL) when $SYNERGEN_SIGTERM_AT
  ($SYNERGEN_SIGKILL_AT) is `name` or `name@step`; with `ready` (a callable), once it
  returns true (polled for up to 10 s).

  Points: "dataset" (the demo's scenes built, its text dataset not yet), "tokenizer"
  (before training it), "vq@N" after VQ training step N, "pretokenize/<split>" after a
  split, "train/<stage>@N" after training step N of a stage, "checkpoint/<stage>@N" while
  the asynchronous write of step N's checkpoint is under way (its temporary directory
  exists, `resume_checkpoint.writing`).
  """
  for env, sig in SIGNAL_AT_ENV.items():
    want = os.environ.get(env)
    if not want:
      continue
    point, _, at = want.partition("@")
    if point == name and (at == "" if step is None else at == str(step)):
      deadline = time.monotonic() + 10.0
      while ready is not None and not ready() and time.monotonic() < deadline:
        time.sleep(0.001)
      os.kill(os.getpid(), sig)


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
    import jax  # keeps --help fast: every command line imports this module (cli.py)
    if jax.process_count() > 1:
      return bool(manager.reached_preemption(step))
    return self._flag.is_set()
