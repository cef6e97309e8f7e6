"""The compiled functions of one run: its state specs, train steps and eval step.

A run (`run.prepare`) owns one `Compiled`, bound to its model, mesh and XLA options:
its stages and the validation of its starting point share what it holds (the same
shapes compile once), and a stage stopped and resumed by the same run does not compile
again. Another run of the same model on the same mesh may be handed the same object
(tests rerun an experiment in one process); nothing is cached at module level.
"""

from typing import Any

import jax

from synergen_jax import experiment as experiment_lib
from synergen_jax.model import ModelConfig
from synergen_jax.state.train_state import StateSpec
from synergen_jax.training import step as step_lib

ALL_GROUPS = ("vision", "llm_attention", "llm")


class Compiled:
  """State specs (with their jitted init / build functions), train steps and eval steps,
  each built on first use and kept."""

  def __init__(self, model_config: ModelConfig, mesh: jax.sharding.Mesh,
               options: tuple[tuple[str, Any], ...] = ()):
    self.key = (model_config, mesh, tuple(options))  # what every function depends on
    self.model_config, self.mesh, self.options = model_config, mesh, tuple(options)
    self._specs: dict = {}
    self._train_steps: dict = {}
    self._eval_steps: dict = {}

  def spec(self, trainable, opt: experiment_lib.Optimizer, steps: int) -> StateSpec:
    """The train state's shapes and shardings when `trainable` groups train with `opt`."""
    key = (tuple(trainable), opt, int(steps))
    if key not in self._specs:
      self._specs[key] = StateSpec(self.model_config, self.mesh, tuple(trainable), opt,
                                   int(steps), dict(self.options))
    return self._specs[key]

  def full_spec(self) -> StateSpec:
    """Every group trainable, default optimizer, one step: the spec that initialises or
    restores a whole model for evaluation."""
    return self.spec(ALL_GROUPS, experiment_lib.Optimizer.from_config(), 1)

  def train_step(self, stage: experiment_lib.Stage) -> tuple[StateSpec, Any]:
    """(spec, the jitted train step) of a stage."""
    spec = self.spec(stage.trainable, stage.optimizer, stage.steps)
    key = (tuple(stage.trainable), stage.optimizer, int(stage.steps), stage.tasks,
           stage.grad_accum_steps, stage.text_loss_weights, stage.max_gen_patches)
    if key not in self._train_steps:
      self._train_steps[key] = step_lib.make_train_step(
          spec, stage.tasks, stage.grad_accum_steps, dict(self.options),
          stage.text_loss_weights, stage.max_gen_patches)
    return spec, self._train_steps[key]

  def eval_step(self, tasks: tuple[str, ...]):
    """The jitted eval step of a task set (loss sums per task), shared by all stages."""
    tasks = tuple(tasks)
    if tasks not in self._eval_steps:
      self._eval_steps[tasks] = step_lib.make_eval_step(self.full_spec(), tasks,
                                                        dict(self.options))
    return self._eval_steps[tasks]
