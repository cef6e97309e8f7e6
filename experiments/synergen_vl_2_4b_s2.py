"""SynerGen-VL-2.4B, stage 's2' alone (see synergen_vl_2_4b.py for the hyper-parameters).

For running the stages as separate jobs (e.g. on different pod allocations):
  python -m synergen_jax.train --config=experiments/synergen_vl_2_4b_s2.py --workdir=runs/s2
starts from {workdir}/../s1/s1/params (override with --config.stages.s2.init_from=DIR).
"""

from synergen_jax import experiment


def get_config():
  base = experiment.load_sibling(__file__, "synergen_vl_2_4b").get_config()
  return experiment.only_stage(base, "s2", "{workdir}/../s1/s1/params")
