"""The demo recipe trained longer: how far the CPU demo model gets with more steps.

  python -m synergen_jax.demo --workdir=runs/demo_long --config=experiments/demo_long.py
  python benchmarks/learning.py --base=runs/demo --out=runs/learning --variant=demo_long

Same data, tokenizers, VQ tokenizer and model as experiments/demo.py; the vision stages
run three times the demo's steps with the demo's data recipe (several questions about
one image per understanding example, text replay beside the vision tasks in the stages
that train the LLM). The learning measurements behind it are in benchmarks/learning.py
and the README ("What the demo reaches"); this recipe itself has not been measured to the
end yet (about 30 minutes of training on a quiet 2-core CPU).
"""

import os

from synergen_jax.training import experiment

STEPS = {"stage1": 600, "stage2": 1400, "sft": 1000}


def get_config():
  config = experiment.load_sibling(os.path.abspath(__file__), "demo").get_config()
  for stage, steps in STEPS.items():
    config.stages[stage].steps = steps
  return config
