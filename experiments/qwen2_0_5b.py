"""Qwen2-0.5B ablations (256 px, 2x4 fold); trainer fields come with the trainer."""

import ml_collections

from synergen_jax.configs import models


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = models.qwen2_0_5b()
  config.mesh = ml_collections.ConfigDict(dict(shape=(1, -1, 1)))  # (data, fsdp, tensor)
  return config
