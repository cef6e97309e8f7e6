"""The Emu3 VQ-VAE: encoder, quant conv, codebook, post-quant conv, decoder.

Images here are float [batch, height, width, channels] in [-1, 1] (Emu3's normalisation);
`synergen_jax.model.vq.tokenizer` wraps this with uint8 images, checks and jit.
Variables: `params` and `batch_stats` (the temporal BatchNorms' running statistics).
"""

from typing import Any

import flax.linen as nn

from synergen_jax.model.vq import config as vq_config
from synergen_jax.model.vq.conv import CausalConv3d
from synergen_jax.model.vq.decoder import Decoder
from synergen_jax.model.vq.encoder import Encoder
from synergen_jax.model.vq.quantizer import VectorQuantizer


class VQVAE(nn.Module):
  """Emu3VQVAE for still images. `config`: a (frozen) config of `vq.config` fields."""
  config: Any

  def setup(self):
    cfg = self.config
    self.encoder = Encoder(cfg)
    self.decoder = Decoder(cfg)
    self.quantize = VectorQuantizer(cfg.codebook_size, cfg.embed_dim,
                                    l2_normalize=vq_config.l2_norm_codes(cfg))
    self.quant_conv = CausalConv3d(cfg.embed_dim, (3, 1, 1))
    self.post_quant_conv = CausalConv3d(cfg.latent_channels, (3, 1, 1))

  def encode_latents(self, images, train: bool = False):
    """[batch, H, W, 3] in [-1, 1] -> pre-quantisation latents [batch, h, w, embed_dim]."""
    h = self.encoder(images, train)  # [batch, 1, h, w, latent]
    return self.quant_conv(h)[:, 0]  # [batch, h, w, embed_dim]

  def encode(self, images):
    """[batch, H, W, 3] in [-1, 1] -> int32 codes [batch, h, w]."""
    return self.quantize.codes(self.encode_latents(images))

  def decode_latents(self, quant, train: bool = False):
    """Quantised latents [batch, h, w, embed_dim] -> images [batch, H, W, 3] (~[-1, 1])."""
    post_quant = self.post_quant_conv(quant[:, None])[:, 0]  # [batch, h, w, latent]
    return self.decoder(post_quant, quant, train)

  def decode(self, codes):
    """int codes [batch, h, w] -> images [batch, H, W, 3] (~[-1, 1])."""
    return self.decode_latents(self.quantize.lookup(codes))

  def __call__(self, images, train: bool = False):
    """Autoencodes images [batch, H, W, 3] for training; returns a dict of
    recon [batch, H, W, 3], z (pre-quant latents as the codebook compares them:
    l2-normalised with `l2_norm_codes`), codes [batch, h, w], and the codebook /
    commitment losses."""
    z = self.quantize.prepare(self.encode_latents(images, train))  # [batch, h, w, embed_dim]
    z_q, codes, codebook_loss, commitment_loss = self.quantize(z)
    recon = self.decode_latents(z_q, train)
    return dict(recon=recon, z=z, codes=codes, codebook_loss=codebook_loss,
                commitment_loss=commitment_loss)
