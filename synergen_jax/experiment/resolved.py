"""An experiment resolved once, at the edge, into frozen typed dataclasses.

  experiment = resolve(config, workdir)   # checks every field, merges every default
  experiment.stage("s1").optimizer.lr     # typed, frozen, hashable where it is a cache key
  experiment.config                       # the ConfigDict it was resolved from (W/config.json)

`resolve` is the only reader of a raw experiment ConfigDict's defaults and overrides
(through `merged`); the trainer, the data wiring, evaluation, inference and the TPU
tooling read the `Experiment`. Every section is a frozen dataclass with a comment per
field: `Experiment`, `Stage`, `Train`, `Eval`, `Demo` here, `Optimizer`
(`state/optimizer.py`), `DataConfig` and `TextData` (`data_pipelines/config.py`, the
data pipeline's schema), `ModelConfig` (`model/config.py`). A stage's data and text data
are the experiment's with the stage's overrides applied. Values are checked when a
dataclass is made, so a change (`dataclasses.replace`) is checked too; errors name the
field (`config.stages.s1.data.cfg_dropout: ...`).
"""

import dataclasses
from typing import Any

import ml_collections

from data_pipelines import config as data_config
from synergen_jax.experiment import defaults, merged
from synergen_jax.experiment.configdict import check_known, resolve_workdir
from synergen_jax.model.config import ModelConfig
from synergen_jax.model.param_groups import GROUPS
from synergen_jax.model.sampling import SamplingConfig
from synergen_jax.state.optimizer import Optimizer
from synergen_jax.typed_config import ConfigError, Typed, convert, from_dict, need

Frozen = ml_collections.FrozenConfigDict
TASKS_KNOWN = defaults.MULTIMODAL_TASKS + ("text",)


@dataclasses.dataclass(frozen=True)
class Train(Typed):
  """Loop settings shared by all stages (`defaults.default_train_config`)."""

  # Train metrics logged every N steps.
  log_every: int
  # Periodic validation every N steps (0 = at the end of a stage only).
  eval_every: int
  # Batches per validation set.
  eval_batches: int
  # Validation sets evaluated at the end of every stage (defaults.EVAL_SETS).
  eval_sets: tuple[str, ...]
  # A checkpoint every N steps.
  checkpoint_every: int
  # Checkpoints kept per stage (None = all).
  keep_checkpoints: int | None
  # Write checkpoints in the background.
  async_checkpoints: bool
  # Peak FLOP/s of a device for MFU (0 = from the device kind; CPU: a measured matmul).
  peak_flops_per_device: float
  # Persistent XLA compilation cache in {workdir}/jax_cache.
  compilation_cache: bool
  # Input streams per global batch (0: one per process); the data order depends on it.
  input_streams: int
  # XLA options passed to jax.jit (train + eval), sorted (name, value) pairs.
  xla_compiler_options: tuple[tuple[str, Any], ...]

  def check(self):
    for f in ("log_every", "eval_batches", "checkpoint_every"):
      need(getattr(self, f) >= 1, f, f"{getattr(self, f)}: expected >= 1")
    need(self.eval_every >= 0, "eval_every", f"{self.eval_every}: expected >= 0 (0 = off)")
    need(self.keep_checkpoints is None or self.keep_checkpoints >= 1, "keep_checkpoints",
         f"{self.keep_checkpoints}: expected >= 1 or None (all)")
    need(self.input_streams >= 0, "input_streams",
         f"{self.input_streams}: expected >= 0 (0: one input stream per process)")
    for s in self.eval_sets:
      need(s in defaults.EVAL_SETS, "eval_sets", f"{s!r} is not one of {defaults.EVAL_SETS}")

  @property
  def compiler_options(self) -> dict:
    """`xla_compiler_options` as the dict jax.jit takes."""
    return dict(self.xla_compiler_options)


@dataclasses.dataclass(frozen=True)
class Eval(Typed):
  """What `synergen_jax.evaluate` measures (`defaults.default_eval_config`)."""

  # Scene-dataset splits scored by VQA exact match.
  vqa_splits: tuple[str, ...]
  # Questions per split (every question of the first records, in order; 0 = all).
  vqa_questions: int
  # Also ask every validation question about another image (`vqa/swapped_image/...`).
  swapped_image_control: bool
  # Decoding budget of an answer (stops earlier at `</s>`).
  max_answer_tokens: int
  # The split whose scene graphs give the generation prompts.
  gen_split: str
  # Prompts per GenEval category.
  gen_prompts: int
  # Images sampled per prompt.
  gen_samples: int
  # Classifier-free guidance scale (METHOD.md section 9; 0 = no CFG).
  cfg_scale: float
  # Sampling temperature of image codes.
  gen_temperature: float
  # Top-k of image codes (0 = off).
  gen_top_k: int
  # Top-p of image codes (1 = off).
  gen_top_p: float
  # Batches of the text-only split for perplexity / accuracy.
  text_batches: int
  # Rows per inference call (prompts are padded to it: one compile).
  batch_size: int
  # Prompts shown in the PNG grid (one row each, gen_samples columns).
  grid_prompts: int
  # Images generated to time folded vs no-fold generation (0 = skip).
  timing_images: int
  # Seed of sampling and of the swapped images.
  seed: int

  def check(self):
    for f in ("vqa_questions", "text_batches", "timing_images", "grid_prompts"):
      need(getattr(self, f) >= 0, f, f"{getattr(self, f)}: expected >= 0")
    for f in ("max_answer_tokens", "gen_prompts", "gen_samples", "batch_size"):
      need(getattr(self, f) >= 1, f, f"{getattr(self, f)}: expected >= 1")
    need(self.cfg_scale >= 0, "cfg_scale", f"{self.cfg_scale}: expected >= 0 (0 = no guidance)")
    need(len(self.vqa_splits) == len(set(self.vqa_splits)), "vqa_splits", "duplicate splits")
    for f, name in (("gen_temperature", "temperature"), ("gen_top_k", "top_k"),
                    ("gen_top_p", "top_p")):
      try:
        SamplingConfig(**{name: getattr(self, f)})
      except ValueError as e:
        raise ConfigError(f, str(e)) from None

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
class Stage(Typed):
  """One training stage, its overrides applied (`defaults.default_stage_config`)."""

  # Its name in stage_order (W/<name>/).
  name: str
  # "multimodal" (understanding + generation) | "text".
  kind: str
  # The task batches its train step consumes (derived: "text" for a text stage, else the
  # configured tasks or understanding + generation; "text" in a multimodal stage: replay).
  tasks: tuple[str, ...]
  # "previous" | "scratch" | a params checkpoint directory.
  init_from: str
  # Copy each layer's text FFN into its vision FFN first.
  vision_ffn_from_text: bool
  # Start the VQ-code tables from the VQ codebook (training/vq_code_init.py).
  code_embed_from_vq: bool
  # Parameter groups trained (model/param_groups.py).
  trainable: tuple[str, ...]
  # Optimizer steps.
  steps: int
  # Micro-batches per step (exact: losses are sums).
  grad_accum_steps: int
  # Per-row buffer of image targets for the unfolding head (0 = model.max_gen_patches);
  # benchmarks/head_budgets.py measures what a stage's rows hold.
  max_gen_patches: int
  # ((task, weight), ...): the text loss as the weighted mean of each task's own mean;
  # () = one mean over all tasks' text targets.
  text_loss_weights: tuple[tuple[str, float], ...]
  # Its AdamW + schedule.
  optimizer: Optimizer
  # config.data with this stage's overrides.
  data: data_config.DataConfig
  # config.text_data with this stage's overrides.
  text_data: data_config.TextData

  def check(self):
    need(self.kind in defaults.STAGE_KINDS, "kind",
         f"{self.kind!r} is not one of {defaults.STAGE_KINDS}")
    need(self.steps >= 1, "steps", f"{self.steps}: expected >= 1")
    need(self.grad_accum_steps >= 1, "grad_accum_steps",
         f"{self.grad_accum_steps}: expected >= 1")
    need(self.max_gen_patches >= 0, "max_gen_patches",
         f"{self.max_gen_patches}: expected >= 0 (0 = model.max_gen_patches)")
    need(bool(self.trainable) and all(g in GROUPS for g in self.trainable), "trainable",
         f"{self.trainable}: expected a non-empty subset of {GROUPS}")
    if self.kind == "text":
      need(self.tasks == ("text",), "tasks", f"{self.tasks}: a text stage trains ('text',)")
    else:
      need(_tasks_ok(self.tasks) and bool(self.tasks), "tasks",
           f"{self.tasks}: expected a subset of {TASKS_KNOWN} with at least one of "
           f"{defaults.MULTIMODAL_TASKS}")
    pairs = self.text_loss_weights
    need(all(w >= 0 for _, w in pairs)
         and (not pairs or (sorted(t for t, _ in pairs) == sorted(self.tasks)
                            and sum(w for _, w in pairs) > 0)),
         "text_loss_weights", f"{pairs!r}: expected () or one (task, weight >= 0) pair per "
         f"task of the stage {self.tasks}, weights not all 0")


def _tasks_ok(tasks) -> bool:
  return (all(t in TASKS_KNOWN for t in tasks) and len(set(tasks)) == len(tasks)
          and (not tasks or any(t in defaults.MULTIMODAL_TASKS for t in tasks)))


@dataclasses.dataclass(frozen=True)
class Demo(Typed):
  """The demo job's settings (`synergen_jax.demo`; `defaults.default_demo_config`)."""

  # Training scenes built.
  train_size: int
  # Scenes per evaluation split.
  eval_size: int
  # Scene image size (pixels).
  image_size: int
  # Text tokenizer vocabulary trained.
  vocab_size: int
  # Scene grid cell in pixels (objects sit one per cell; 0 = anywhere).
  cell: int
  # Objects per scene at most.
  max_objects: int
  # The VQ experiment file, next to the experiment file.
  vq_config: str
  # VQ tokenizer training steps.
  vq_steps: int
  # Images of the VQ's evaluation.
  vq_eval_images: int
  # The VQ trains on crops of this many pixels around an object (its `data.crop`; 0 =
  # whole images).
  vq_crop: int

  def check(self):
    for f in ("train_size", "eval_size", "image_size", "vocab_size", "max_objects",
              "vq_steps", "vq_eval_images"):
      need(getattr(self, f) >= 1, f, f"{getattr(self, f)}: expected >= 1")
    need(self.cell >= 0, "cell", f"{self.cell}: expected >= 0 (0 = anywhere)")
    need(self.vq_crop >= 0, "vq_crop", f"{self.vq_crop}: expected >= 0 (0 = whole images)")


@dataclasses.dataclass(frozen=True, eq=False)
class Experiment(Typed):
  """A whole experiment, resolved (module doc)."""

  # Seed of parameter initialisation.
  seed: int
  # The model's sizes.
  model: ModelConfig
  # (data, fsdp, tensor); one entry may be -1 (the rest of the devices).
  mesh_shape: tuple[int, int, int]
  # SentencePiece model file.
  tokenizer: str
  # VQ tokenizer workdir ("" = none).
  vq_tokenizer: str
  # Params checkpoint the first stage starts from ("" = random initialisation).
  init_params: str
  # The data pipeline's config (the validation sets read it).
  data: data_config.DataConfig
  # The text-only corpus.
  text_data: data_config.TextData
  # The stages, in stage_order.
  stages: tuple[Stage, ...]
  # Loop settings shared by all stages.
  train: Train
  # What `synergen_jax.evaluate` measures.
  eval: Eval
  # The demo job's settings (None: not a demo experiment).
  demo: Demo | None
  # The ConfigDict it was resolved from, `{workdir}` replaced: what W/config.json holds.
  config: Frozen

  @property
  def stage_order(self) -> tuple[str, ...]:
    return tuple(s.name for s in self.stages)

  def stage(self, name: str) -> Stage:
    for s in self.stages:
      if s.name == name:
        return s
    raise KeyError(f"stage {name!r} is not in stage_order {self.stage_order}")

  def replace_eval(self, **fields) -> "Experiment":
    """A copy with `eval` fields changed (checked like the config's; `config`, the
    file's, keeps its own)."""
    known = {f.name for f in dataclasses.fields(Eval)}
    for k in fields:
      need(k in known, f"config.eval.{k}", f"unknown field; known: {sorted(known)}")
    try:
      return dataclasses.replace(self, eval=dataclasses.replace(self.eval, **fields))
    except ConfigError as e:
      raise ConfigError(f"config.eval.{e.field}", e.message) from None


def _data(config, over: list, where: str, model: ModelConfig) -> data_config.DataConfig:
  """The DataConfig of config.data with the overrides `over` applied; a `fold` (written
  by experiment files and config.json of old) must be the model's: it is not a data
  field, the pipeline folds with model.fold."""
  d = config.data.to_dict()
  for o in over:
    d = data_config.overlay(d, o)
  fold = d.pop("fold", None)
  need(fold is None or tuple(fold) == tuple(model.fold), f"{where}.fold",
       f"{tuple(fold or ())} differs from model.fold {tuple(model.fold)} (the data is "
       "folded with model.fold; leave data.fold unset)")
  return data_config.resolve(d, where)


def _stage(config, name: str, model: ModelConfig) -> Stage:
  where = f"config.stages.{name}"
  st = merged.stage(config, name)
  need(_tasks_ok(tuple(st.tasks)), f"{where}.tasks", f"{tuple(st.tasks)}: expected a "
       f"subset of {TASKS_KNOWN} with at least one of {defaults.MULTIMODAL_TASKS}")
  fields = {k: v for k, v in st.to_dict().items()
            if k not in ("tasks", "optimizer", "data", "text_data")}
  text_data = config.get("text_data", None) or {}
  stage = from_dict(
      Stage, fields, where, name=name, tasks=merged.stage_tasks(st),
      optimizer=Optimizer.from_config(st.optimizer, f"{where}.optimizer"),
      data=_data(config, [st.data], f"{where}.data", model),
      text_data=data_config.resolve_text(data_config.overlay(
          _as_dict(text_data), st.text_data), f"{where}.text_data"))
  if stage.kind == "multimodal":
    need(stage.data.code_grid == tuple(model.tile_grid), f"{where}.data.image_size",
         f"image_size {stage.data.image_size} / vq_downsample {stage.data.vq_downsample} "
         f"gives a {stage.data.code_grid} code grid; model.tile_grid is "
         f"{tuple(model.tile_grid)}")
  return stage


def _as_dict(cfg) -> dict:
  return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


def resolve(config: ml_collections.ConfigDict, workdir: str | None = None) -> Experiment:
  """The typed Experiment of a raw experiment ConfigDict (`{workdir}` replaced when a
  workdir is given). Every field is checked, errors naming it; devices and files are
  checked by `validation.validate`."""
  if workdir is not None:
    config = resolve_workdir(config, workdir)
  for k in config.keys():
    need(k in defaults.TOP_LEVEL, f"config.{k}",
         f"unknown field; known: {sorted(defaults.TOP_LEVEL)}")
  for k in ("model", "mesh", "data", "stages", "stage_order"):
    need(k in config, f"config.{k}", "missing")
  try:
    model = ModelConfig.from_config_dict(config.model)
  except (ValueError, TypeError) as e:
    raise ConfigError("config.model", str(e)) from None
  check_known(config.mesh, ml_collections.ConfigDict(dict(shape=(1, 1, 1))), "config.mesh")
  need(len(config.mesh.shape) == 3, "config.mesh.shape",
       f"{tuple(config.mesh.shape)}: expected (data, fsdp, tensor)")
  need(len(config.stage_order) > 0, "config.stage_order", "no stages to run")
  for name in config.stage_order:
    need(name in config.stages, "config.stage_order",
         f"stage {name!r} is not in config.stages ({sorted(config.stages.keys())})")
  data = _data(config, [], "config.data", model)
  text_data = data_config.resolve_text(config.get("text_data", None), "config.text_data")
  stages = {name: _stage(config, name, model) for name in config.stages.keys()}
  train = merged.train(config)
  options = tuple(sorted(train.xla_compiler_options.items()))
  demo = config.get("demo", None)
  return Experiment(
      seed=convert(config.get("seed", 0), int, "config.seed"),
      model=model,
      mesh_shape=convert(config.mesh.shape, tuple[int, int, int], "config.mesh.shape"),
      tokenizer=convert(config.get("tokenizer", ""), str, "config.tokenizer"),
      vq_tokenizer=convert(config.get("vq_tokenizer", "") or "", str, "config.vq_tokenizer"),
      init_params=convert(config.get("init_params", "") or "", str, "config.init_params"),
      data=data,
      text_data=text_data,
      stages=tuple(stages[name] for name in config.stage_order),
      train=from_dict(Train, {k: v for k, v in train.to_dict().items()
                              if k != "xla_compiler_options"},
                      "config.train", xla_compiler_options=options),
      eval=from_dict(Eval, merged.eval_(config), "config.eval"),
      demo=(from_dict(Demo, data_config.overlay(defaults.default_demo_config().to_dict(),
                                                demo), "config.demo")
            if demo is not None else None),
      config=Frozen(config))
