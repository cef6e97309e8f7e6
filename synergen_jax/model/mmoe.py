"""Modality-routed FFN experts (MMoE): a text expert and a vision expert per layer.

Routing is hard: a folded image token (`is_image`) runs the vision expert, every other
token (text and all special tokens) the text expert. Both experts are SwiGLU FFNs of
the same shape; attention and norms stay shared (in the decoder block).

Two implementations with identical parameters:
- `reference`: run both experts on every token and select (2x the FFN FLOPs).
- `sorted`:    sort tokens by modality, run one grouped matmul (`jax.lax.ragged_dot`,
               which lowers to grouped-GEMM kernels on TPU/GPU) so each token runs only
               its own expert, then un-sort.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from synergen_jax.model.layers import default_kernel_init


class ExpertWeights(nn.Module):
  """The three SwiGLU kernels of one expert: gate, up [embed, mlp], down [mlp, embed]."""

  embed_dim: int
  mlp_dim: int
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self):
    def kernel(name, shape, axes):
      return self.param(name, nn.with_logical_partitioning(default_kernel_init(1), axes),
                        shape, self.param_dtype)

    return (kernel("gate", (self.embed_dim, self.mlp_dim), ("embed", "mlp")),
            kernel("up", (self.embed_dim, self.mlp_dim), ("embed", "mlp")),
            kernel("down", (self.mlp_dim, self.embed_dim), ("mlp", "embed")))


def _swiglu(x, gate, up, down, dtype):
  x = x.astype(dtype)
  h = nn.silu(x @ gate.astype(dtype)) * (x @ up.astype(dtype))
  return h @ down.astype(dtype)


@jax.custom_vjp
def _permute(x, order, inverse):
  """x[order] for a permutation `order` whose inverse is known.

  The gradient is another gather (g[inverse]) instead of the scatter-add XLA would
  emit for a general gather.
  """
  return x[order]


def _permute_fwd(x, order, inverse):
  return x[order], (order, inverse)


def _permute_bwd(res, g):
  order, inverse = res
  return g[inverse], None, None


_permute.defvjp(_permute_fwd, _permute_bwd)


def _sorted_experts_local(x, is_image, text_w, vision_w, dtype):
  """x: [batch, length, embed]; each token through its own expert via ragged_dot."""
  batch, length, embed = x.shape
  flat = x.reshape(batch * length, embed).astype(dtype)  # [tokens, embed]
  img = is_image.reshape(-1)
  order = jnp.argsort(img, stable=True)  # text tokens first, then image tokens
  inverse = jnp.argsort(order)
  num_image = jnp.sum(img, dtype=jnp.int32)
  group_sizes = jnp.stack([img.shape[0] - num_image, num_image]).astype(jnp.int32)
  xs = _permute(flat, order, inverse)
  gate, up, down = (jnp.stack([t, v]).astype(dtype) for t, v in zip(text_w, vision_w))
  h = nn.silu(jax.lax.ragged_dot(xs, gate, group_sizes)) * jax.lax.ragged_dot(
      xs, up, group_sizes)  # [tokens, mlp]
  ys = jax.lax.ragged_dot(h, down, group_sizes)  # [tokens, embed]
  return _permute(ys, inverse, order).reshape(batch, length, embed)


def _sorted_experts(x, is_image, text_w, vision_w, dtype):
  """Sorts tokens within each data shard (not across the mesh) when a mesh is set.

  Under a mesh the sort + grouped matmul run in a `shard_map` that is manual over the
  batch mesh axes only: each shard sorts its own tokens (no all-to-all), expert
  weights are gathered over fsdp as any FSDP matmul would, and the tensor axis
  stays automatic.
  """
  mesh = jax.sharding.get_abstract_mesh()
  batch_axes = nn.logical_to_mesh_axes(("activation_batch",))[0]
  if batch_axes is not None and not mesh.empty:
    names = (batch_axes,) if isinstance(batch_axes, str) else tuple(batch_axes)
    names = tuple(a for a in names if a in mesh.axis_names and mesh.shape[a] > 1)
    shards = 1
    for a in names:
      shards *= mesh.shape[a]
    if names and x.shape[0] % shards == 0:
      spec = jax.sharding.PartitionSpec(names)
      rep = jax.sharding.PartitionSpec()
      fn = jax.shard_map(
          functools.partial(_sorted_experts_local, dtype=dtype), mesh=mesh,
          in_specs=(spec, spec, rep, rep), out_specs=spec, axis_names=set(names),
          check_vma=False)
      return fn(x, is_image, text_w, vision_w)
  return _sorted_experts_local(x, is_image, text_w, vision_w, dtype)


class MMoE(nn.Module):
  embed_dim: int
  mlp_dim: int
  vision_experts: bool = True
  impl: str = "sorted"
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, is_image):
    """x: [batch, length, embed]; is_image: [batch, length] bool."""
    text_w = ExpertWeights(self.embed_dim, self.mlp_dim, self.param_dtype, name="text_ffn")()
    if not self.vision_experts:
      return _swiglu(x, *text_w, self.dtype)
    vision_w = ExpertWeights(self.embed_dim, self.mlp_dim, self.param_dtype,
                             name="vision_ffn")()
    if self.impl == "reference":
      y_text = _swiglu(x, *text_w, self.dtype)
      y_vision = _swiglu(x, *vision_w, self.dtype)
      return jnp.where(is_image[..., None], y_vision, y_text)
    return _sorted_experts(x, is_image, text_w, vision_w, self.dtype)
