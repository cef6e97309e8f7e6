"""Tiny model + tiny stages: unit tests and quick end-to-end checks of the trainer.

Expects data prepared under the workdir (the tests build it; or run the demo job's
data preparation): {workdir}/data/tfds, {workdir}/data/tokenizer.model and mean-colour
pretokenized 32 px scenes (4 x 4 codes, 2 x 2 fold) in {workdir}/data/pretokenized.
The model's vocab_size must equal the tokenizer's padded text vocabulary.
"""

import ml_collections

from synergen_jax.configs import models
from synergen_jax import experiment


def _stage(kind, trainable, steps, **opt):
  s = experiment.default_stage_config()
  s.kind = kind
  s.trainable = trainable
  s.steps = steps
  s.optimizer.update(dict(lr=3e-3, warmup_steps=2, schedule="constant"))
  s.optimizer.update(opt)
  return s


def get_config() -> ml_collections.ConfigDict:
  config = experiment.base_config(models.tiny())
  config.model.max_gen_patches = 12  # up to 3 generation examples per 128-token row
  config.tokenizer = "{workdir}/data/tokenizer.model"
  config.data.source.name = "synergen_scenes/tiny16"
  config.data.source.data_dir = "{workdir}/data/tfds"
  config.data.pretokenized_dir = "{workdir}/data/pretokenized"
  config.data.image_size = 32
  config.data.vq_downsample = 8
  config.data.num_shards = 2
  config.data.prefetch_buffer = 0
  for task in ("understanding", "generation"):
    config.data[task].batch_size = 4
    config.data[task].seq_len = 128
  config.text_data.tfds_name = ""      # scene captions + QA only
  config.text_data.batch_size = 4
  config.text_data.seq_len = 128
  config.text_data.prefetch_buffer = 0
  config.stage_order = ("text", "stage1")
  config.stages.text = _stage("text", ("llm", "llm_attention"), 4)
  config.stages.stage1 = _stage("multimodal", ("vision",), 4)
  config.stages.stage1.vision_ffn_from_text = True
  config.stages.stage1.tasks = ("understanding", "generation", "text")  # + text replay
  config.stages.stage1.text_data.batch_size = 2
  config.train.log_every = 2
  config.train.checkpoint_every = 2
  config.train.eval_batches = 2
  config.train.keep_checkpoints = 2
  return config
