"""Ablation A.1, with token folding: 2x4 fold + dynamic resolution (<= 7 tiles + thumbnail,
128 folded tokens per tile: <= 1,024 image tokens), understanding only, S.2-style data.
Compare with qwen2_0_5b_nofold.py (one 256 px tile unfolded: 1,024 tokens).
  python -m synergen_jax.train --config=experiments/qwen2_0_5b_fold.py --workdir=W
"""

from synergen_jax import experiment

ADAMW = dict(b1=0.9, b2=0.95, eps=1e-8, warmup_steps=200, clip_norm=1.0)


def understanding_stage(config, pretokenized_dir, max_tiles, thumbnail):
  config.stage_order = ("und",)
  config.stages.und = experiment.make_stage(
      "multimodal", ("vision", "llm_attention"), 6_000, tasks=("understanding",),
      vision_ffn_from_text=True,
      optimizer=dict(ADAMW, lr=5e-5, schedule="cosine", weight_decay=0.05),
      data=dict(pretokenized_dir=pretokenized_dir, max_tiles=max_tiles,
                use_thumbnail=thumbnail))
  config.train.eval_sets = ("understanding",)
  config.data.pretokenized_dir = pretokenized_dir
  config.data.max_tiles, config.data.use_thumbnail = max_tiles, thumbnail
  return config


def get_config():
  base = experiment.load_sibling(__file__, "qwen2_0_5b")
  return base.tpu_target(understanding_stage(
      base.get_config(), "data/pretokenized/ablation_256px_7tiles", 7, True),
      grad_accum_steps=1)
