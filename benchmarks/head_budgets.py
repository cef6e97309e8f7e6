"""Measures the text / image targets per row of a stage's train batches against the
model's head budgets (`model.max_text_targets`, `model.max_gen_patches`).

  python benchmarks/head_budgets.py --workdir=runs/demo [--stage=stage2] [--batches=50]
  python benchmarks/head_budgets.py --config=experiments/X.py --workdir=W ...

Reads the experiment of a training workdir (W/config.json; or --config resolved with
--workdir), builds the stage's train iterator exactly as the trainer does (packing,
tiling, its data files) and prints one JSON line per task and target kind: rows, mean /
p50 / p99 / max targets per row, the mean as a fraction of the row, the budget, rows
over it and targets it would drop, the budget's use (mean / budget) and a suggested
budget (the max seen, rounded up to 128). Size `max_gen_patches` and `max_text_targets`
from these on the real data: a budget above the max runs a head on positions that are
never targets, one below drops (and logs) targets.
"""

import json

import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment file (default: "
                                          "the workdir's config.json).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir (data paths).", required=True)
_STAGE = flags.DEFINE_string("stage", "", "Stage (default: the last multimodal stage).")
_BATCHES = flags.DEFINE_integer("batches", 20, "Train batches to measure.")


def main(argv):
  del argv
  from synergen_jax import experiment, sharding, workdir
  from synergen_jax.training import data as data_lib
  from synergen_jax.training import head_budgets

  if _CONFIG.value is not None:
    exp = experiment.resolve(_CONFIG.value, _WORKDIR.value)
  else:
    exp = workdir.read_experiment(_WORKDIR.value)
  multimodal = [s.name for s in exp.stages if s.kind == "multimodal"]
  name = _STAGE.value or multimodal[-1]
  stage = exp.stage(name)
  tok = workdir.load_tokenizer(exp)
  mesh = sharding.make_mesh((1, -1, 1))
  it = data_lib.train_iterator(exp, stage, tok, mesh)
  rows = {}
  for _ in range(_BATCHES.value):
    for task, batch in next(it).items():
      if task == "text":
        continue
      counts = head_budgets.row_targets(batch)
      length = batch["segment_ids"].shape[1]
      for kind, x in counts.items():
        rows.setdefault((task, kind, length), []).append(x)
  if hasattr(it, "close"):
    it.close()
  budgets = {"text": exp.model.max_text_targets,  # the stage's own image budget, if set
             "image": stage.max_gen_patches or exp.model.max_gen_patches}
  for (task, kind, length), xs in sorted(rows.items()):
    if kind == "tokens" or (task == "understanding" and kind == "image"):
      continue  # understanding rows have no image targets
    s = head_budgets.summarize(np.concatenate(xs), budgets[kind], length)
    tokens = float(np.concatenate(rows[(task, "tokens", length)]).mean())
    print(json.dumps({"stage": name, "task": task, "targets": kind, "row_length": length,
                      "tokens_per_row": tokens, **s}), flush=True)


if __name__ == "__main__":
  app.run(main)
