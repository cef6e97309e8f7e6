"""Ablation A.1, without token folding: one 256 px tile, every code a token (1,024 image
tokens, the same LLM length as qwen2_0_5b_fold.py), understanding only.
  python -m synergen_jax.train --config=experiments/qwen2_0_5b_nofold.py --workdir=W
"""

from synergen_jax import experiment


def get_config():
  base = experiment.load_sibling(__file__, "qwen2_0_5b")
  fold = experiment.load_sibling(__file__, "qwen2_0_5b_fold")
  config = base.no_fold(base.get_config())
  return base.tpu_target(
      fold.understanding_stage(config, "data/pretokenized/ablation_256px_1tile", 1, False),
      grad_accum_steps=1)
