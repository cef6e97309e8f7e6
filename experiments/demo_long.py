"""The demo recipe trained longer: how far the CPU demo model gets with more steps.

  python -m synergen_jax.demo --workdir=runs/demo_long --config=experiments/demo_long.py
  python benchmarks/learning.py --base=runs/demo --out=runs/learning --variant=demo_long

Same data, tokenizers, VQ tokenizer and model as experiments/demo.py; the vision stages
run three times the demo's steps with the demo's data recipe (several questions about
one image per understanding example, text replay beside the vision tasks in the stages
that train the LLM). The learning measurements behind it are in benchmarks/learning.py
and the README ("What the demo reaches").

Measured (benchmarks/learning.py --variant=demo_long from a clean-clone demo's text stage,
2-core CPU, 39 min of training, partly beside other jobs): VQA 0.455 / 0.482 / 0.422
(val. / test / compositional; majority 0.318), asked about another image 0.343 with 55%
of the answers unchanged, colour 0.45, count 0.70; GenEval-style colours / single object /
overall 0.70 / 0.20 / 0.19 (prompt-blind floor 0.13 overall); text perplexity 0.87x the
text-pretrained LLM's. Issue 15's VQA and generation targets are not reached yet.
"""

import os

from synergen_jax import experiment

STEPS = {"stage1": 600, "stage2": 1400, "sft": 1000}


def get_config():
  config = experiment.load_sibling(os.path.abspath(__file__), "demo").get_config()
  for stage, steps in STEPS.items():
    config.stages[stage].steps = steps
  return config
