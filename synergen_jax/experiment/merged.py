"""A raw experiment ConfigDict's stage, train and eval sections merged over their
defaults (unknown fields are errors naming the field). `resolve` reads the config
through these (the data sections through `data_pipelines.config.overlay`); everything
downstream reads the typed `Experiment` that `resolve` builds from them."""

import ml_collections

from synergen_jax.experiment import defaults
from synergen_jax.experiment.configdict import merge


def stage(config, name: str) -> ml_collections.ConfigDict:
  """A stage's fields over the stage defaults (so partial stage configs are allowed)."""
  return merge(defaults.default_stage_config(), config.stages[name], f"config.stages.{name}",
               free=("data", "text_data"))


def train(config) -> ml_collections.ConfigDict:
  """config.train over the defaults."""
  return merge(defaults.default_train_config(),
               config.get("train", None) or ml_collections.ConfigDict(), "config.train",
               free=("xla_compiler_options",))


def eval_(config) -> ml_collections.ConfigDict:
  """config.eval over the defaults."""
  return merge(defaults.default_eval_config(),
               config.get("eval", None) or ml_collections.ConfigDict(), "config.eval")


def stage_tasks(st) -> tuple[str, ...]:
  """The task batches the train step of a merged stage (`stage(config, name)`) consumes."""
  if st.kind == "text":
    return ("text",)
  return tuple(st.tasks) or defaults.MULTIMODAL_TASKS
