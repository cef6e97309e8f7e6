"""The train state and its shardings, built from one model and one optimizer instance.

  TrainState(step, params, opt_state)
      params: the full parameter tree (f32 master weights, trainable + frozen);
      opt_state: the optimizer state of the *trainable* subtree only.

`StateSpec` holds everything derived from (model config, mesh, stage): the model, the
optimizer, the trainable groups, and the abstract state with its NamedShardings, which
is what the train step is jitted with and what Orbax restores into.
"""

import dataclasses
import functools
from typing import Any, Sequence

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from synergen_jax import model_init
from synergen_jax import sharding
from synergen_jax.model import ModelConfig, SynerGenVL
from synergen_jax.state import freezing
from synergen_jax.state import optimizer as optimizer_lib


@flax.struct.dataclass
class TrainState:
  step: jax.Array   # int32 []
  params: Any       # full parameter tree
  opt_state: Any    # optimizer state of the trainable subtree

  def to_dict(self) -> dict:
    return {"step": self.step, "params": self.params, "opt_state": self.opt_state}

  @classmethod
  def from_dict(cls, d: dict) -> "TrainState":
    return cls(step=d["step"], params=d["params"], opt_state=d["opt_state"])


@dataclasses.dataclass(eq=False)  # identity hash: specs are cached per process
class StateSpec:
  """Model + optimizer + trainable groups + abstract state and shardings on a mesh."""

  config: ModelConfig
  mesh: jax.sharding.Mesh
  trainable_groups: tuple[str, ...]
  opt: optimizer_lib.Optimizer  # the stage's (experiment.Stage.optimizer)
  total_steps: int
  compiler_options: dict | None = None  # XLA options of the init/build jits

  def __post_init__(self):
    if not isinstance(self.opt, optimizer_lib.Optimizer):
      raise TypeError(f"StateSpec.opt: an optimizer.Optimizer (Optimizer.from_config makes "
                      f"one), got {type(self.opt).__name__}")
    self.model = SynerGenVL(self.config)
    self.param_abstract, self.param_shardings = model_init.abstract_params(self.config,
                                                                           self.mesh)
    train_abs, _ = freezing.split(self.param_abstract, self.trainable_groups)
    train_sh, _ = freezing.split(self.param_shardings, self.trainable_groups)
    if not jax.tree.leaves(train_abs):
      raise ValueError(f"trainable groups {self.trainable_groups} select no parameters")
    self.tx = optimizer_lib.make_optimizer(self.opt, self.total_steps, train_abs)
    self.schedule = optimizer_lib.schedule(self.opt, self.total_steps)
    self.replicated = NamedSharding(self.mesh, P())
    opt_abs = jax.eval_shape(self.tx.init, train_abs)
    opt_sh = optax.tree_map_params(
        self.tx, lambda _, s: s, opt_abs, train_sh,
        transform_non_params=lambda _: self.replicated,
        is_leaf=lambda x: isinstance(x, jax.sharding.Sharding))
    self.abstract = TrainState(step=jax.ShapeDtypeStruct((), jnp.int32),
                               params=self.param_abstract, opt_state=opt_abs)
    self.shardings = TrainState(step=self.replicated, params=self.param_shardings,
                                opt_state=opt_sh)

  def split(self, params):
    return freezing.split(params, self.trainable_groups)

  def abstract_with_shardings(self) -> TrainState:
    return model_init.with_shardings(self.abstract, self.shardings)

  # ---- creating a state (jitted once per spec) --------------------------------------
  @functools.cached_property
  def _build_jits(self):
    def build(p, vision_ffn_from_text):
      if vision_ffn_from_text:
        p = freezing.copy_text_ffn_to_vision(p)
      trainable, _ = self.split(p)
      return TrainState(step=jnp.zeros((), jnp.int32), params=p,
                        opt_state=self.tx.init(trainable))

    return {flag: jax.jit(functools.partial(build, vision_ffn_from_text=flag),
                          in_shardings=(self.param_shardings,), out_shardings=self.shardings,
                          compiler_options=self.compiler_options or None)
            for flag in (False, True)}

  def init_params(self, seed: int) -> Any:
    """Freshly initialised params, created directly in their shardings."""
    return model_init.random_params(self.config, self.mesh, seed, self.compiler_options)

  def state_from_params(self, params: Any, vision_ffn_from_text: bool = False) -> TrainState:
    """Step-0 state around `params` (optimizer state for the trainable subtree only)."""
    with sharding.mesh_context(self.mesh):
      return self._build_jits[bool(vision_ffn_from_text)](params)


def opt_state_bytes_for(config: ModelConfig, groups: Sequence[str],
                        opt: optimizer_lib.Optimizer) -> dict:
  """Optimizer-state and parameter bytes of training `groups`, from abstract shapes only."""
  params = model_init.param_shapes(config)
  trainable, frozen = freezing.split(params, groups)
  tx = optimizer_lib.make_optimizer(opt, 1000, trainable)
  opt_abs = jax.eval_shape(tx.init, trainable)
  return {"trainable_params": freezing.num_elements(trainable),
          "frozen_params": freezing.num_elements(frozen),
          "param_bytes": freezing.num_bytes(params),
          "opt_state_bytes": freezing.num_bytes(opt_abs)}
