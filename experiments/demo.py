"""The CPU demo model on the embedded dataset (trainer fields come with the trainer)."""

import ml_collections

from synergen_jax.configs import models


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = models.demo()
  config.mesh = ml_collections.ConfigDict(dict(shape=(1, -1, 1)))  # (data, fsdp, tensor)
  return config
