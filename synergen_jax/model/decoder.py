"""The decoder stack: pre-norm blocks (attention, MMoE), scanned over layers.

Parameters of all layers are stacked on a leading `layers` axis (one compiled block,
compile time independent of depth); the remat policy comes from config.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from synergen_jax.model.attention import Attention
from synergen_jax.model.layers import RMSNorm, SwiGLU
from synergen_jax.model.mmoe import MMoE

_ACT = ("activation_batch", "activation_length", "activation_embed")

# What the backward pass of a block keeps from its forward pass (the rest is recomputed):
# full: nothing but the block input; dots / dots_no_batch: XLA matmul outputs (not the
# Pallas kernels': megablox gmm, splash); qkv_ffn: the q/k/v projections and the FFN's
# gate / up outputs by name, whatever computes them (+ 2 x mlp + q/k/v widths per token
# per layer of HBM); ffn: only the gate / up outputs.
REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
    "qkv_ffn": jax.checkpoint_policies.save_only_these_names(
        "q_proj", "k_proj", "v_proj", "ffn_gate", "ffn_up"),
    "ffn": jax.checkpoint_policies.save_only_these_names("ffn_gate", "ffn_up"),
}


class Block(nn.Module):
  """x + attn(norm(x)); then x + ffn(norm(x)), the FFN routed by modality if MMoE."""

  num_heads: int
  num_kv_heads: int
  head_dim: int
  mlp_dim: int
  rope_theta: float
  norm_eps: float
  qkv_bias: bool = False
  use_mmoe: bool = True  # False: a plain SwiGLU FFN (the unfolding head)
  vision_experts: bool = True
  mmoe_impl: str = "sorted"
  attention_backend: str = "xla"
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, positions, segment_ids, is_image, decode: bool = False):
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = nn.with_logical_constraint(x, _ACT)
    h = RMSNorm(self.norm_eps, name="attention_norm", **kw)(x)
    h = Attention(self.num_heads, self.num_kv_heads, self.head_dim, self.rope_theta,
                  self.qkv_bias, self.attention_backend, name="attention", **kw)(
                      h, positions, segment_ids, decode=decode)
    x = x + h
    h = RMSNorm(self.norm_eps, name="ffn_norm", **kw)(x)
    if self.use_mmoe:
      h = MMoE(x.shape[-1], self.mlp_dim, self.vision_experts, self.mmoe_impl,
               name="mmoe", **kw)(h, is_image)
    else:
      h = SwiGLU(self.mlp_dim, name="mlp", **kw)(h)
    x = x + h
    return nn.with_logical_constraint(x, _ACT)


class _ScanBlock(nn.Module):
  """Adapts Block to nn.scan's (carry, xs) -> (carry, ys) signature."""

  block_kwargs: dict
  remat_policy: str = "none"

  @nn.compact
  def __call__(self, x, positions, segment_ids, is_image, decode):
    block_cls = Block
    if self.remat_policy != "none":
      block_cls = nn.remat(Block, policy=REMAT_POLICIES[self.remat_policy],
                           prevent_cse=False, static_argnums=(5,))
    x = block_cls(**self.block_kwargs, name="block")(x, positions, segment_ids, is_image, decode)
    return x, None


class Decoder(nn.Module):
  """num_layers scanned Blocks followed by a final RMSNorm."""

  num_layers: int
  block_kwargs: dict
  norm_eps: float = 1e-6
  remat_policy: str = "none"
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, positions, segment_ids, is_image, decode: bool = False):
    """x: [batch, length, embed] -> [batch, length, embed] (final-normed)."""
    layers = nn.scan(
        _ScanBlock,
        variable_axes={"params": 0, "cache": 0},
        split_rngs={"params": True},
        in_axes=(nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast),
        length=self.num_layers,
        metadata_params={nn.PARTITION_NAME: "layers"},
    )(dict(self.block_kwargs, dtype=self.dtype, param_dtype=self.param_dtype),
      self.remat_policy, name="layers")
    x, _ = layers(x, positions, segment_ids, is_image, decode)
    return RMSNorm(self.norm_eps, dtype=self.dtype, param_dtype=self.param_dtype,
                   name="final_norm")(x)
