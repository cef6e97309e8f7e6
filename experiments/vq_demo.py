"""The 8x demo VQ tokenizer: Emu3's architecture at CPU size, trained on 64 px scenes.

8x downsampling (64 px -> 8 x 8 codes), the token geometry of SynerGen-VL (512 px ->
64 x 64 with p = 8), just smaller. The demo itself uses the 4x variant of this file,
experiments/vq_demo_f4.py (its reconstructions keep the objects the scorer needs; issue
15); the measurements below are of this 8x one.
  python -m synergen_jax.train_vq --config=experiments/vq_demo.py --workdir=/tmp/vq_demo

Quality vs training time (issue 4; validation split, 256 images, object recovery = share
of objects whose shape and colour `scenes/scorer.py` recovers from the reconstructions):
  python benchmarks/vq_quality.py --config=experiments/vq_demo.py --eval_at=1200
These defaults, 2400 steps of batch 2 (450-480 s process CPU; 341 s wall, compilation
included, with the 2-core machine's load average at 1-2):
76.9% recovery / 25.8 dB PSNR / 99.6% codebook usage (misses: 148 wrong shape, 2 no
colour); Emu3's objective (Euclidean 16-d codes, codebook loss, plain L1 + 4 L2, batch 8 x
600 steps, similar time) gives 46.9% / 24.0 dB / 93%. What each change bought, each at
~5 min: cosine-similarity 8-d codes + EMA codebook + 3x foreground weight 50-54%; smaller
batches, more steps (8 x 600 -> 4 x 1200 -> 2 x 2400) 54% -> 66% -> 72%; image-gradient
loss (weight 3) 76.2%; 5x weight on edge pixels 76.9% (within run-to-run noise). Not
better per CPU second: 4096 codes (76.1%), 8 channels at full resolution, wider 16/8 px
stages. A patch-GAN from step 800 (`disc.enabled`, channels 16) gives 79.5% / 24.9 dB but
costs ~30% more time (cut to 2000 steps to fit: 75.9%); 4x the compute (batch 8 x 2400)
gives 86%. Misses are mostly small crosses and diamonds whose arms and tips blur.

Why 95% (issue 4's target) is out of reach at ~5 min here (measured 2026-11-22, same
machine): the scorer itself needs near-crisp edges on the 11-14 px objects. On the
validation renders blurred with a Gaussian of 0.8 px (28.4 dB) it recovers 93.8% of the
objects, at 1.0 px (27.0 dB) 92.1%, at 1.3 px (25.7 dB) 87.2% (`benchmarks/scorer_blur.py`;
small diamonds turn into circles first). The same network trained for the same 2400 steps
without quantisation (continuous 8-d latents) reaches 89.2% / 26.7 dB, so a perfect
codebook alone would not close the gap. At ~5 min, neither helped: lr 6e-3 (76.9%),
batch 1 x 3300 steps (70.5%), L1-only loss for the last third (72.2%), 800 steps without
quantisation first (77.3%). Rendering at 96 px (objects 16-35 px) gives 89.4% after 1400
steps but takes 374 s. More compute: these settings with 4x the steps (9600, 1134 s) give
90.1% / 28.7 dB (86.9% at step 4800), so 95% looks like >= 16x the budget on this CPU.
"""

import ml_collections

from synergen_jax.model.vq import config as vq_config


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.model = vq_config.emu3_config()
  c.model.update(dict(
      codebook_size=1024,
      embed_dim=8,
      latent_channels=8,
      temporal_downsample_factor=1,
      base_channels=16,
      channel_multiplier=(1, 1, 2, 4),
      num_res_blocks=1,
      attn_resolutions=(),
      hidden_size=64,
      num_attention_heads=1,
      norm_groups=8,
      l2_norm_codes=True,  # codes searched by cosine similarity (ViT-VQGAN)
  ))

  c.data = ml_collections.ConfigDict(dict(
      image_size=64, batch_size=2, text_prob=0.3, eval_images=256, eval_batch_size=64,
      cell=0, max_objects=4,  # the scene world (data_pipelines/scenes/render.py placement)
      crop=0))  # train on whole images (vq_training/config.py: crops around objects)

  c.train = ml_collections.ConfigDict(dict(
      # Batch 2: per image seen, small batches learn more; per step the tiny model's cost
      # is mostly fixed, so batch 2 x 2400 steps costs about what 8 x 600 did.
      steps=2400,
      lr=3e-3, warmup_steps=80, final_lr_frac=0.1, b1=0.9, b2=0.99, weight_decay=0.0,
      grad_clip=1.0,
      # L2 weighted 4x over L1: 600 steps give 46.9% object recovery / 24.0 dB / 93% codebook
      # usage vs 41.4% / 23.3 dB / 85% with 1:1, and 15.0% with L1 alone (see issue 4).
      l1_weight=1.0, l2_weight=4.0,
      codebook_weight=1.0, commitment_weight=0.25,
      # EMA codebook (online k-means); objects and their edges weigh more in the pixel
      # loss, plus an image-gradient loss: the scorer misses shapes whose corners blur.
      codebook_ema_decay=0.99, codebook_ema_epsilon=1e-5, foreground_weight=3.0,
      gradient_weight=3.0, edge_weight=5.0,
      usage_decay=0.95, restart_every=100, restart_until=2000, restart_threshold=0.1,
      disc=ml_collections.ConfigDict(dict(
          enabled=False, start_step=200, weight=0.1, lr=2e-4, channels=32, num_layers=3,
          groups=8)),
      log_every=10, checkpoint_every=200, eval_every=0, max_checkpoints=2,
  ))
  return c
