"""Parameter and optimizer-state memory of every stage of an experiment, from abstract
shapes only (nothing is allocated):

  python -m synergen_jax.training.memory --config=experiments/synergen_vl_2_4b.py

A frozen group has no optimizer state (freezing.py), so stage 1 (vision only) holds Adam
moments for far fewer parameters than instruction tuning (everything).
"""

from ml_collections import config_flags

from synergen_jax import cli
from synergen_jax import experiment
from synergen_jax.state import train_state as state

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment file.")


def stage_memory(config) -> list[dict]:
  if not config.stage_order:  # a base experiment that others build stages on
    return []
  exp = experiment.resolve(config)
  rows = []
  for st in exp.stages:
    m = state.opt_state_bytes_for(exp.model, st.trainable, st.optimizer)
    rows.append(dict(stage=st.name, trainable=st.trainable, **m))
  return rows


def format_rows(rows: list[dict]) -> str:
  gib = 2.0 ** 30
  lines = ["| stage | trains | trainable params | frozen params | params GiB (f32) | "
           "optimizer state GiB |", "|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['stage']} | {'+'.join(r['trainable'])} | {r['trainable_params']:,d} | "
                 f"{r['frozen_params']:,d} | {r['param_bytes'] / gib:.2f} | "
                 f"{r['opt_state_bytes'] / gib:.2f} |")
  return "\n".join(lines)


@cli.command
def main(argv):
  del argv
  print(format_rows(stage_memory(_CONFIG.value)))


def run():
  cli.run(main, required=("config",))


if __name__ == "__main__":
  run()
