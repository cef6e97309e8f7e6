"""Token folding (input side): x_V = MLP(TokenFold(TokenEmbed(codes) + PE)).

The batch carries each folded image token as its patch's m*n VQ codes (row-major
inside the patch) plus `patch_index`, the patch's place inside its tile. The learnable
2-D position embedding has one vector per grid cell of a tile [tile_h, tile_w, d_v];
it is folded with the same index math as the codes, so cell (r, c) of the tile always
gets the same embedding whichever patch it falls in.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from synergen_jax import image_grid
from synergen_jax.model.layers import Dense, LayerNorm, default_kernel_init


def slot_shared_init(slots: int, init=None):
  """fc1's kernel init [slots * d_v, hidden]: one [d_v, hidden] block (the first block of
  `init`'s draw, so each element has the usual fan-in variance) repeated for every slot."""
  init = init or default_kernel_init(1)

  def f(key, shape, dtype=jnp.float32):
    return share_slots(init(key, shape, dtype), slots)

  return f


def share_slots(kernel, slots: int):
  """kernel [slots * d_v, hidden] -> its first [d_v, hidden] block repeated for every slot
  (also applied to an existing init, e.g. a text-pretrained checkpoint's untrained fold)."""
  if kernel.shape[0] % slots:
    raise ValueError(f"fc1 kernel rows {kernel.shape[0]} are not {slots} equal slot blocks")
  block = kernel[: kernel.shape[0] // slots]  # [d_v, hidden]
  return jnp.tile(block, (slots,) + (1,) * (kernel.ndim - 1))


class TokenFold(nn.Module):
  codebook_size: int
  code_embed_dim: int
  tile_grid: tuple[int, int]
  fold: tuple[int, int]
  embed_dim: int
  init_scale: float = 1.0  # fc2's init relative to fan-in (ModelConfig.fold_init_scale)
  slot_shared: bool = False  # fc1 starts slot-shared (ModelConfig.fold_slot_shared_init)
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, image_codes, patch_index):
    """image_codes: [batch, length, m*n] int; patch_index: [batch, length] int.

    Returns [batch, length, embed]: the folded embedding at every position (the
    caller keeps it only where `is_image`).
    """
    m, n = self.fold
    tile_h, tile_w = self.tile_grid
    image_grid.check_foldable(tile_h, tile_w, m, n, what="tile grid")
    if image_codes.shape[-1] != m * n:
      raise ValueError(
          f"image_codes has {image_codes.shape[-1]} codes per folded token; the fold "
          f"{m} x {n} expects {m * n}")
    code_table = self.param(
        "code_embed", nn.with_logical_partitioning(nn.initializers.normal(0.02),
                                                   ("codebook", "vq_embed")),
        (self.codebook_size, self.code_embed_dim), self.param_dtype)
    pos_table = self.param(
        "position_embed", nn.with_logical_partitioning(nn.initializers.normal(0.02),
                                                       ("grid_h", "grid_w", "vq_embed")),
        (tile_h, tile_w, self.code_embed_dim), self.param_dtype)
    # [patches_per_tile, m*n, d_v]: the position embedding folded like the codes.
    pos_patches = image_grid.fold_grid(pos_table.transpose(2, 0, 1), m, n).transpose(1, 2, 0)
    emb = jnp.take(code_table, image_codes, axis=0)  # [batch, length, m*n, d_v]
    index = jnp.clip(patch_index, 0, pos_patches.shape[0] - 1)
    emb = emb + jnp.take(pos_patches, index, axis=0)  # + [batch, length, m*n, d_v]
    folded = emb.reshape(*emb.shape[:-2], m * n * self.code_embed_dim).astype(self.dtype)
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    h = LayerNorm(axis_name="fold_in", name="norm", **kw)(folded)
    fc1_init = slot_shared_init(m * n) if self.slot_shared else None
    h = Dense((self.embed_dim,), ("fold_in", "fold_hidden"), use_bias=True, name="fc1",
              kernel_init=fc1_init, **kw)(h)
    h = nn.gelu(h)
    out_init = nn.initializers.variance_scaling(self.init_scale**2, "fan_in",
                                                "truncated_normal")
    return Dense((self.embed_dim,), ("fold_hidden", "embed"), use_bias=True, name="fc2",
                 kernel_init=out_init, **kw)(h)
