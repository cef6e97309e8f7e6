"""Qwen2-0.5B(-Instruct) ablation base (paper supplementary A; 256 px, 32 x 32 codes).

The ablation files build on this one:
  qwen2_0_5b_progressive.py   S.1 (vision) -> S.2 (vision + attention), with MMoE
  qwen2_0_5b_full.py          S.1 -> S.2 training every parameter
  qwen2_0_5b_fold.py          understanding only: 2x4 fold + dynamic tiles (<= 7 + thumbnail)
  qwen2_0_5b_nofold.py        understanding only: no fold, one 256 px tile
(progressive vs full use neither folding nor dynamic resolution, as the paper does; fold vs
no fold have equal LLM image lengths: 8 tiles x 128 folded tokens = 1024 = 32 x 32 codes.)
Starts from imported Qwen2-0.5B-Instruct weights (W/pretrained). Qwen2's tokenizer is
byte-level BPE, not SentencePiece: a SentencePiece conversion of it is expected at
W/pretrained/tokenizer.model (its padded vocabulary must equal model.vocab_size).
Data: image-caption pairs as webdataset tars (config.data.source.data_dir; pretokenize
them with docs/DATA.md's webdataset example).
Mesh: a TPU v5e-64 / v5p-64 slice, every chip on fsdp (batches are multiples of 64).
TPU fit (docs/TPU_FIT.md, `python -m synergen_jax.tpu.aot --topology=v5e:8x8`): the ablation
files call `tpu_target`: Pallas splash attention (on GPU:
--config.model.attention_backend=cudnn), the MMoE's Pallas megablox grouped matmul
(libtpu 0.0.52 expands `ragged_dot` into a dense matmul over both experts on v5e / v6e;
on GPU: --config.model.mmoe_impl=sorted), full remat, and 8 rows per task per chip at a
time for the two-task stages (gradient accumulation over 2 micro-batches: exact, the
losses are sums), all 16 at once for the understanding-only ones.
"""

import ml_collections

from synergen_jax.configs import models
from synergen_jax import experiment

ADAMW = dict(b1=0.9, b2=0.95, eps=1e-8, warmup_steps=200, clip_norm=1.0)


def get_config() -> ml_collections.ConfigDict:
  config = experiment.base_config(models.qwen2_0_5b())
  config.mesh.shape = (1, -1, 1)
  config.tokenizer = "{workdir}/pretrained/tokenizer.model"
  config.init_params = "{workdir}/pretrained/params"
  d = config.data
  d.source.kind = "webdataset"  # image-caption pairs as img2dataset writes them
  d.source.data_dir = "data/raw/ablation/{split}/*.tar"
  d.pretokenized_dir = "data/pretokenized/ablation_256px"
  d.image_size, d.vq_downsample = 256, 8  # the pipeline folds by model.fold
  d.num_shards, d.encode_batch_size, d.prefetch_buffer = 1024, 1024, 4
  d.understanding.update(dict(batch_size=1024, seq_len=2048))
  d.generation.update(dict(batch_size=1024, seq_len=2048))
  config.model.max_gen_patches = 2048
  config.train.update(dict(log_every=50, eval_every=1000, eval_batches=8,
                           checkpoint_every=1000, keep_checkpoints=3,
                           eval_sets=("understanding", "generation")))
  return config


def tpu_target(config: ml_collections.ConfigDict,
               grad_accum_steps: int = 2) -> ml_collections.ConfigDict:
  """Execution settings for the TPU v5e-64 target (model sizes and recipe unchanged):
  1024 rows / 64 chips = 16 per chip per task, in `grad_accum_steps` micro-batches."""
  config.model.attention_backend = "splash"
  config.model.mmoe_impl = "gmm"
  # The LM head (151,936 classes) on at most 512 text targets per 2,048-token row
  # instead of every position: a quarter of the row, what a row of 75 % image tokens
  # leaves (captions of ~12 packed pairs per row fit; overflow is logged as
  # {task}/text_targets_dropped).
  config.model.max_text_targets = 512
  # Cross-entropy gradients in the forward pass: no logit recompute, output matrices
  # gathered once per micro-batch, no weight gradient for a frozen LM head.
  # Chunks of 256 positions: the fused loss holds a chunk's f32 logits and their
  # gradient at once (8 rows x 512 x 151,944 would be 2 x 2.3 GiB).
  config.model.loss_impl = "fused"
  config.model.loss_chunk_size = 256
  config.model.remat_policy = "full"
  for name in config.stage_order:
    config.stages[name].grad_accum_steps = grad_accum_steps
  return config


def no_fold(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """1 x 1 fold: every VQ code is one LLM token (the unfolding head predicts one code)."""
  config.model.fold = (1, 1)
  config.model.max_gen_patches = 2048
  return config


def progressive_stages(config, s1_trainable, s2_trainable) -> ml_collections.ConfigDict:
  """S.1 (1e-4 constant, wd 0.05) -> S.2 (5e-5 cosine, wd 0.05), 1/6 of the paper's steps."""
  config.stage_order = ("s1", "s2")
  config.stages.s1 = experiment.make_stage(
      "multimodal", s1_trainable, 16_000, vision_ffn_from_text=True,
      optimizer=dict(ADAMW, lr=1e-4, schedule="constant", weight_decay=0.05))
  config.stages.s2 = experiment.make_stage(
      "multimodal", s2_trainable, 6_000,
      optimizer=dict(ADAMW, lr=5e-5, schedule="cosine", weight_decay=0.05))
  return config
