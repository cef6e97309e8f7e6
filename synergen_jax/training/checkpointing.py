"""Orbax checkpoints of a training stage, and loading trained params from a workdir.

Workdir layout (`python -m synergen_jax.train --workdir=W`):
  W/config.json                       the resolved experiment config
  W/<stage>/checkpoints/<step>/       Orbax CheckpointManager, a Composite of
        state   {"step", "params", "opt_state"} (StandardSave of unboxed arrays)
        data    the Grain iterator state (grain's handler: one JSON per process)
        config  the resolved experiment config (JSON)
  W/<stage>/params/                   final params of the stage (params_io; what the next
                                      stage, evaluation and inference start from)
  W/<stage>/summary.json              steps, wall time, final validation losses
  W/<stage>/metrics.jsonl, W/<stage>/tensorboard/
  W/report.md, W/report.json          per-stage validation table (train.py)

`load_params(W)` restores the newest trained params onto the present devices (any mesh).
"""

import copy
import glob
import json
import os
from typing import Any

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp

from synergen_jax import params_io
from synergen_jax import files
from synergen_jax import sharding
from synergen_jax.model import ModelConfig
from synergen_jax.training import experiment
from synergen_jax.training.state import StateSpec, TrainState, abstract_params, with_shardings

STATE, DATA, CONFIG = "state", "data", "config"
CONFIG_FILE = "config.json"
PARAMS_DIR = "params"
SUMMARY_FILE = "summary.json"


def stage_dir(workdir: str, stage: str) -> str:
  return os.path.join(os.path.abspath(workdir), stage)


def final_params_dir(workdir: str, stage: str) -> str:
  return os.path.join(stage_dir(workdir, stage), PARAMS_DIR)


def stage_done(workdir: str, stage: str) -> bool:
  return os.path.isfile(os.path.join(stage_dir(workdir, stage), SUMMARY_FILE))


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


def make_manager(directory: str, keep: int, async_save: bool = True) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                         enable_async_checkpointing=async_save)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options,
                               item_names=(STATE, DATA, CONFIG))


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


# ---- the workdir's resolved config ----------------------------------------------------
def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    files.write_json(os.path.join(workdir, CONFIG_FILE), experiment.to_json(config))


def read_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(os.path.abspath(workdir), CONFIG_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: not a training workdir")
  with open(path) as f:
    return experiment.from_json(json.load(f))


# ---- loading params (evaluation, inference, the next stage) ---------------------------
def latest_stage(workdir: str, config) -> tuple[str, bool]:
  """(stage, done): the last finished stage, else the last stage with a checkpoint."""
  done = [s for s in config.stage_order if stage_done(workdir, s)]
  started = [s for s in config.stage_order
             if os.path.isdir(os.path.join(stage_dir(workdir, s), "checkpoints"))]
  if done and (not started or config.stage_order.index(done[-1])
               >= config.stage_order.index(started[-1])):
    return done[-1], True
  if started:
    return started[-1], False
  raise FileNotFoundError(f"{workdir}: no finished stage and no checkpoint")


def load_params(workdir: str, stage: str | None = None, step: int | None = None,
                mesh: jax.sharding.Mesh | None = None) -> tuple[Any, ModelConfig, Any]:
  """(params, ModelConfig, experiment config) of a training workdir, on `mesh`.

  Default: the final params of the newest finished stage (or, while a stage is still
  running, its latest checkpoint). `step` picks a checkpoint of `stage`. `mesh` defaults
  to all present devices as (1, n, 1): a pod checkpoint restores onto one CPU too.
  """
  config = read_config(workdir)
  model_config = ModelConfig.from_config_dict(config.model)
  mesh = mesh if mesh is not None else sharding.make_mesh((1, -1, 1))
  if stage is None:
    stage, done = latest_stage(workdir, config)
  else:
    done = stage_done(workdir, stage)
  if done and step is None:
    from synergen_jax.model import SynerGenVL
    abstract, shardings = abstract_params(SynerGenVL(model_config), model_config, mesh)
    params = params_io.restore_params(final_params_dir(workdir, stage),
                                      with_shardings(abstract, shardings))
    return params, model_config, config
  st = experiment.stage_config(config, stage)
  spec = StateSpec(model_config, mesh, tuple(st.trainable), st.optimizer, st.steps)
  manager = make_manager(os.path.join(stage_dir(workdir, stage), "checkpoints"), keep=None)
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"{workdir}/{stage}: no checkpoint")
  target = spec.abstract_with_shardings().to_dict()
  out = manager.restore(step, args=ocp.args.Composite(**{STATE: ocp.args.StandardRestore(
      target)}))
  manager.close()
  return out[STATE]["params"], model_config, config
