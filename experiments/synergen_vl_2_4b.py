"""SynerGen-VL-2.4B: progressive alignment S.1 -> S.2 -> instruction tuning (Table 8).

InternLM2-1.8B + vision experts + 4-layer unfolding head, 512 px, 64 x 64 codes, 2 x 8
fold. Hyper-parameters from METHOD.md section 8 (AdamW b1 0.9, b2 0.95, eps 1e-8,
200 warm-up steps, bf16 compute, f32 master weights, no gradient accumulation):
  S.1  trains vision;             seq 4,096;  batch/task 6,988 -> 6,912; lr 1e-4 constant; wd 0.05; 95k steps
  S.2  trains vision + attention; seq 8,192;  batch/task 5,090 -> 5,120; lr 5e-5 cosine;   wd 0.05; 35k steps
  SFT  trains everything;         seq 16,384; batch/task 1,760 -> 1,792; lr 5e-5 cosine;   wd 0.01; 12k steps
Batch sizes are rounded to multiples of 256 (the batch is sharded over every chip).
Mesh: every chip on the fsdp axis; written for a TPU v5p-512 slice (256 chips):
  --config.mesh.shape="(1,256,1)" or any (data, fsdp, tensor) whose data*fsdp divides the
  batches. Generation rows stay 4,096 long (a 512 px image is ~300 tokens) with a head
  budget of 3,840 patches per row (the most a row can hold), so no generation target is dropped.
TPU fit (docs/TPU_FIT.md, `python -m synergen_jax.tpu.aot --topology=v5:8x8x4`): one row per
task per chip at a time: gradient accumulation over 27 / 20 / 7 micro-batches (exact: the
losses are sums, so the step's gradient is the full batch's), remat keeping the q/k/v
projections and FFN gate/up outputs, Pallas splash attention and megablox MMoE (on GPU:
--config.model.attention_backend=cudnn --config.model.mmoe_impl=sorted).
Starts from imported InternLM2-1.8B weights (W/pretrained, see synergen_jax.weights):
  python -m synergen_jax.train --config=experiments/synergen_vl_2_4b.py --workdir=W
Data: pretokenized Emu3-VQ shards per stage (data_pipelines.pretokenize with the
stage's max_tiles / thumbnail; docs/DATA.md); the tokenizer is InternLM2's SentencePiece
model. Raw data (paths are config fields, `{split}` = train / validation):
  S.1, S.2  image-caption pairs as img2dataset webdataset tars (config.data.source)
  SFT       LLaVA conversations (config.stages.sft.data.source, JSONL + image root) for
            understanding; generation keeps reading S.2's pretokenized pairs
            (config.stages.sft.data.generation.pretokenized_dir)
e.g. for S.1:
  python -m data_pipelines.pretokenize --data.source.kind=webdataset \
      --data.source.data_dir='data/raw/laion_coyo_sam/{split}/*.tar' \
      --data.image_size=512 --data.num_shards=4096 --data.encode_batch_size=1024 \
      --data.pretokenized_dir=data/pretokenized/s1_512px \
      --encoder=synergen_jax.vq_encoder:from_workdir --encoder_arg=W_VQ [--multihost]
"""

import ml_collections

from synergen_jax.configs import models
from synergen_jax import experiment

ADAMW = dict(b1=0.9, b2=0.95, eps=1e-8, warmup_steps=200, clip_norm=1.0)


PAIRS = dict(kind="webdataset", data_dir="data/raw/laion_coyo_sam/{split}/*.tar")
SFT_CONVERSATIONS = dict(kind="llava", data_dir="data/raw/sft/{split}.jsonl",
                         image_root="data/raw/sft/images")


def _data(pretokenized: str, seq_len: int, und_batch: int, gen_batch: int,
          max_tiles: int, thumbnail: bool, source: dict | None = None,
          gen_pretokenized: str = "") -> dict:
  out = dict(pretokenized_dir=pretokenized, max_tiles=max_tiles, use_thumbnail=thumbnail,
             understanding=dict(batch_size=und_batch, seq_len=seq_len),
             generation=dict(batch_size=gen_batch, seq_len=4096,
                             pretokenized_dir=gen_pretokenized))
  if source:
    out["source"] = dict(source)
  return out


def get_config() -> ml_collections.ConfigDict:
  config = experiment.base_config(models.synergen_vl_2_4b())
  # A generation example is a caption, <boi>, 256 folded image tokens and <eoi>: a
  # 4,096-token row holds at most 15 of them, so at most 15 x 256 = 3,840 image targets
  # (`max_gen_patches`: no target is ever dropped; 4,096 ran the head on 256 patches that
  # can never be targets).
  config.model.max_gen_patches = 3840
  config.model.attention_backend = "splash"
  # TPU execution (docs/TPU_FIT.md, "Effect of each change"): the MMoE on megablox gmm
  # (weight gradients only for the trained expert), the LM head on at most 2,048 text
  # targets per row (overflow logged as {task}/text_targets_dropped), the cross-entropy
  # gradients in its forward pass (no frozen LM-head weight gradient, the output matrices
  # gathered once per micro-batch), and a remat policy that keeps the q/k/v projections
  # and the FFN gate / up outputs (4 GiB per 4,096-token row; HBM to spare on v5p).
  config.model.mmoe_impl = "gmm"
  config.model.max_text_targets = 2048
  config.model.loss_impl = "fused"
  config.model.remat_policy = "qkv_ffn"
  config.mesh.shape = (1, -1, 1)
  config.tokenizer = "{workdir}/pretrained/tokenizer.model"
  config.init_params = "{workdir}/pretrained/params"
  d = config.data
  d.source.update(PAIRS)
  d.pretokenized_dir = "data/pretokenized/s1_512px"
  d.image_size, d.vq_downsample = 512, 8  # the pipeline folds by model.fold
  d.num_shards, d.encode_batch_size = 4096, 1024
  d.prefetch_buffer = 4
  config.train.update(dict(log_every=50, eval_every=2000, eval_batches=8,
                           checkpoint_every=1000, keep_checkpoints=3,
                           eval_sets=("understanding", "generation")))
  config.stage_order = ("s1", "s2", "sft")
  config.stages.s1 = experiment.make_stage(
      "multimodal", ("vision",), 95_000, vision_ffn_from_text=True, grad_accum_steps=27,
      optimizer=dict(ADAMW, lr=1e-4, schedule="constant", weight_decay=0.05),
      data=_data("data/pretokenized/s1_512px", 4096, 6912, 6912, 1, False))
  config.stages.s2 = experiment.make_stage(
      "multimodal", ("vision", "llm_attention"), 35_000, grad_accum_steps=20,
      optimizer=dict(ADAMW, lr=5e-5, schedule="cosine", weight_decay=0.05),
      data=_data("data/pretokenized/s2_512px_6tiles", 8192, 5120, 5120, 6, True))
  config.stages.sft = experiment.make_stage(
      "multimodal", ("vision", "llm_attention", "llm"), 12_000, grad_accum_steps=7,
      optimizer=dict(ADAMW, lr=5e-5, schedule="cosine", weight_decay=0.01),
      data=_data("data/pretokenized/sft_512px_12tiles", 16384, 1792, 1792, 12, True,
                 source=SFT_CONVERSATIONS,
                 gen_pretokenized="data/pretokenized/s2_512px_6tiles"))
  return config
