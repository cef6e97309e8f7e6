"""SynerGen-VL-2.4B, stage 'sft' alone (see synergen_vl_2_4b.py for the hyper-parameters).

For running the stages as separate jobs (e.g. on different pod allocations):
  python -m synergen_jax.train --config=experiments/synergen_vl_2_4b_sft.py --workdir=runs/sft
starts from {workdir}/../s2/s2/params (override with --config.stages.sft.init_from=DIR).
"""

from synergen_jax import experiment


def get_config():
  base = experiment.load_sibling(__file__, "synergen_vl_2_4b").get_config()
  return experiment.only_stage(base, "sft", "{workdir}/../s2/s2/params")
