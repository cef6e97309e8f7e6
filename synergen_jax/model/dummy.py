"""A well-formed all-zero task batch of a given shape (for init and shape tracing)."""

import jax.numpy as jnp

from synergen_jax import batch as batch_lib
from synergen_jax.model.config import ModelConfig


def dummy_batch(config: ModelConfig, batch_size: int, length: int) -> dict:
  """Every field of `synergen_jax/batch.py` (jax arrays): token 0 everywhere, one segment
  per row with positions 0.., the rest at pad values (no targets)."""
  return batch_lib.make((batch_size, length), config.patch_size, xp=jnp, tokens=0,
                        segment_ids=1, positions=jnp.arange(length))
