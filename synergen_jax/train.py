"""Trains every stage an experiment lists, resuming from the workdir.

  python -m synergen_jax.train --config=experiments/X.py --workdir=W \
      [--config.stages.stage1.optimizer.lr=1e-4 ...]
      [--multihost [--coordinator_address=host:port --num_processes=N --process_id=I]]

Stages run in `config.stage_order`; a finished stage (W/<stage>/summary.json) is skipped,
an interrupted one resumes from its latest checkpoint. SIGTERM saves a checkpoint and
exits with status 143; rerunning the same command resumes. Writes W/config.json,
W/<stage>/..., W/report.md (see synergen_jax/workdir.py for the layout).
Multi-host: every process runs the same command with --multihost (JAX's distributed
runtime; on TPU pods it finds the coordinator itself), all writing to one workdir; each
process reads its own input streams (config.train.input_streams).
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from synergen_jax import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment file (experiments/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, report).")
_CHECK_CONFIG = flags.DEFINE_bool(
    "check_config", False, "Only check the experiment config (every schema check that needs "
    "no data, devices or compile) and exit: 0 = fine, 2 = an error naming the field.")
_MULTIHOST = flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize() first "
                                "(every process of the run, same command).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "--multihost: host:port of process 0 (auto on TPU pods).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None,
                                      "--multihost: number of processes (auto on TPU pods).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None,
                                   "--multihost: this process's index (auto on TPU pods).")


@cli.command
def main(argv):
  del argv
  from synergen_jax import experiment, sharding  # keeps --help fast (no JAX)
  if _CHECK_CONFIG.value:
    exp = experiment.resolve(_CONFIG.value)
    print(f"config OK: stages {exp.stage_order}, model d={exp.model.embed_dim} "
          f"x {exp.model.num_layers} layers", flush=True)
    return
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  if _MULTIHOST.value:
    sharding.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value,
                                    _PROCESS_ID.value)
  from synergen_jax.training import report, run as run_lib  # keeps --check_config fast
  out = run_lib.run_experiment(_CONFIG.value, _WORKDIR.value)
  print(report.markdown(out))


def run():
  cli.run(main, required=("config",))


if __name__ == "__main__":
  run()
