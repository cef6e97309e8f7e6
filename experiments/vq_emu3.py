"""The released Emu3 VQ tokenizer's sizes (32,768 codes, 8x downsampling, ~270M params).

Used to import the pretrained tokenizer (no training from scratch at this size):
  python -m synergen_jax.weights.emu3_vq --hf_dir=/path/to/Emu3-VisionTokenizer --out=W
writes a VQ checkpoint with these sizes (read from the checkpoint's config.json);
`synergen_jax.vq_training.vq_checkpoint.load_tokenizer(W)` restores it for pretokenization.
The training fields mirror MoVQGAN-style fine-tuning at 512 px, for completeness.
"""

import ml_collections

from synergen_jax.model.vq import config as vq_config


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.model = vq_config.emu3_config()
  c.data = ml_collections.ConfigDict(dict(
      image_size=512, batch_size=32, text_prob=0.3, eval_images=256, eval_batch_size=16))
  c.train = ml_collections.ConfigDict(dict(
      steps=100_000,
      lr=1e-4, warmup_steps=1000, final_lr_frac=0.1, b1=0.5, b2=0.9, weight_decay=0.0,
      grad_clip=1.0,
      l1_weight=1.0, l2_weight=0.0,
      codebook_weight=1.0, commitment_weight=0.25,
      usage_decay=0.99, restart_every=1000, restart_until=50_000, restart_threshold=0.03,
      disc=ml_collections.ConfigDict(dict(
          enabled=True, start_step=20_000, weight=0.1, lr=1e-4, channels=64, num_layers=3,
          groups=32)),
      log_every=50, checkpoint_every=2000, eval_every=10_000, max_checkpoints=3,
  ))
  return c
