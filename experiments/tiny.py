"""Tiny model for unit tests and quick checks."""

import ml_collections

from synergen_jax.configs import models


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = models.tiny()
  config.mesh = ml_collections.ConfigDict(dict(shape=(1, -1, 1)))  # (data, fsdp, tensor)
  return config
