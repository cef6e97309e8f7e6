"""Helpers for experiment files (`experiments/*.py`, configs as code)."""

import importlib.util
import os

import ml_collections

from synergen_jax.experiment import defaults
from synergen_jax.model.param_groups import GROUPS


def make_stage(kind: str = "multimodal", trainable=GROUPS, steps: int = 100,
               optimizer: dict | None = None, **fields) -> ml_collections.ConfigDict:
  """A stage config over the defaults: `optimizer` updates the optimizer fields, other
  keyword arguments set stage fields (data / text_data overrides as dicts)."""
  s = defaults.default_stage_config()
  s.kind, s.trainable, s.steps = kind, tuple(trainable), int(steps)
  s.optimizer.update(optimizer or {})
  for k, v in fields.items():
    if k not in s:
      raise ValueError(f"stage field {k!r} unknown; known: {sorted(s.keys())}")
    s[k] = ml_collections.ConfigDict(v) if isinstance(v, dict) else v
  return s


def only_stage(config: ml_collections.ConfigDict, name: str,
               init_from: str) -> ml_collections.ConfigDict:
  """The experiment reduced to one stage that starts from `init_from` (a params
  checkpoint: another run's W/<stage>/params, or imported weights)."""
  c = ml_collections.ConfigDict(config.to_dict())
  c.stage_order = (name,)
  c.stages = ml_collections.ConfigDict({name: config.stages[name].to_dict()})
  c.stages[name].init_from = init_from
  return c


def load_sibling(this_file: str, name: str):
  """The experiment module `name`.py next to `this_file` (works from any directory)."""
  path = os.path.join(os.path.dirname(os.path.abspath(this_file)), name + ".py")
  spec = importlib.util.spec_from_file_location(f"_experiment_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
