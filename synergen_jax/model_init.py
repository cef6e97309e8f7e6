"""A SynerGenVL model's parameters from shapes: the one place that builds its init
function, its abstract params and their shardings on a mesh, and random params created
directly in those shardings. Nothing is allocated until `random_params`.

  init_fn(config)                    key -> boxed variables
  param_shapes(config)               abstract params, no mesh
  abstract_params(config, mesh)      (abstract params, NamedShardings); cached
  with_shardings(abstract, shardings)  ShapeDtypeStructs carrying shardings (a restore target)
  random_params(config, mesh, seed)  params in their shardings (jitted once per config/mesh)
"""

import dataclasses
import functools
from typing import Any, Callable

import jax

from synergen_jax import sharding
from synergen_jax.model import ModelConfig, SynerGenVL
from synergen_jax.model.dummy import dummy_batch


def init_fn(config: ModelConfig) -> Callable[[jax.Array], Any]:
  """key -> boxed variables of SynerGenVL(config), traced on an 8-token dummy batch.
  Parameters do not depend on the attention kernel; tracing with the XLA one keeps the
  dummy batch valid for every backend (splash needs 128-multiples) on any host."""
  model = SynerGenVL(dataclasses.replace(config, attention_backend="xla"))
  batch = dummy_batch(config, 1, 8)
  return lambda key: model.init(key, batch)


def param_shapes(config: ModelConfig) -> Any:
  """The params as ShapeDtypeStructs (no mesh, no shardings)."""
  return sharding.abstract_variables(init_fn(config), jax.random.key(0))["params"]


@functools.lru_cache(maxsize=16)
def abstract_params(config: ModelConfig, mesh: jax.sharding.Mesh) -> tuple[Any, Any]:
  """(abstract unboxed params, their NamedShardings) on `mesh`. Cached per (config,
  mesh): the returned trees must not be mutated."""
  abstract, shardings = sharding.abstract_and_shardings(init_fn(config), mesh,
                                                        jax.random.key(0))
  return abstract["params"], shardings["params"]


def with_shardings(abstract: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs carrying the given shardings (a restore target)."""
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                      abstract, shardings)


@functools.lru_cache(maxsize=4)
def _init_jit(config: ModelConfig, mesh, options: tuple[tuple[str, Any], ...] = ()):
  """Jitted params init of a model on a mesh (compiled once per process)."""
  _, shardings = abstract_params(config, mesh)
  init = init_fn(config)
  return jax.jit(lambda key: sharding.unbox(init(key))["params"], out_shardings=shardings,
                 compiler_options=dict(options) or None)


def random_params(config: ModelConfig, mesh: jax.sharding.Mesh, seed: int,
                  compiler_options: dict | None = None) -> Any:
  """Freshly initialised params of `config`, created directly in their shardings."""
  init = _init_jit(config, mesh, tuple(sorted((compiler_options or {}).items())))
  with sharding.mesh_context(mesh):
    return init(jax.random.key(seed))
