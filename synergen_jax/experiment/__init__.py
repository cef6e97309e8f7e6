"""The experiment config: its fields and defaults, resolution into typed dataclasses,
and validation.

An experiment file (`experiments/*.py`) returns a ConfigDict with these fields:

  seed                 int
  model                model sizes (`configs/models.py`; checked by ModelConfig)
  mesh.shape           (data, fsdp, tensor); one entry may be -1
  tokenizer            SentencePiece model path
  data                 `data_pipelines.config.default_data_config()` (+ overrides)
  text_data            the text-only corpus of LLM pretraining (`default_text_data_config`)
  init_params          params checkpoint (param_checkpoint) the first stage starts from
                       ("" = random initialisation; e.g. imported HF weights)
  stage_order          names of the stages to run, in order
  stages.<name>        one `default_stage_config()` each (partial: the rest defaults)
  train                loop settings shared by all stages (`default_train_config`)
  vq_tokenizer         VQ tokenizer workdir (`train_vq` output or an Emu3 import) that
                       encodes images for inference and decodes generated codes
  eval                 what `synergen_jax.evaluate` measures (`default_eval_config`)
  demo                 (optional) settings of the demo main job (`synergen_jax.demo`)

Every string may contain `{workdir}`, replaced by the run's workdir. At the edge (the
CLIs, the demo, tests) a config is resolved once:

  experiment = resolve(config, workdir)        # typed, frozen; unknown fields are errors
  validate(experiment, jax.device_count())     # mesh, batch splits, datasets, tokenizer
  dataclasses.replace(experiment.train, ...)   # a changed copy, checked again

Modules: `defaults` (every default, once, or where it lives), `merged` (a raw config's
sections over their defaults), `resolved` (the dataclasses, a comment per field, and
`resolve`), `validation` (devices and files), `configdict` (`{workdir}`, merging, JSON),
`authoring` (helpers for experiment files), `errors`.
"""

from synergen_jax.experiment.authoring import load_sibling, make_stage, only_stage
from synergen_jax.experiment.configdict import from_json, resolve_workdir, to_json
from data_pipelines.config import DataConfig, TextData
from synergen_jax.experiment.defaults import (EVAL_SETS, MULTIMODAL_TASKS, STAGE_KINDS,
                                              base_config, default_demo_config,
                                              default_eval_config,
                                              default_optimizer_config,
                                              default_stage_config,
                                              default_text_data_config,
                                              default_train_config)
from synergen_jax.experiment.errors import ConfigError
from synergen_jax.experiment.resolved import (Demo, Eval, Experiment, Stage, Train,
                                              resolve)
from synergen_jax.experiment.validation import check_tokenizer, validate
from synergen_jax.state.optimizer import Optimizer
