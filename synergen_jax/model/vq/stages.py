"""Resolution stages of the Emu3 VQ-VAE: encoder down-stages, decoder up-stages, middle.

Child names follow the Hugging Face layout (`down.{i}.block.{j}` becomes `down_{i}` /
`block_{j}`), so the importer maps keys by rule.
"""

from typing import Sequence

import flax.linen as nn

from synergen_jax.model.vq.attention import SelfAttention, attention_residual
from synergen_jax.model.vq.conv import Downsample, Upsample
from synergen_jax.model.vq.norms import make_norm
from synergen_jax.model.vq.resnet import ResnetBlock


class Stage(nn.Module):
  """`num_blocks` residual blocks (each followed by attention if `attention`).

  Encoder stages (`spatial_norm=False`) end with a 2x downsampling when `resample`;
  decoder stages (`spatial_norm=True`) end with a 2x upsampling when `resample`.
  """
  out_channels: int
  num_blocks: int
  attention: bool
  resample: bool
  hidden_size: int
  num_heads: int
  groups: int
  spatial_norm: bool = False

  @nn.compact
  def __call__(self, x, quant=None):
    # x: [batch, height, width, in_channels]; quant: [batch, h, w, embed_dim] (decoder)
    for j in range(self.num_blocks):
      x = ResnetBlock(self.out_channels, self.groups, self.spatial_norm,
                      name=f"block_{j}")(x, quant)
      if self.attention:
        x = attention_residual(
            x, quant,
            attn=SelfAttention(self.hidden_size, self.num_heads, name=f"attn_{j}"),
            norm=make_norm(self.groups, self.spatial_norm, f"attn_norms_{j}"))
    if self.resample:
      if self.spatial_norm:
        x = Upsample(name="upsample")(x)  # [batch, 2 * height, 2 * width, out_channels]
      else:
        x = Downsample(name="downsample")(x)  # [batch, height / 2, width / 2, out_channels]
    return x


class DownBlock(nn.Module):
  """All encoder stages: stage i has width base * multiplier[i]; all but the last halve."""
  base_channels: int
  channel_multiplier: Sequence[int]
  num_res_blocks: int
  attn_resolutions: Sequence[int]
  hidden_size: int
  num_heads: int
  groups: int

  @nn.compact
  def __call__(self, x):  # [batch, height, width, base_channels]
    n = len(self.channel_multiplier)
    for i, mult in enumerate(self.channel_multiplier):
      x = Stage(self.base_channels * mult, self.num_res_blocks, i in self.attn_resolutions,
                resample=i != n - 1, hidden_size=self.hidden_size, num_heads=self.num_heads,
                groups=self.groups, name=f"down_{i}")(x)
    return x  # [batch, height / 2**(n-1), width / 2**(n-1), base * multiplier[-1]]


class UpBlock(nn.Module):
  """All decoder stages, from the deepest (index n-1) to the first; all but stage 0 double."""
  base_channels: int
  channel_multiplier: Sequence[int]
  num_res_blocks: int
  attn_resolutions: Sequence[int]
  hidden_size: int
  num_heads: int
  groups: int

  @nn.compact
  def __call__(self, x, quant):
    # x: [batch, h, w, base * multiplier[-1]]; quant: [batch, h, w, embed_dim]
    for i in reversed(range(len(self.channel_multiplier))):
      x = Stage(self.base_channels * self.channel_multiplier[i], self.num_res_blocks + 1,
                i in self.attn_resolutions, resample=i != 0, hidden_size=self.hidden_size,
                num_heads=self.num_heads, groups=self.groups, spatial_norm=True,
                name=f"up_{i}")(x, quant)
    return x  # [batch, h * 2**(n-1), w * 2**(n-1), base * multiplier[0]]


class MiddleBlock(nn.Module):
  """Residual block, self-attention, residual block at the lowest resolution."""
  hidden_size: int
  num_heads: int
  groups: int
  spatial_norm: bool = False

  @nn.compact
  def __call__(self, x, quant=None):  # [batch, h, w, channels]
    c = x.shape[-1]
    x = ResnetBlock(c, self.groups, self.spatial_norm, name="block_1")(x, quant)
    x = attention_residual(
        x, quant, attn=SelfAttention(self.hidden_size, self.num_heads, name="attn_1"),
        norm=make_norm(self.groups, self.spatial_norm, "attn_norm"))
    return ResnetBlock(c, self.groups, self.spatial_norm, name="block_2")(x, quant)
