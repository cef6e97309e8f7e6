"""Abstract parameters of a SynerGenVL model on a mesh, and flat-path helpers.

Everything here works on shapes only (`jax.eval_shape`), so nothing is allocated.
Paths are tuples of dict keys into the `params` collection, e.g.
('decoder', 'layers', 'block', 'mmoe', 'text_ffn', 'gate').
"""

import functools
from typing import Any, Callable

import jax
from flax import traverse_util

from synergen_jax import sharding
from synergen_jax.model import ModelConfig, SynerGenVL
from synergen_jax.model.dummy import dummy_batch

Path = tuple[str, ...]


def init_fn(config: ModelConfig) -> Callable[[jax.Array], Any]:
  """key -> boxed variables of SynerGenVL(config) (init on a tiny dummy batch)."""
  model = SynerGenVL(config)
  batch = dummy_batch(config, 1, 8)
  return lambda key: model.init(key, batch)


@functools.lru_cache(maxsize=16)
def abstract_params(config: ModelConfig, mesh: jax.sharding.Mesh,
                    rules=sharding.LOGICAL_RULES) -> tuple[dict, dict]:
  """(params as ShapeDtypeStructs carrying their shardings, the NamedShardings).

  Cached per (config, mesh): the returned trees must not be mutated.
  """
  abstract, shardings = sharding.abstract_and_shardings(init_fn(config), mesh,
                                                        jax.random.key(0), rules=rules)
  params, shards = abstract["params"], shardings["params"]
  with_sharding = jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), params, shards)
  return with_sharding, shards


def flatten(tree: dict) -> dict[Path, Any]:
  return traverse_util.flatten_dict(tree)


def unflatten(flat: dict[Path, Any]) -> dict:
  return traverse_util.unflatten_dict(flat)


def path_str(path: Path) -> str:
  return "/".join(path)
