"""ConfigDict plumbing of experiment configs: `{workdir}` substitution, merging overrides
over defaults (unknown fields are errors), and JSON round trips."""

import os

import ml_collections

from synergen_jax.experiment.errors import ConfigError


def resolve_workdir(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
  """A copy with `{workdir}` replaced in every string field."""
  workdir = os.path.abspath(workdir)

  def sub(node):
    out = {}
    for k, v in node.items():
      if isinstance(v, ml_collections.ConfigDict):
        out[k] = sub(v)
      elif isinstance(v, str):
        out[k] = v.replace("{workdir}", workdir)
      else:
        out[k] = v
    return out

  return ml_collections.ConfigDict(sub(config))


def merge(base: ml_collections.ConfigDict, over, where: str,
          free: tuple[str, ...] = ()) -> ml_collections.ConfigDict:
  """Recursively sets `over`'s fields into a copy of `base` (unknown fields are errors;
  fields named in `free` are taken whole)."""
  out = ml_collections.ConfigDict(base.to_dict())
  for k, v in over.items():
    if k not in out:
      raise ConfigError(f"{where}.{k}: unknown field; known: {sorted(out.keys())}")
    if isinstance(v, dict):
      v = ml_collections.ConfigDict(v)
    if (k not in free and isinstance(v, ml_collections.ConfigDict)
        and isinstance(out[k], ml_collections.ConfigDict)):
      out[k] = merge(out[k], v, f"{where}.{k}")
    else:
      try:
        out[k] = v
      except TypeError:  # ml_collections refuses a value of another type
        raise ConfigError(f"{where}.{k}", f"{v!r}: expected a "
                          f"{type(out[k]).__name__}") from None
  return out


def check_known(node, reference, where: str, free: tuple[str, ...] = ()) -> None:
  """Every field of `node` exists in `reference` (recursively; `free` subtrees skipped)."""
  for k, v in node.items():
    if k not in reference:
      raise ConfigError(f"{where}.{k}: unknown field; known: {sorted(reference.keys())}")
    if k in free:
      continue
    if isinstance(v, ml_collections.ConfigDict) and isinstance(reference[k],
                                                               ml_collections.ConfigDict):
      check_known(v, reference[k], f"{where}.{k}")


def to_json(config) -> dict:
  """A config as plain JSON types (tuples become lists)."""
  def convert(x):
    if isinstance(x, dict):
      return {k: convert(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
      return [convert(v) for v in x]
    return x
  return convert(config.to_dict() if hasattr(config, "to_dict") else config)


def from_json(d: dict) -> ml_collections.ConfigDict:
  """Inverse of `to_json` (lists back to tuples)."""
  def convert(x):
    if isinstance(x, dict):
      return {k: convert(v) for k, v in x.items()}
    if isinstance(x, list):
      return tuple(convert(v) for v in x)
    return x
  return ml_collections.ConfigDict(convert(d))
