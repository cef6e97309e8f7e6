"""A well-formed all-zero task batch of a given shape (for init and shape tracing)."""

import jax.numpy as jnp

from synergen_jax.model.config import ModelConfig


def dummy_batch(config: ModelConfig, batch_size: int, length: int) -> dict:
  b, l = batch_size, length
  return {
      "tokens": jnp.zeros((b, l), jnp.int32),
      "image_codes": jnp.zeros((b, l, config.patch_size), jnp.int32),
      "is_image": jnp.zeros((b, l), bool),
      "patch_index": jnp.zeros((b, l), jnp.int32),
      "segment_ids": jnp.ones((b, l), jnp.int32),
      "positions": jnp.broadcast_to(jnp.arange(l, dtype=jnp.int32), (b, l)),
      "text_target": jnp.zeros((b, l), jnp.float32),
      "image_target": jnp.zeros((b, l), jnp.float32),
  }
