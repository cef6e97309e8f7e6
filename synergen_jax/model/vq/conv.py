"""Convolutions of the Emu3 VQ-VAE, in channels-last layout.

Spatial tensors are [batch, height, width, channels]; spatio-temporal tensors are
[batch, time, height, width, channels]. Kernels are Flax-layout ([kh, kw, in, out] and
[kt, kh, kw, in, out]); the importer transposes PyTorch's [out, in, ...] kernels.
"""

import flax.linen as nn
import jax.numpy as jnp


def conv2d(features: int, kernel: int, name: str, padding: int | None = None) -> nn.Conv:
  """Stride-1 2-D convolution with PyTorch-style symmetric zero padding (kernel // 2)."""
  pad = kernel // 2 if padding is None else padding
  return nn.Conv(features, (kernel, kernel), padding=((pad, pad), (pad, pad)), name=name)


class CausalConv3d(nn.Module):
  """Emu3's `Emu3VQVAEConv3d`: a 3-D convolution, causal in time.

  Time is always padded with two zero frames in front (Emu3's fixed `(2, 0)` time padding,
  whatever the kernel), space with `kernel - stride` zeros split as (ceil, floor).
  """
  features: int
  kernel_size: tuple[int, int, int]
  strides: tuple[int, int, int] = (1, 1, 1)

  @nn.compact
  def __call__(self, x):  # [batch, time, height, width, channels]
    pads = [(2, 0)]
    for k, s in zip(self.kernel_size[1:], self.strides[1:]):
      p = k - s
      pads.append((p // 2 + p % 2, p // 2))
    x = jnp.pad(x, [(0, 0)] + pads + [(0, 0)])
    return nn.Conv(self.features, self.kernel_size, strides=self.strides, padding="VALID",
                   name="conv")(x)  # [batch, time', height', width', features]


class Downsample(nn.Module):
  """2x spatial downsampling: pad right/bottom by one, 3x3 convolution with stride 2."""

  @nn.compact
  def __call__(self, x):  # [batch, height, width, channels]
    x = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    return nn.Conv(x.shape[-1], (3, 3), strides=(2, 2), padding="VALID",
                   name="conv")(x)  # [batch, height / 2, width / 2, channels]


def upsample_nearest(x, factor: int = 2):
  """Nearest-neighbour upsampling of [batch, height, width, channels] by `factor`."""
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def resize_nearest(x, height: int, width: int):
  """PyTorch `F.interpolate(mode="nearest")` of [batch, h, w, c] to [batch, height, width, c]."""
  h, w = x.shape[1], x.shape[2]
  if (h, w) == (height, width):
    return x
  if height % h == 0 and width % w == 0:
    return jnp.repeat(jnp.repeat(x, height // h, axis=1), width // w, axis=2)
  rows = (jnp.arange(height) * h) // height
  cols = (jnp.arange(width) * w) // width
  return x[:, rows][:, :, cols]


class Upsample(nn.Module):
  """2x nearest-neighbour spatial upsampling followed by a 3x3 convolution."""

  @nn.compact
  def __call__(self, x):  # [batch, height, width, channels]
    x = upsample_nearest(x)  # [batch, 2 * height, 2 * width, channels]
    return conv2d(x.shape[-1], 3, name="conv")(x)


class TemporalDownsample(nn.Module):
  """Halves time with a causal (4, 3, 3) convolution of stride (2, 1, 1)."""
  features: int

  @nn.compact
  def __call__(self, x):  # [batch, time, height, width, channels]
    return CausalConv3d(self.features, (4, 3, 3), (2, 1, 1), name="conv")(x)


class TemporalUpsample(nn.Module):
  """Doubles time by repeating frames, then a causal (3, 3, 3) convolution."""
  features: int

  @nn.compact
  def __call__(self, x):  # [batch, time, height, width, channels]
    x = jnp.repeat(x, 2, axis=1)  # [batch, 2 * time, height, width, channels]
    return CausalConv3d(self.features, (3, 3, 3), name="conv")(x)
