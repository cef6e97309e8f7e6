"""Residual blocks of the Emu3 VQ-VAE: spatial (2-D) and temporal (3-D) ones."""

import flax.linen as nn

from synergen_jax.model.vq.conv import CausalConv3d, conv2d
from synergen_jax.model.vq.norms import make_norm


class ResnetBlock(nn.Module):
  """norm -> swish -> conv3x3 -> norm -> swish -> conv3x3, plus a (1x1-projected) residual.

  With `spatial_norm` the norms are SpatialNorms conditioned on the quantised latents
  (decoder); otherwise GroupNorms (encoder).
  """
  out_channels: int
  groups: int = 32
  spatial_norm: bool = False

  @nn.compact
  def __call__(self, x, quant=None):
    # x: [batch, height, width, in_channels]; quant: [batch, h, w, embed_dim] or None
    residual = x
    h = make_norm(self.groups, self.spatial_norm, "norm1")(x, quant)
    h = conv2d(self.out_channels, 3, "conv1")(nn.swish(h))
    h = make_norm(self.groups, self.spatial_norm, "norm2")(h, quant)
    h = conv2d(self.out_channels, 3, "conv2")(nn.swish(h))
    if x.shape[-1] != self.out_channels:
      residual = conv2d(self.out_channels, 1, "nin_shortcut")(residual)
    return residual + h  # [batch, height, width, out_channels]


class TemporalResnetBlock(nn.Module):
  """The 3-D residual block of Emu3's temporal stacks: BatchNorm + causal 3x3x3 convs.

  BatchNorm uses running statistics unless `train` (then batch statistics, and the
  running averages in the `batch_stats` collection are updated with PyTorch's momentum).
  """
  out_channels: int

  @nn.compact
  def __call__(self, x, train: bool = False):  # [batch, time, height, width, in_channels]
    def bn(name):
      return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                          use_fast_variance=False, name=name)

    residual = x
    h = nn.swish(bn("norm1")(x))
    h = CausalConv3d(self.out_channels, (3, 3, 3), name="conv1")(h)
    h = nn.swish(bn("norm2")(h))
    h = CausalConv3d(self.out_channels, (3, 3, 3), name="conv2")(h)
    if x.shape[-1] != self.out_channels:
      residual = nn.Conv(self.out_channels, (1, 1, 1), name="nin_shortcut")(residual)
    return residual + h  # [batch, time, height, width, out_channels]
