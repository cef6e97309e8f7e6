"""Basic layers with logical axis names on every parameter.

Every kernel is created with `nn.with_logical_partitioning`, so one rules table
(`synergen_jax.sharding.LOGICAL_RULES`) decides how it is laid out on the mesh.
"""

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]


def default_kernel_init(fan_in_axes: int = 1) -> Initializer:
  """Truncated-normal fan-in init for kernels whose first `fan_in_axes` dims are inputs."""
  return nn.initializers.variance_scaling(
      1.0, "fan_in", "truncated_normal",
      in_axis=tuple(range(fan_in_axes)), out_axis=-1,
  )


class Dense(nn.Module):
  """y = x @ W (+ b) as one einsum over named axes.

  `features` may be several output dims (e.g. (heads, head_dim)) and `in_axes` the
  number of trailing input dims contracted (e.g. 2 for (heads, head_dim) -> embed).
  """

  features: Sequence[int]
  kernel_axes: Sequence[str]
  in_axes: int = 1
  use_bias: bool = False
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  kernel_init: Initializer | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = tuple(self.features)
    in_shape = x.shape[-self.in_axes:]
    if len(self.kernel_axes) != self.in_axes + len(features):
      raise ValueError(
          f"{self.name}: kernel_axes {tuple(self.kernel_axes)} must name "
          f"{self.in_axes} input + {len(features)} output dims"
      )
    init = self.kernel_init or default_kernel_init(self.in_axes)
    kernel = self.param(
        "kernel", nn.with_logical_partitioning(init, tuple(self.kernel_axes)),
        in_shape + features, self.param_dtype,
    )
    letters = "abcdefghijklmnopqrstuvwxyz"
    batch = letters[: x.ndim - self.in_axes]
    contract = letters[x.ndim - self.in_axes: x.ndim]
    out = letters[x.ndim: x.ndim + len(features)]
    y = jnp.einsum(f"{batch}{contract},{contract}{out}->{batch}{out}",
                   x.astype(self.dtype), kernel.astype(self.dtype))
    if self.use_bias:
      bias = self.param(
          "bias", nn.with_logical_partitioning(nn.initializers.zeros_init(),
                                               tuple(self.kernel_axes[self.in_axes:])),
          features, self.param_dtype,
      )
      y = y + bias.astype(self.dtype)
    return y


class RMSNorm(nn.Module):
  """Root-mean-square norm, computed in float32, with a learned scale."""

  eps: float = 1e-6
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  axis_name: str = "embed"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    scale = self.param(
        "scale", nn.with_logical_partitioning(nn.initializers.ones_init(), (self.axis_name,)),
        (x.shape[-1],), self.param_dtype,
    )
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
    return (y * scale.astype(jnp.float32)).astype(self.dtype)


class LayerNorm(nn.Module):
  """LayerNorm (mean and variance, scale and bias), computed in float32."""

  eps: float = 1e-5
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  axis_name: str = "embed"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    names = (self.axis_name,)
    scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones_init(), names),
                       (x.shape[-1],), self.param_dtype)
    bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros_init(), names),
                      (x.shape[-1],), self.param_dtype)
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
    return (y * scale + bias).astype(self.dtype)


def apply_rope(x: jax.Array, positions: jax.Array, theta: float) -> jax.Array:
  """Rotary position embedding (rotate-half convention, as in Llama/Qwen2/InternLM2).

  x: [batch, length, heads, head_dim]; positions: [batch, length] int.
  """
  head_dim = x.shape[-1]
  half = head_dim // 2
  freq = theta ** (-jnp.arange(0, half, dtype=jnp.float32) * 2.0 / head_dim)  # [half]
  angle = positions.astype(jnp.float32)[..., None] * freq  # [batch, length, half]
  sin = jnp.sin(angle)[:, :, None, :]  # [batch, length, 1, half]
  cos = jnp.cos(angle)[:, :, None, :]
  x32 = x.astype(jnp.float32)
  x1, x2 = x32[..., :half], x32[..., half:]
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)


class SwiGLU(nn.Module):
  """The LLM's FFN: down(silu(gate(x)) * up(x))."""

  mlp_dim: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    embed = x.shape[-1]
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    gate = Dense((self.mlp_dim,), ("embed", "mlp"), name="gate", **kw)(x)
    up = Dense((self.mlp_dim,), ("embed", "mlp"), name="up", **kw)(x)
    h = nn.silu(gate) * up  # [..., mlp]
    h = nn.with_logical_constraint(h, ("activation_batch", "activation_length", "activation_mlp"))
    return Dense((embed,), ("mlp", "embed"), name="down", **kw)(h)
