"""The compiled functions of one run: its state specs, train steps and eval step.

A run (`run.prepare`) owns one `Compiled`, bound to its model, mesh and XLA options:
its stages and the validation of its starting point share what it holds (the same
shapes compile once), and a stage stopped and resumed by the same run does not compile
again. Another run of the same model on the same mesh may be handed the same object
(tests rerun an experiment in one process); nothing is cached at module level.
`precompile(stage)` compiles a stage's train step from abstract shapes (another thread
may run it: building is locked); the stage's first step then runs that executable (jax
keeps a jitted function's compiled lowering in memory) instead of compiling.

  stage_shapes(stage) -> {task: (rows, length)}       a stage's train batch shapes
  abstract_batches(model, mesh, shapes) -> {task: {field: ShapeDtypeStruct}}
"""

import threading
from typing import Any

import jax

from synergen_jax import experiment as experiment_lib
from synergen_jax import sharding
from synergen_jax.model import ModelConfig
from synergen_jax.model.dummy import dummy_batch
from synergen_jax.state.train_state import StateSpec
from synergen_jax.training import step as step_lib


def stage_shapes(stage: experiment_lib.Stage) -> dict:
  """{task: (global rows, length)} of the train batches of `stage`: text replay from its
  text_data, the vision tasks from its data."""
  def shape(task):
    d = stage.text_data if task == "text" else stage.data.task(task)
    return d.batch_size, d.seq_len
  return {t: shape(t) for t in stage.tasks}


def abstract_batches(config: ModelConfig, mesh, shapes: dict) -> dict:
  """{task: batch of ShapeDtypeStructs} with the train step's batch shardings (the batch
  contract of `model.dummy.dummy_batch`)."""
  sh = step_lib.batch_shardings(mesh, tuple(shapes))
  out = {}
  for task, (rows, length) in shapes.items():
    batch = jax.eval_shape(lambda r=rows, l=length: dummy_batch(config, r, l))
    out[task] = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sh[task])
                 for k, v in batch.items()}
  return out

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
    self._lock = threading.RLock()  # precompile() may build from another thread

  def spec(self, trainable, opt: experiment_lib.Optimizer, steps: int) -> StateSpec:
    """The train state's shapes and shardings when `trainable` groups train with `opt`."""
    key = (tuple(trainable), opt, int(steps))
    with self._lock:
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
    with self._lock:
      if key not in self._train_steps:
        self._train_steps[key] = step_lib.make_train_step(
            spec, stage.tasks, stage.grad_accum_steps, dict(self.options),
            stage.text_loss_weights, stage.max_gen_patches)
      return spec, self._train_steps[key]

  def precompile(self, stage: experiment_lib.Stage):
    """Compiles `stage`'s train step for its batch shapes (no data, no state); returns
    the executable, which the step's first call with real arrays of those shapes runs
    (tests/test_train_e2e.py checks that it does not compile again)."""
    spec, train_step = self.train_step(stage)
    batches = abstract_batches(self.model_config, self.mesh, stage_shapes(stage))
    with sharding.mesh_context(self.mesh):
      return train_step.lower(spec.abstract_with_shardings(), batches).compile()

  def eval_step(self, tasks: tuple[str, ...]):
    """The jitted eval step of a task set (loss sums per task), shared by all stages."""
    tasks = tuple(tasks)
    with self._lock:
      if tasks not in self._eval_steps:
        self._eval_steps[tasks] = step_lib.make_eval_step(self.full_spec(), tasks,
                                                          dict(self.options))
      return self._eval_steps[tasks]
