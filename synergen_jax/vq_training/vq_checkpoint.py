"""Orbax checkpoints of the VQ tokenizer.

Layout: `workdir/checkpoints/<step>/` holds a Composite of three items:
  model:  {"params", "batch_stats"}  - everything encode/decode needs
  train:  {"step", "opt_state", "usage", "disc_params", "disc_opt_state", ...}  (trainer only)
  config: the experiment config as JSON (`model` holds the VQ sizes)
Tokenizer users (pretokenization, the main model's generation) restore only `model` +
`config`; imported Emu3 weights are written without a `train` item.
"""

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from synergen_jax.experiment.configdict import from_json, to_json
from synergen_jax.model.vq.tokenizer import VQTokenizer, data_mesh

MODEL, TRAIN, CONFIG = "model", "train", "config"


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def make_manager(workdir: str, max_to_keep: int | None = 3) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      checkpoint_dir(workdir),
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
      item_names=(MODEL, TRAIN, CONFIG))


def save(manager: ocp.CheckpointManager, step: int, model_vars: Any, train_state: Any | None,
         config: Any) -> None:
  """Asynchronously saves one step (call `manager.wait_until_finished()` before exiting)."""
  items = {MODEL: ocp.args.StandardSave(model_vars), CONFIG: ocp.args.JsonSave(to_json(config))}
  if train_state is not None:
    items[TRAIN] = ocp.args.StandardSave(train_state)
  manager.save(step, args=ocp.args.Composite(**items))


def restore(manager: ocp.CheckpointManager, step: int, abstract_model: Any,
            abstract_train: Any | None = None) -> dict:
  """Restores `model` (and `train` when its abstract target is given) onto the targets'
  shardings; returns a dict with the restored items and `config`."""
  items = {MODEL: ocp.args.StandardRestore(abstract_model), CONFIG: ocp.args.JsonRestore()}
  if abstract_train is not None:
    items[TRAIN] = ocp.args.StandardRestore(abstract_train)
  restored = manager.restore(step, args=ocp.args.Composite(**items))
  return {k: restored[k] for k in items}


def read_config(workdir: str, step: int | None = None) -> dict:
  """The JSON config stored with a checkpoint (latest step by default)."""
  manager = make_manager(workdir)
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(workdir)}")
  config = manager.restore(step, args=ocp.args.Composite(**{CONFIG: ocp.args.JsonRestore()}))[CONFIG]
  manager.close()
  return config


def load_tokenizer(workdir: str, step: int | None = None,
                   sharding: jax.sharding.Sharding | None = None) -> tuple[VQTokenizer, dict, int]:
  """(tokenizer, variables, step) from a VQ workdir (trained or imported).

  Variables are placed with `sharding` (default: replicated on the first device's mesh of
  all devices, i.e. every device holds a copy), whatever mesh wrote the checkpoint.
  """
  manager = make_manager(workdir)
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no VQ checkpoint in {checkpoint_dir(workdir)}")
  config = manager.restore(step, args=ocp.args.Composite(**{CONFIG: ocp.args.JsonRestore()}))[CONFIG]
  tok = VQTokenizer(from_json(config["model"]))
  if sharding is None:
    sharding = jax.sharding.NamedSharding(data_mesh(), jax.sharding.PartitionSpec())
  abstract = jax.tree_util.tree_map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), tok.abstract_variables())
  variables = restore(manager, step, abstract)[MODEL]
  manager.close()
  return tok, variables, step


def write_imported(workdir: str, model_config: Any, variables: Any, step: int = 0) -> None:
  """Writes imported (e.g. Emu3) variables as a VQ checkpoint without a `train` item."""
  manager = make_manager(workdir)
  save(manager, step, variables, None, {"model": to_json(model_config)})
  manager.wait_until_finished()
  manager.close()
