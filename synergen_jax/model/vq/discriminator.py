"""A PatchGAN discriminator for adversarial VQ-VAE training (VQGAN / MoVQ style).

Not part of the Emu3 tokenizer itself: it only shapes the decoder during training.
"""

import flax.linen as nn


class PatchDiscriminator(nn.Module):
  """Strided 4x4 convolutions with LeakyReLU; one real/fake logit per image patch.

  `channels` for the first layer, doubled per layer (capped at 8x); GroupNorm after every
  hidden layer but the first (no batch statistics, so it is a pure function of one batch).
  """
  channels: int = 32
  num_layers: int = 3
  groups: int = 8

  @nn.compact
  def __call__(self, x):  # [batch, height, width, 3] in [-1, 1]
    h = nn.leaky_relu(nn.Conv(self.channels, (4, 4), strides=2, padding=1, name="conv_0")(x), 0.2)
    for i in range(1, self.num_layers):
      width = self.channels * min(2**i, 8)
      h = nn.Conv(width, (4, 4), strides=2, padding=1, use_bias=False, name=f"conv_{i}")(h)
      h = nn.leaky_relu(nn.GroupNorm(self.groups, name=f"norm_{i}")(h), 0.2)
    return nn.Conv(1, (4, 4), strides=1, padding="SAME", name="logits")(h)[..., 0]
    # [batch, height / 2**num_layers, width / 2**num_layers] logits
