"""An experiment resolved once, at the edge, into frozen typed dataclasses.

  experiment = resolve(config, workdir)   # checks every field, merges every default
  experiment.stage("s1").optimizer.lr     # typed, frozen, hashable where it is a cache key
  experiment.config                       # the resolved ConfigDict (W/config.json)

`resolve` is the only reader of a raw experiment ConfigDict's defaults and overrides
(through `merged`); the trainer, the data wiring, evaluation, inference and the TPU
tooling read the `Experiment`. The data and text-data sections stay ml_collections
(frozen) because their schema belongs to the data pipeline (`data_pipelines/config.py`);
a stage's are the experiment's with the stage's overrides applied.
"""

import dataclasses
from typing import Any

import ml_collections

from synergen_jax.experiment import defaults, merged
from synergen_jax.experiment.configdict import merge, resolve_workdir
from synergen_jax.experiment.validation import check_fields
from synergen_jax.model.sampling import SamplingConfig
from synergen_jax.model.config import ModelConfig

Frozen = ml_collections.FrozenConfigDict


def _typed(cls, cfg, **extra):
  """`cls` from the merged ConfigDict `cfg` (exactly its fields), values cast to the
  field types."""
  names = [f.name for f in dataclasses.fields(cls) if f.name not in extra]
  missing = sorted(set(names) - set(cfg.keys()))
  if missing:
    raise ValueError(f"{cls.__name__}: the defaults lack {missing}")
  casts = {"int": int, "float": float, "bool": bool, "str": str}
  values = {}
  for f in dataclasses.fields(cls):
    if f.name in extra:
      continue
    v = cfg[f.name]
    cast = casts.get(f.type if isinstance(f.type, str) else getattr(f.type, "__name__", ""))
    values[f.name] = cast(v) if cast is not None and v is not None else v
  return cls(**values, **extra)


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """AdamW + schedule of one stage (`defaults.default_optimizer_config`)."""

  lr: float
  schedule: str
  warmup_steps: int
  end_lr_frac: float
  b1: float
  b2: float
  eps: float
  weight_decay: float
  decay_norms_biases_embeddings: bool
  clip_norm: float
  group_lr_mult: tuple[tuple[str, float], ...]  # (parameter group, factor)

  @classmethod
  def from_config(cls, cfg=None) -> "Optimizer":
    """From an optimizer ConfigDict (over the defaults); None = the defaults."""
    cfg = merge(defaults.default_optimizer_config(), cfg or {}, "optimizer")
    mult = tuple(sorted((str(g), float(m)) for g, m in cfg.group_lr_mult.items()))
    return _typed(cls, cfg, group_lr_mult=mult)


@dataclasses.dataclass(frozen=True)
class Train:
  """Loop settings shared by all stages (`defaults.default_train_config`)."""

  log_every: int
  eval_every: int
  eval_batches: int
  eval_sets: tuple[str, ...]
  checkpoint_every: int
  keep_checkpoints: int | None
  async_checkpoints: bool
  peak_flops_per_device: float
  compilation_cache: bool
  input_streams: int
  xla_compiler_options: tuple[tuple[str, Any], ...]  # sorted (name, value) pairs

  @property
  def compiler_options(self) -> dict:
    """`xla_compiler_options` as the dict jax.jit takes."""
    return dict(self.xla_compiler_options)


@dataclasses.dataclass(frozen=True)
class Eval:
  """What `synergen_jax.evaluate` measures (`defaults.default_eval_config`)."""

  vqa_splits: tuple[str, ...]
  vqa_questions: int
  swapped_image_control: bool
  max_answer_tokens: int
  gen_split: str
  gen_prompts: int
  gen_samples: int
  cfg_scale: float
  gen_temperature: float
  gen_top_k: int
  gen_top_p: float
  text_batches: int
  batch_size: int
  grid_prompts: int
  timing_images: int
  seed: int

  @property
  def sampling(self) -> SamplingConfig:
    """How image codes are sampled."""
    return SamplingConfig(temperature=self.gen_temperature, top_k=self.gen_top_k,
                          top_p=self.gen_top_p)

  @property
  def guidance(self) -> float | None:
    """The CFG scale, None for no guidance."""
    return self.cfg_scale if self.cfg_scale > 0 else None


@dataclasses.dataclass(frozen=True)
class Stage:
  """One training stage, its overrides applied (`defaults.default_stage_config`)."""

  name: str
  kind: str                          # "multimodal" | "text"
  tasks: tuple[str, ...]             # the task batches its train step consumes
  init_from: str                     # "previous" | "scratch" | a params checkpoint
  vision_ffn_from_text: bool
  code_embed_from_vq: bool
  trainable: tuple[str, ...]         # parameter groups (model/param_groups.py)
  steps: int
  grad_accum_steps: int
  text_loss_weights: tuple[tuple[str, float], ...]  # (task, weight); () = pooled mean
  optimizer: Optimizer
  data: Frozen                       # config.data + this stage's overrides
  text_data: Frozen                  # config.text_data + this stage's overrides


@dataclasses.dataclass(frozen=True, eq=False)
class Experiment:
  """A whole experiment, resolved (module doc)."""

  seed: int
  model: ModelConfig
  mesh_shape: tuple[int, int, int]   # (data, fsdp, tensor); one entry may be -1
  tokenizer: str                     # SentencePiece model file
  vq_tokenizer: str                  # VQ tokenizer workdir ("" = none)
  init_params: str                   # params checkpoint of the first stage ("" = random)
  data: Frozen                       # the data pipeline's config (validation sets read it)
  text_data: Frozen                  # the text-only corpus (over its defaults)
  stages: tuple[Stage, ...]          # in stage_order
  train: Train
  eval: Eval
  demo: Frozen | None                # the demo job's settings (synergen_jax.demo)
  config: Frozen                     # the resolved ConfigDict, as W/config.json holds it

  @property
  def stage_order(self) -> tuple[str, ...]:
    return tuple(s.name for s in self.stages)

  def stage(self, name: str) -> Stage:
    for s in self.stages:
      if s.name == name:
        return s
    raise KeyError(f"stage {name!r} is not in stage_order {self.stage_order}")

  def replace_eval(self, **fields) -> "Experiment":
    """A copy with `eval` fields changed (checked like the config's)."""
    cfg = ml_collections.ConfigDict(self.config.to_dict())
    e = merged.eval_(cfg)
    e.update(fields)
    cfg.eval = e
    return resolve(cfg)


def _stage(config, name: str) -> Stage:
  st = merged.stage(config, name)
  return _typed(Stage, st, name=name, tasks=merged.stage_tasks(st),
                trainable=tuple(st.trainable),
                text_loss_weights=tuple((str(t), float(w)) for t, w in st.text_loss_weights),
                optimizer=Optimizer.from_config(st.optimizer),
                data=Frozen(merged.stage_data(config, name)),
                text_data=Frozen(merged.stage_text_data(config, name)))


def resolve(config: ml_collections.ConfigDict, workdir: str | None = None) -> Experiment:
  """The typed Experiment of a raw experiment ConfigDict (`{workdir}` replaced when a
  workdir is given). Every field is checked (`validation.check_fields`); devices and
  files are checked by `validation.validate`."""
  if workdir is not None:
    config = resolve_workdir(config, workdir)
  model = check_fields(config)
  train = merged.train(config)
  options = tuple(sorted(train.xla_compiler_options.items()))
  evals = merged.eval_(config)
  demo = config.get("demo", None)
  return Experiment(
      seed=int(config.seed) if "seed" in config else 0,
      model=model,
      mesh_shape=tuple(int(s) for s in config.mesh.shape),
      tokenizer=str(config.get("tokenizer", "")),
      vq_tokenizer=str(config.get("vq_tokenizer", "") or ""),
      init_params=str(config.get("init_params", "") or ""),
      data=Frozen(config.data),
      text_data=Frozen(merged.text_data(config)),
      stages=tuple(_stage(config, name) for name in config.stage_order),
      train=_typed(Train, train, eval_sets=tuple(train.eval_sets),
                   xla_compiler_options=options),
      eval=_typed(Eval, evals, vqa_splits=tuple(evals.vqa_splits)),
      demo=Frozen(demo) if demo is not None else None,
      config=Frozen(config))
