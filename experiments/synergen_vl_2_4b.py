"""SynerGen-VL-2.4B (InternLM2-1.8B + vision experts, 512 px, 2x8 fold)."""

import ml_collections

from synergen_jax.configs import models


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = models.synergen_vl_2_4b()
  config.mesh = ml_collections.ConfigDict(dict(shape=(1, -1, 1)))  # (data, fsdp, tensor)
  return config
