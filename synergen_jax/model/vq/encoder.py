"""The Emu3 VQ-VAE encoder: image -> continuous latents at 1 / 2**(stages-1) resolution."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from synergen_jax.model.vq import config as vq_config
from synergen_jax.model.vq.conv import TemporalDownsample, conv2d
from synergen_jax.model.vq.norms import group_norm
from synergen_jax.model.vq.resnet import TemporalResnetBlock
from synergen_jax.model.vq.stages import DownBlock, MiddleBlock


class Encoder(nn.Module):
  """conv_in -> down stages -> middle -> norm/swish/conv_out -> temporal layers.

  Emu3 encodes a still image as a clip of `temporal_downsample_factor` identical frames and
  its causal temporal convolutions reduce the clip to one latent frame. The 2-D part works
  frame by frame, so it runs once and its output is repeated along time (exactly what
  running it on the repeated frames gives, at 1/T of the cost).
  """
  config: Any

  @nn.compact
  def __call__(self, x, train: bool = False):  # [batch, height, width, in_channels]
    cfg = self.config
    h = conv2d(cfg.base_channels, 3, "conv_in")(x)  # [batch, height, width, base]
    h = DownBlock(cfg.base_channels, tuple(cfg.channel_multiplier), cfg.num_res_blocks,
                  tuple(cfg.attn_resolutions), cfg.hidden_size, cfg.num_attention_heads,
                  cfg.norm_groups, name="down_block")(h)  # [batch, h, w, block_in]
    h = MiddleBlock(cfg.hidden_size, cfg.num_attention_heads, cfg.norm_groups,
                    name="middle_block")(h)
    h = nn.swish(group_norm(cfg.norm_groups, "norm_out")(h))
    h = conv2d(cfg.latent_channels, 3, "conv_out")(h)  # [batch, h, w, latent]

    frames = cfg.temporal_downsample_factor
    h = jnp.repeat(h[:, None], frames, axis=1)  # [batch, time, h, w, latent]
    for i in range(vq_config.num_temporal_layers(cfg)):
      h = nn.swish(TemporalDownsample(cfg.latent_channels, name=f"time_conv_{i}")(h))
    for i in range(cfg.num_res_blocks):
      h = TemporalResnetBlock(cfg.latent_channels, name=f"time_res_stack_{i}")(h, train)
    return h  # [batch, 1, h, w, latent]
