"""Folded image generation (METHOD.md section 9) with classifier-free guidance.

For each folded patch i: one LLM decode step gives h_i (at `<boi>` for the first
patch); the unfolding head decodes the patch's m*n codes with its own small cache;
cond and uncond (`<UNCOND>` prompt) streams run as one batch and CFG mixes their
logits, l = l_u + s (l_c - l_u); the sampled code feeds both streams; the finished
patch is folded and fed back as the next LLM input (vision expert). The result is the
code grid [rows, h, w] (the VQ decoder turns it into pixels). With fold (1, 1) this is
the no-fold baseline: one LLM step per code.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from synergen_jax import batch as batch_lib
from synergen_jax import image_grid
from synergen_jax.inference.decoding import (init_llm_cache, last_hidden, llm_step,
                                             prompt_lengths)
from synergen_jax.model.sampling import SamplingConfig, sample


def _head_init(model, h, codes):
  return model.unfold_head.init_cache(h, codes)


def _head_step(model, h, prev, slot):
  return model.unfold_head.decode_step(h, prev, slot)


def init_head_cache(model: nn.Module, variables, rows: int):
  c = model.config
  h = jnp.zeros((rows, c.embed_dim), c.compute_dtype)
  codes = jnp.zeros((rows, c.patch_size), jnp.int32)
  shapes = jax.eval_shape(
      lambda v: model.apply(v, h, codes, method=_head_init, mutable=["cache"])[1]["cache"],
      variables)
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def guided_logits(logits: jax.Array, cfg_scale: float | None) -> jax.Array:
  """[rows, K] -> [rows or rows/2, K]: cond rows first, then uncond rows when guided."""
  if cfg_scale is None:
    return logits.astype(jnp.float32)
  cond, uncond = jnp.split(logits.astype(jnp.float32), 2, axis=0)
  return uncond + cfg_scale * (cond - uncond)


def patch_step_batch(config, image_id: int, codes: jax.Array, patch_index: jax.Array,
                     positions: jax.Array) -> dict:
  """One folded patch per row as an LLM input. codes: [rows, m*n]; the rest: [rows]."""
  rows = codes.shape[0]
  return batch_lib.make((rows, 1), config.patch_size, batch_lib.INPUT_FIELDS, xp=jnp,
                        tokens=image_id, image_codes=codes[:, None, :], is_image=True,
                        patch_index=jnp.broadcast_to(patch_index, (rows,))[:, None],
                        segment_ids=1, positions=positions[:, None])


@functools.partial(jax.jit, static_argnames=("model", "image_id", "cfg_scale", "sampling"))
def generate_image_codes(model: nn.Module, variables, prompt: dict, key: jax.Array, *,
                         image_id: int, cfg_scale: float | None = 7.5,
                         sampling: SamplingConfig = SamplingConfig()) -> jax.Array:
  """Returns the code grid [images, tile_h, tile_w].

  prompt: right-padded prompts ending with `<boi>`; with `cfg_scale` set, the first
  half of the rows are the conditional prompts and the second half the matching
  `<UNCOND>` prompts (images = rows / 2); with `cfg_scale=None`, conditional only.
  """
  c = model.config
  rows, prompt_len = prompt["tokens"].shape
  if cfg_scale is not None and rows % 2:
    raise ValueError(f"CFG needs cond and uncond rows in pairs; got {rows} rows")
  images = rows // 2 if cfg_scale is not None else rows
  num_patches, mn = c.patches_per_tile, c.patch_size
  lengths = prompt_lengths(prompt)

  llm_cache = init_llm_cache(model, variables, rows, prompt_len + num_patches)
  hidden, llm_cache = llm_step(model, variables, llm_cache, prompt)
  h = last_hidden(hidden, lengths)  # [rows, embed]: the state at <boi>
  empty_head_cache = init_head_cache(model, variables, rows)

  def decode_patch(i, carry):
    llm_cache, h, grid = carry

    def decode_code(j, inner):
      head_cache, prev, patch = inner
      logits, mutated = model.apply({**variables, "cache": head_cache}, h, prev, j,
                                    method=_head_step, mutable=["cache"])
      code = sample(jax.random.fold_in(key, i * mn + j), guided_logits(logits, cfg_scale),
                    sampling)  # [images]
      code = jnp.tile(code, rows // images)  # the same code feeds both streams
      return mutated["cache"], code, patch.at[:, j].set(code)

    patch = jnp.zeros((rows, mn), jnp.int32)
    _, _, patch = jax.lax.fori_loop(
        0, mn, decode_code, (empty_head_cache, jnp.zeros((rows,), jnp.int32), patch))
    grid = grid.at[:, i].set(patch[:images])
    hidden, llm_cache = llm_step(model, variables, llm_cache,
                                 patch_step_batch(c, image_id, patch, i, lengths + i))
    return llm_cache, hidden[:, 0], grid

  grid = jnp.zeros((images, num_patches, mn), jnp.int32)
  _, _, grid = jax.lax.fori_loop(0, num_patches, decode_patch, (llm_cache, h, grid))
  return image_grid.unfold_patches(grid, *c.tile_grid, *c.fold)
