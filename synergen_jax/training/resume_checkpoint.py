"""Saving and restoring a stage's train state and data iterator position (resume).

The checkpoints live in W/<stage>/checkpoints (`workdir.checkpoint_manager`; the whole
workdir layout, its config and loading params for evaluation, inference and the next
stage: `synergen_jax/workdir.py`).
"""

import copy
import glob
import json
import os
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

from synergen_jax.state.train_state import StateSpec, TrainState
from synergen_jax.workdir import CONFIG, DATA, STATE


class IteratorSnapshot:
  """The iterator state at save time, for grain's Orbax handler.

  Saving a snapshot (not the live iterator) keeps the state consistent with the train
  state of the same step whatever thread writes it. Grain's handler writes
  `get_state()` bytes per process and calls `set_state()` + `start_prefetch()` on restore.
  """

  def __init__(self, state: Any = None):
    self.state = state

  def get_state(self) -> bytes:
    return json.dumps(self.state).encode()

  def set_state(self, state: bytes) -> None:
    self.state = json.loads(state)

  def start_prefetch(self) -> None:
    pass


def save(manager: ocp.CheckpointManager, state: TrainState, data_iter: Any,
         config_json: dict, force: bool = False) -> bool:
  """Starts an (async) save of step `state.step`; call `manager.wait_until_finished()`
  before exiting."""
  step = int(jax.device_get(state.step))
  snapshot = IteratorSnapshot(copy.deepcopy(data_iter.get_state()))
  return manager.save(step, force=force, args=ocp.args.Composite(**{
      STATE: ocp.args.StandardSave(state.to_dict()),
      DATA: grain.checkpoint.CheckpointSave(snapshot),
      CONFIG: ocp.args.JsonSave(config_json)}))


def writing(manager: ocp.CheckpointManager, step: int) -> bool:
  """Whether the checkpoint of `step` is being written: Orbax writes it into a temporary
  directory `<step>.orbax-checkpoint-tmp...` and renames it when complete (a run killed
  before that leaves the temporary one, which the manager ignores and later replaces)."""
  return bool(glob.glob(os.path.join(str(manager.directory),
                                     f"{step}.orbax-checkpoint-tmp*")))


def restore(manager: ocp.CheckpointManager, spec: StateSpec, data_iter: Any,
            step: int | None = None) -> TrainState:
  """Restores state (onto `spec`'s shardings) and the data iterator's position."""
  step = manager.latest_step() if step is None else step
  snapshot = IteratorSnapshot()
  target = spec.abstract_with_shardings().to_dict()
  out = manager.restore(step, args=ocp.args.Composite(**{
      STATE: ocp.args.StandardRestore(target),
      DATA: grain.checkpoint.CheckpointRestore(snapshot)}))
  data_iter.set_state(snapshot.state)
  return TrainState.from_dict(out[STATE])
