"""Prints total and activated parameter counts of an experiment's model.

  python -m synergen_jax.count_params --config=experiments/synergen_vl_2_4b.py

Counts come from abstract shapes (`jax.eval_shape`), so no memory is allocated.
"Activated" is what one token runs through: a token uses one of its layer's two FFN
experts, so the vision experts are not counted twice.
"""

from ml_collections import config_flags

from synergen_jax import cli
from synergen_jax import model_init
from synergen_jax.model import ModelConfig
from synergen_jax.model.param_groups import count_by_group

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")


def parameter_counts(config: ModelConfig) -> dict[str, int]:
  # The trainer's own init trace (any attention kernel, any host).
  params = model_init.param_shapes(config)
  counts = count_by_group(params)
  total = counts["vision"] + counts["llm_attention"] + counts["llm"]
  return dict(counts, total=total, activated=total - counts["vision_ffn"])


def format_counts(counts: dict[str, int]) -> str:
  rows = [("total", counts["total"]), ("activated", counts["activated"]),
          ("  llm (incl. text FFNs)", counts["llm"]),
          ("  llm_attention", counts["llm_attention"]),
          ("  vision (incl. vision FFNs)", counts["vision"]),
          ("  of which vision FFN experts", counts["vision_ffn"])]
  return "\n".join(f"{name:<32s}{n:>16,d}  ({n / 1e9:.3f} B)" for name, n in rows)


@cli.command
def main(argv):
  del argv
  config = ModelConfig.from_config_dict(_CONFIG.value.model)
  print(format_counts(parameter_counts(config)))


def run():
  cli.run(main, required=("config",))


if __name__ == "__main__":
  run()
