"""The Emu3 VQ-VAE decoder: (post-quant latents, quantised latents) -> image."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from synergen_jax.model.vq import config as vq_config
from synergen_jax.model.vq.conv import TemporalUpsample, conv2d
from synergen_jax.model.vq.norms import SpatialNorm
from synergen_jax.model.vq.resnet import TemporalResnetBlock
from synergen_jax.model.vq.stages import MiddleBlock, UpBlock


class Decoder(nn.Module):
  """Temporal layers -> conv_in -> middle -> up stages -> spatial norm/swish/conv_out.

  As in Emu3, the post-quant latents and the quantised latents go through the temporal
  residual blocks and temporal upsampling together (one batch), and the result of the
  latter conditions every spatial norm. Emu3 decodes a still image as the first frame of
  the clip; the 2-D part works frame by frame, so only that frame is decoded.
  """
  config: Any

  @nn.compact
  def __call__(self, post_quant, quant, train: bool = False):
    # post_quant: [batch, h, w, latent]; quant: [batch, h, w, embed_dim]
    cfg = self.config
    b = post_quant.shape[0]
    both = jnp.concatenate([post_quant, quant], axis=0)[:, None]  # [2 * batch, 1, h, w, c]
    for i in range(cfg.num_res_blocks):
      both = TemporalResnetBlock(cfg.latent_channels, name=f"time_res_stack_{i}")(both, train)
    for i in range(vq_config.num_temporal_layers(cfg)):
      both = nn.swish(TemporalUpsample(cfg.latent_channels, name=f"time_conv_{i}")(both))
    # both: [2 * batch, temporal_downsample_factor, h, w, c]; keep frame 0 (the image).
    h, quant = both[:b, 0], both[b:, 0]  # [batch, h, w, c] each

    block_in = cfg.base_channels * cfg.channel_multiplier[-1]
    h = conv2d(block_in, 3, "conv_in")(h)  # [batch, h, w, block_in]
    h = MiddleBlock(cfg.hidden_size, cfg.num_attention_heads, cfg.norm_groups,
                    spatial_norm=True, name="middle_block")(h, quant)
    h = UpBlock(cfg.base_channels, tuple(cfg.channel_multiplier), cfg.num_res_blocks,
                tuple(cfg.attn_resolutions), cfg.hidden_size, cfg.num_attention_heads,
                cfg.norm_groups, name="up_block")(h, quant)  # [batch, H, W, base * mult[0]]
    h = nn.swish(SpatialNorm(cfg.norm_groups, name="norm_out")(h, quant))
    return conv2d(cfg.out_channels, 3, "conv_out")(h)  # [batch, H, W, out_channels]
