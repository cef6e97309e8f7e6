"""A training workdir: its layout, its resolved config, and loading what it holds.

Training writes it; evaluation, inference and the next stage read it through this
module. Layout (`python -m synergen_jax.train --workdir=W`):
  W/config.json                       the resolved experiment config
  W/<stage>/checkpoints/<step>/       Orbax CheckpointManager, a Composite of
        state   {"step", "params", "opt_state"} (StandardSave of unboxed arrays)
        data    the Grain iterator state (grain's handler: one JSON per process)
        config  the resolved experiment config (JSON)
  W/<stage>/params/                   final params of the stage (param_checkpoint; what the next
                                      stage, evaluation and inference start from)
  W/<stage>/summary.json              steps, wall time, final validation losses: the
                                      stage's "done" marker
  W/<stage>/metrics.jsonl, W/<stage>/tensorboard/
  W/report.md, W/report.json          per-stage validation table (train.py)

  experiment = read_experiment(W)            # W/config.json, resolved (typed)
  stage, done = latest_stage(W, experiment)  # the newest finished (or running) stage
  params, experiment = load_params(W, stage=None, step=None, mesh=None)
  tokenizer = load_tokenizer(experiment)
  vq, vq_variables, vq_dir = load_vq_tokenizer(experiment, vq_dir=None)
  start = start_point(W, experiment, stage)  # where a stage starts (`init_from`)

Saving and restoring a stage's full train state with its data iterator (resume) is
`training/resume_checkpoint.py`.
"""

import dataclasses
import json
import os
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from synergen_jax import experiment as experiment_lib
from synergen_jax import files
from synergen_jax import model_init
from synergen_jax import param_checkpoint
from synergen_jax import sharding
from synergen_jax.model import ModelConfig
from synergen_jax.tokenizer import Tokenizer
from synergen_jax.state.train_state import StateSpec
from synergen_jax.vq_training import vq_checkpoint

CONFIG_FILE = "config.json"
CHECKPOINTS_DIR = "checkpoints"
PARAMS_DIR = "params"
SUMMARY_FILE = "summary.json"
STATE, DATA, CONFIG = "state", "data", "config"  # the items of one checkpoint step


# ---- layout ----------------------------------------------------------------------------
def stage_dir(workdir: str, stage: str) -> str:
  return os.path.join(os.path.abspath(workdir), stage)


def checkpoints_dir(workdir: str, stage: str) -> str:
  return os.path.join(stage_dir(workdir, stage), CHECKPOINTS_DIR)


def final_params_dir(workdir: str, stage: str) -> str:
  return os.path.join(stage_dir(workdir, stage), PARAMS_DIR)


def summary_path(workdir: str, stage: str) -> str:
  return os.path.join(stage_dir(workdir, stage), SUMMARY_FILE)


def stage_done(workdir: str, stage: str) -> bool:
  return os.path.isfile(summary_path(workdir, stage))


def stage_started(workdir: str, stage: str) -> bool:
  """Whether `stage` has a checkpoints directory (it ran, perhaps not to the end)."""
  return os.path.isdir(checkpoints_dir(workdir, stage))


def checkpoint_manager(workdir: str, stage: str, keep: int | None = None,
                       async_save: bool = True) -> ocp.CheckpointManager:
  """The Orbax manager of W/<stage>/checkpoints (items `state`, `data`, `config`)."""
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                         enable_async_checkpointing=async_save)
  return ocp.CheckpointManager(checkpoints_dir(workdir, stage), options=options,
                               item_names=(STATE, DATA, CONFIG))


# ---- the resolved config --------------------------------------------------------------
def write_config(workdir: str, experiment: experiment_lib.Experiment) -> None:
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    files.write_json(os.path.join(workdir, CONFIG_FILE),
                     experiment_lib.to_json(experiment.config))


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """W/config.json as the raw ConfigDict the run was resolved from."""
  path = os.path.join(os.path.abspath(workdir), CONFIG_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: not a training workdir")
  with open(path) as f:
    return experiment_lib.from_json(json.load(f))


def read_experiment(workdir: str) -> experiment_lib.Experiment:
  """W/config.json resolved (every field checked; files are not)."""
  return experiment_lib.resolve(read_config(workdir))


# ---- where things are -----------------------------------------------------------------
def latest_stage(workdir: str, experiment) -> tuple[str, bool]:
  """(stage, done): the last finished stage, else the last stage with a checkpoint."""
  order = experiment.stage_order
  done = [s for s in order if stage_done(workdir, s)]
  started = [s for s in order if stage_started(workdir, s)]
  if done and (not started or order.index(done[-1]) >= order.index(started[-1])):
    return done[-1], True
  if started:
    return started[-1], False
  raise FileNotFoundError(f"{workdir}: no finished stage and no checkpoint")


@dataclasses.dataclass(frozen=True)
class StartPoint:
  """Where a stage's params start (its `init_from`, resolved).

  previous_stage: the stage whose final params it starts from ("previous"), else None.
  params_dir: the params checkpoint it starts from (that stage's W/<stage>/params, or
    `init_from` / `config.init_params` as written), None for a random initialisation.
  """

  params_dir: str | None
  previous_stage: str | None = None


def start_point(workdir: str, experiment, stage: str) -> StartPoint:
  """`init_from` of `stage` resolved: "previous" is the previous stage's final params (the
  first stage: `init_params`, or random when that is empty); "scratch" is random;
  anything else is a params checkpoint directory."""
  init_from = experiment.stage(stage).init_from
  if init_from == "previous":
    order = list(experiment.stage_order)
    i = order.index(stage)
    if i > 0:
      return StartPoint(final_params_dir(workdir, order[i - 1]), order[i - 1])
    init_from = experiment.init_params or "scratch"
  if init_from == "scratch":
    return StartPoint(None)
  return StartPoint(init_from)


def start_params_dir(workdir: str, experiment, stage: str) -> str | None:
  """The params checkpoint `stage` started from, if it is still at hand."""
  d = start_point(workdir, experiment, stage).params_dir
  return d if d is not None and os.path.isdir(os.path.expanduser(d)) else None


def text_pretrained_params_dir(workdir: str, experiment, stage: str) -> str | None:
  """The final params of the last text-only stage before `stage` (the LLM before any
  vision training: what text skills are measured against), if at hand."""
  order = list(experiment.stage_order)[:list(experiment.stage_order).index(stage)]
  kinds = [experiment.stage(name).kind for name in order]
  if "multimodal" in kinds:  # a text stage after vision training (the demo's retext) is
    order = order[:kinds.index("multimodal")]  # not the LLM before vision training
  for name in reversed(order):
    if experiment.stage(name).kind == "text":
      d = final_params_dir(workdir, name)
      return d if os.path.isdir(d) else None
  return None


# ---- loading --------------------------------------------------------------------------
def restore_params(directory: str, model_config: ModelConfig,
                   mesh: jax.sharding.Mesh) -> Any:
  """A params checkpoint (param_checkpoint: a stage's final params, imported weights) onto
  `mesh`, whatever mesh wrote it."""
  abstract, shardings = model_init.abstract_params(model_config, mesh)
  return param_checkpoint.restore_params(directory, model_init.with_shardings(abstract, shardings))


def load_params(workdir: str, stage: str | None = None, step: int | None = None,
                mesh: jax.sharding.Mesh | None = None
                ) -> tuple[Any, experiment_lib.Experiment]:
  """(params, resolved experiment) of a training workdir, on `mesh`.

  Default: the final params of the newest finished stage (or, while a stage is still
  running, its latest checkpoint). `step` picks a checkpoint of `stage`. `mesh` defaults
  to all present devices as (1, n, 1): a pod checkpoint restores onto one CPU too.
  """
  experiment = read_experiment(workdir)
  model_config = experiment.model
  mesh = mesh if mesh is not None else sharding.make_mesh((1, -1, 1))
  if stage is None:
    stage, done = latest_stage(workdir, experiment)
  else:
    done = stage_done(workdir, stage)
  if done and step is None:
    return restore_params(final_params_dir(workdir, stage), model_config, mesh), experiment
  st = experiment.stage(stage)
  spec = StateSpec(model_config, mesh, st.trainable, st.optimizer, st.steps)
  manager = checkpoint_manager(workdir, stage)
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"{workdir}/{stage}: no checkpoint")
  target = spec.abstract_with_shardings().to_dict()
  out = manager.restore(step, args=ocp.args.Composite(**{STATE: ocp.args.StandardRestore(
      target)}))
  manager.close()
  return out[STATE]["params"], experiment


def load_tokenizer(experiment, source: str = "") -> Tokenizer:
  """The text tokenizer of `experiment.tokenizer`, checked against the model's
  embeddings. `source` names where the config came from in the error of a missing file."""
  path = os.path.expanduser(experiment.tokenizer)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"config.tokenizer: {path!r}"
                            + (f" (from {source})" if source else "") + " does not exist")
  tokenizer = Tokenizer.load(path)
  experiment_lib.check_tokenizer(experiment.model, tokenizer)
  return tokenizer


def load_vq_tokenizer(experiment, vq_dir: str | None = None) -> tuple[Any, Any, str]:
  """(VQTokenizer, its variables, its workdir): `vq_dir`, else `experiment.vq_tokenizer`;
  its downsampling and codebook must match the model's tile grid and code count."""
  model_config, data = experiment.model, experiment.data
  vq_dir = vq_dir or experiment.vq_tokenizer
  if not vq_dir:
    raise FileNotFoundError("no VQ tokenizer: set config.vq_tokenizer in the experiment or "
                            "pass --vq_dir (a train_vq workdir or an Emu3 import)")
  vq, vq_variables, _ = vq_checkpoint.load_tokenizer(os.path.expanduser(vq_dir))
  grid = data.image_size // vq.factor
  if data.image_size % vq.factor or (grid, grid) != tuple(model_config.tile_grid):
    raise ValueError(f"the VQ tokenizer in {vq_dir!r} downsamples by {vq.factor}: "
                     f"data.image_size {data.image_size} gives a {grid} x {grid} "
                     f"grid, but model.tile_grid is {tuple(model_config.tile_grid)}")
  if vq.config.codebook_size != model_config.codebook_size:
    raise ValueError(f"the VQ tokenizer in {vq_dir!r} has {vq.config.codebook_size} codes; "
                     f"model.codebook_size is {model_config.codebook_size}")
  return vq, vq_variables, vq_dir
