"""The demo VQ tokenizer: Emu3's architecture at CPU size, trained on 64 px scenes.

8x downsampling (64 px -> 8 x 8 codes), so the demo's main model sees the same token
geometry as SynerGen-VL (512 px -> 64 x 64 with p = 8), just smaller.
  python -m synergen_jax.train_vq --config=experiments/vq_demo.py --workdir=/tmp/vq_demo
"""

import ml_collections

from synergen_jax.model.vq import config as vq_config


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.model = vq_config.emu3_config()
  c.model.update(dict(
      codebook_size=1024,
      embed_dim=16,
      latent_channels=16,
      temporal_downsample_factor=1,
      base_channels=16,
      channel_multiplier=(1, 1, 2, 4),
      num_res_blocks=1,
      attn_resolutions=(),
      hidden_size=64,
      num_attention_heads=1,
      norm_groups=8,
  ))

  c.data = ml_collections.ConfigDict(dict(
      image_size=64, batch_size=8, text_prob=0.3, eval_images=256, eval_batch_size=64))

  c.train = ml_collections.ConfigDict(dict(
      steps=600,
      lr=3e-3, warmup_steps=20, final_lr_frac=0.1, b1=0.9, b2=0.99, weight_decay=0.0,
      grad_clip=1.0,
      # L2 weighted 4x over L1: 600 steps give 46.9% object recovery / 24.0 dB / 93% codebook
      # usage vs 41.4% / 23.3 dB / 85% with 1:1, and 15.0% with L1 alone (see issue 4).
      l1_weight=1.0, l2_weight=4.0,
      codebook_weight=1.0, commitment_weight=0.25,
      usage_decay=0.95, restart_every=25, restart_until=500, restart_threshold=0.1,
      disc=ml_collections.ConfigDict(dict(
          enabled=False, start_step=200, weight=0.1, lr=2e-4, channels=32, num_layers=3,
          groups=8)),
      log_every=10, checkpoint_every=200, eval_every=0, max_checkpoints=2,
  ))
  return c
