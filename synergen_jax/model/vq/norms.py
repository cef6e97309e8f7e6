"""Normalisations of the Emu3 VQ-VAE: GroupNorm and the decoder's spatial norm."""

import flax.linen as nn

from synergen_jax.model.vq.conv import conv2d, resize_nearest


def group_norm(groups: int, name: str) -> nn.GroupNorm:
  """PyTorch-equivalent GroupNorm (eps 1e-6, two-pass variance)."""
  return nn.GroupNorm(num_groups=groups, epsilon=1e-6, use_fast_variance=False, name=name)


class SpatialNorm(nn.Module):
  """GroupNorm whose scale and shift are 1x1 convolutions of the quantised latents.

  The latents are resized (nearest) to the feature map's resolution, so every decoder
  stage is conditioned on the code grid (MoVQ's spatially conditioned normalisation).
  A 1x1 convolution commutes with nearest resizing, so the scale and shift are computed
  at the code grid's resolution and broadcast over each code's block of pixels: the same
  values as Emu3's resize-then-convolve, without full-resolution copies of the latents.
  """
  groups: int

  @nn.compact
  def __call__(self, x, quant):
    # x: [batch, height, width, channels]; quant: [batch, h, w, embed_dim]
    channels = x.shape[-1]
    x = group_norm(self.groups, "norm_layer")(x)
    # Bias 1: a fresh SpatialNorm starts as a plain GroupNorm (with zero bias the scale
    # would be ~0 and the untrained decoder would pass almost no signal).
    scale = nn.Conv(channels, (1, 1), bias_init=nn.initializers.ones, name="conv_y")(quant)
    shift = conv2d(channels, 1, name="conv_b")(quant)  # [batch, h, w, channels] each
    b, height, width, _ = x.shape
    h, w = quant.shape[1], quant.shape[2]
    if height % h or width % w:  # not whole blocks: resize like F.interpolate(nearest)
      return (x * resize_nearest(scale, height, width)
              + resize_nearest(shift, height, width))  # [batch, height, width, channels]
    fh, fw = height // h, width // w
    blocks = x.reshape(b, h, fh, w, fw, channels)
    out = blocks * scale[:, :, None, :, None] + shift[:, :, None, :, None]
    return out.reshape(b, height, width, channels)


def make_norm(groups: int, spatial: bool, name: str):
  """A `norm(x, quant)` callable: GroupNorm, or SpatialNorm conditioned on `quant`.

  Must be called inside a compact method (the norm becomes a child named `name`, which
  is the Hugging Face name of the same layer).
  """
  if spatial:
    module = SpatialNorm(groups, name=name)
    return lambda x, quant: module(x, quant)
  module = group_norm(groups, name)
  return lambda x, quant=None: module(x)
