"""The shared training loop (`synergen_jax/loop.py`): hooks at their steps and in their
order, resume, the preemption check, phase timers. No JAX: a step adds one to a counter.
(That both trainers run it: tests/test_train_e2e.py and tests/test_vq_train.py.)"""

import os

import pytest

from synergen_jax import loop
from synergen_jax import preemption


class _Recorder:
  def __init__(self):
    self.calls = []

  def hook(self, name, **kw):
    return loop.Hook(name, lambda step, state, metrics: self.calls.append(
        (name, step, state, metrics)), **kw)


def _step(state, batch):
  return state + 1, {"batch": batch}


class _Manager:
  """What the preemption check asks of a checkpoint manager."""

  def __init__(self):
    self.waits = 0

  def wait_until_finished(self):
    self.waits += 1

  def reached_preemption(self, step):  # multi-process only
    raise AssertionError("single process: the watcher's flag decides")


def test_hook_due():
  h = loop.Hook("h", None, every=3, also_at=(7,), not_at=(6,))
  assert [s for s in range(1, 10) if h.due(s)] == [3, 7, 9]
  assert not any(loop.Hook("never", None).due(s) for s in range(1, 10))


def test_hooks_run_after_their_steps_in_the_given_order():
  rec, batches = _Recorder(), []
  hooks = [rec.hook("log", every=2, also_at=(5,)),
           rec.hook("eval", every=3, not_at=(5,)),
           rec.hook("save", every=4, also_at=(5,))]
  timers = loop.Timers()

  def next_batch(step):
    batches.append(step)
    return 10 * step

  state, step = loop.run(0, 0, 5, next_batch, _step, hooks, timers, "test")
  assert (state, step) == (5, 5)
  assert batches == [0, 1, 2, 3, 4]  # the batch of the step about to run
  # After step s the state has taken s steps; the metrics are that step's.
  assert rec.calls == [("log", 2, 2, {"batch": 10}), ("eval", 3, 3, {"batch": 20}),
                       ("log", 4, 4, {"batch": 30}), ("save", 4, 4, {"batch": 30}),
                       ("log", 5, 5, {"batch": 40}), ("save", 5, 5, {"batch": 40})]
  assert list(timers.seconds) == ["data", "step", "log", "eval", "save"]
  assert all(v >= 0 for v in timers.seconds.values())
  assert timers.elapsed() >= sum(timers.seconds.values())
  assert timers.line().startswith("data ") and "save " in timers.line()


def test_a_resumed_run_starts_after_its_step():
  rec = _Recorder()
  state, step = loop.run(40, 4, 7, lambda s: s, _step, [rec.hook("every", every=1)],
                         loop.Timers(), "test")
  assert (state, step) == (43, 7)
  assert [(c[1], c[3]["batch"]) for c in rec.calls] == [(5, 4), (6, 5), (7, 6)]
  assert loop.run(7, 7, 7, lambda s: s, _step, [rec.hook("x", every=1)], loop.Timers(),
                  "test") == (7, 7)  # nothing left to run


@pytest.mark.parametrize("at, saved_by_hook", [(3, False), (4, True)])
def test_sigterm_saves_the_step_once_and_stops(monkeypatch, at, saved_by_hook):
  """SIGTERM after step `at` (the test hook `preemption.signal_point` sends it): the
  hooks before the check run, the step is saved once (by the checkpoint hook when it is
  due, else by the check), the writes are waited for, `Preempted(at)`; no later hook."""
  monkeypatch.setenv("SYNERGEN_SIGTERM_AT", f"test@{at}")
  rec, saves, manager = _Recorder(), [], _Manager()
  checkpoint = loop.Hook("checkpoint", lambda step, state, m: saves.append(("hook", step)),
                         every=2)
  with preemption.PreemptionWatcher() as watcher:  # SIGTERM sets its flag
    check = loop.preemption_hook(watcher, manager, checkpoint,
                                 lambda step, state: saves.append(("preempt", step, state)))
    hooks = [rec.hook("log", every=1), checkpoint, check, rec.hook("after", every=1)]
    with pytest.raises(preemption.Preempted) as e:
      loop.run(0, 0, 10, lambda s: s, _step, hooks, loop.Timers(), "test")
  assert e.value.step == at
  assert [c[1] for c in rec.calls if c[0] == "log"] == list(range(1, at + 1))
  assert [c[1] for c in rec.calls if c[0] == "after"] == list(range(1, at))
  assert manager.waits == 1
  want = [("hook", s) for s in range(2, at + 1, 2)]
  if not saved_by_hook:
    want.append(("preempt", at, at))
  assert saves == want


def test_no_signal_no_stop(monkeypatch):
  monkeypatch.delenv("SYNERGEN_SIGTERM_AT", raising=False)
  manager = _Manager()
  checkpoint = loop.Hook("checkpoint", lambda *a: None, every=2)
  with preemption.PreemptionWatcher() as w:
    hook = loop.preemption_hook(w, manager, checkpoint, lambda step, state: None)
    assert loop.run(0, 0, 4, lambda s: s, _step, [checkpoint, hook], loop.Timers(),
                    "test") == (4, 4)
  assert manager.waits == 0 and os.environ.get("SYNERGEN_SIGTERM_AT") is None
