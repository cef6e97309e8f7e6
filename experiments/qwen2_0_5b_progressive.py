"""Ablation A.2, progressive alignment with MMoE: S.1 trains vision, S.2 vision + attention.

No folding, no dynamic resolution (256 px -> 1,024 tokens per image), 1/6 of the data.
  python -m synergen_jax.train --config=experiments/qwen2_0_5b_progressive.py --workdir=W
"""

from synergen_jax import experiment


def get_config():
  base = experiment.load_sibling(__file__, "qwen2_0_5b")
  config = base.no_fold(base.get_config())
  return base.tpu_target(
      base.progressive_stages(config, ("vision",), ("vision", "llm_attention")))
