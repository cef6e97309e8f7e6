"""Ablation A.2, full tuning: S.1 and S.2 train every parameter (same data and schedule as
qwen2_0_5b_progressive.py); compare text skill retention and T2I quality.
  python -m synergen_jax.train --config=experiments/qwen2_0_5b_full.py --workdir=W
"""

from synergen_jax import experiment

ALL = ("vision", "llm_attention", "llm")


def get_config():
  base = experiment.load_sibling(__file__, "qwen2_0_5b")
  return base.tpu_target(base.progressive_stages(base.no_fold(base.get_config()), ALL, ALL))
