"""The experiment config: its schema, defaults, per-stage resolution and validation.

An experiment file (`experiments/*.py`) returns a ConfigDict with these fields:

  seed                 int
  model                model sizes (`configs/models.py`; checked by ModelConfig)
  mesh.shape           (data, fsdp, tensor); one entry may be -1
  tokenizer            SentencePiece model path
  data                 `data_pipelines.config.default_data_config()` (+ overrides)
  text_data            the text-only corpus of LLM pretraining (`default_text_data_config`)
  init_params          params checkpoint (params_io) the first stage starts from
                       ("" = random initialisation; e.g. imported HF weights)
  stage_order          names of the stages to run, in order
  stages.<name>        one `default_stage_config()` each
  train                loop settings shared by all stages (`default_train_config`)
  vq_tokenizer         VQ tokenizer workdir (`train_vq` output or an Emu3 import) that
                       encodes images for inference and decodes generated codes
  eval                 what `synergen_jax.evaluate` measures (`evaluation/config.py`)
  demo                 (optional) settings of the demo main job (`synergen_jax.demo`)

Every string may contain `{workdir}`, replaced by the run's workdir (`resolve_workdir`).
`validate(config, ...)` rejects unknown fields, and checks mesh, fold, batch sizes and
that the datasets exist, before anything is compiled; messages name the field.
"""

import math
import os
from typing import Any

import ml_collections

from data_pipelines import config as data_config_lib
from synergen_jax.evaluation import config as eval_config_lib
from synergen_jax.model.config import ModelConfig
from synergen_jax.model.param_groups import GROUPS

STAGE_KINDS = ("multimodal", "text")
SCHEDULES = ("constant", "cosine")
EVAL_SETS = ("understanding", "generation", "text")
MULTIMODAL_TASKS = ("understanding", "generation")
TOP_LEVEL = ("seed", "model", "mesh", "tokenizer", "vq_tokenizer", "data", "text_data",
             "init_params", "stage_order", "stages", "train", "eval", "demo")


def default_optimizer_config() -> ml_collections.ConfigDict:
  """AdamW + warm-up + constant/cosine + global-norm clipping (METHOD.md section 8)."""
  return ml_collections.ConfigDict(dict(
      lr=1e-4,                  # peak learning rate
      schedule="cosine",        # after warm-up: "constant" or "cosine" (to end_lr_frac * lr)
      warmup_steps=200,         # linear warm-up from 0
      end_lr_frac=0.0,          # cosine end value as a fraction of lr
      b1=0.9, b2=0.95, eps=1e-8,
      weight_decay=0.05,
      decay_norms_biases_embeddings=False,  # False: no decay on norms, biases, embeddings
      clip_norm=1.0,            # global gradient-norm clipping (0 = off)
      # learning-rate factor per parameter group (model/param_groups.py); 1.0 = lr
      group_lr_mult=ml_collections.ConfigDict({g: 1.0 for g in GROUPS}),
  ))


def default_stage_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      kind="multimodal",        # "multimodal" (understanding + generation) | "text"
      tasks=(),                 # multimodal: train these tasks (() = understanding +
                                # generation); "text" adds text replay (text_data)
      init_from="previous",     # "previous" | "scratch" | a params checkpoint directory
      vision_ffn_from_text=False,  # copy each layer's text FFN into its vision FFN first
      code_embed_from_vq=False,  # start the VQ-code tables from the VQ codebook (config.
                                 # vq_tokenizer; training/vq_code_init.py)
      trainable=tuple(GROUPS),  # parameter groups trained (model/param_groups.py)
      steps=100,
      grad_accum_steps=1,       # micro-batches per step (exact: losses are sums)
      optimizer=default_optimizer_config(),
      data=ml_collections.ConfigDict(),       # overrides of config.data for this stage
      text_data=ml_collections.ConfigDict(),  # overrides of config.text_data
  ))


def default_text_data_config() -> ml_collections.ConfigDict:
  """Text-only LLM pretraining data (stands in for the pretrained LLM in the demo)."""
  return ml_collections.ConfigDict(dict(
      tfds_name="synergen_text",  # TFDS text dataset with a `text` feature ("" = none)
      data_dir="data/tfds",
      train_split="train",
      eval_split="test",
      scene_text=True,          # add captions and chat QA of data.pretokenized_dir records
      batch_size=8,
      seq_len=256,
      packing_bins=0,           # 0 = the per-process batch size
      seed=0,
      prefetch_buffer=2,
  ))


def default_train_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      log_every=10,
      eval_every=0,             # periodic validation every N steps (0 = end of stage only)
      eval_batches=4,           # batches per validation set
      eval_sets=EVAL_SETS,      # validation sets evaluated at the end of every stage
      checkpoint_every=100,
      keep_checkpoints=2,
      async_checkpoints=True,
      peak_flops_per_device=0.0,  # 0 = from the device kind (CPU: measured matmul peak)
      compilation_cache=True,   # persistent XLA cache in {workdir}/jax_cache
      input_streams=0,          # input streams per global batch (0: one per process); the
                                # data order depends on it, not on the process count
      xla_compiler_options=ml_collections.ConfigDict(),  # passed to jax.jit (train + eval)
  ))


def base_config(model: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """An experiment with every default; experiment files fill in the rest."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.model = model
  c.mesh = ml_collections.ConfigDict(dict(shape=(1, -1, 1)))
  c.tokenizer = "data/tokenizer/synergen.model"
  c.vq_tokenizer = ""
  c.data = data_config_lib.default_data_config()
  c.data.fold = tuple(model.fold)
  c.text_data = default_text_data_config()
  c.init_params = ""
  c.stage_order = ()
  c.stages = ml_collections.ConfigDict()
  c.train = default_train_config()
  c.eval = eval_config_lib.default_eval_config()
  return c


class ConfigError(ValueError):
  """A bad experiment config; the message names the field and what was expected."""


# ---- resolution ------------------------------------------------------------------------
def resolve_workdir(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
  """A copy with `{workdir}` replaced in every string field."""
  workdir = os.path.abspath(workdir)

  def sub(node):
    out = {}
    for k, v in node.items():
      if isinstance(v, ml_collections.ConfigDict):
        out[k] = sub(v)
      elif isinstance(v, str):
        out[k] = v.replace("{workdir}", workdir)
      else:
        out[k] = v
    return out

  return ml_collections.ConfigDict(sub(config))


def _merge(base: ml_collections.ConfigDict, over: ml_collections.ConfigDict, where: str,
           free: tuple[str, ...] = ()):
  """Recursively sets `over`'s fields into a copy of `base` (unknown fields are errors;
  fields named in `free` are taken whole)."""
  out = ml_collections.ConfigDict(base.to_dict())
  for k, v in over.items():
    if k not in out:
      raise ConfigError(f"{where}.{k}: unknown field; known: {sorted(out.keys())}")
    if (k not in free and isinstance(v, ml_collections.ConfigDict)
        and isinstance(out[k], ml_collections.ConfigDict)):
      out[k] = _merge(out[k], v, f"{where}.{k}")
    else:
      out[k] = v
  return out


def stage_data_config(config, name: str) -> ml_collections.ConfigDict:
  """config.data with stage `name`'s data overrides applied."""
  return _merge(config.data, config.stages[name].data, f"config.stages.{name}.data")


def stage_text_config(config, name: str) -> ml_collections.ConfigDict:
  """config.text_data with stage `name`'s text_data overrides applied."""
  return _merge(config.text_data, config.stages[name].text_data,
                f"config.stages.{name}.text_data")


def stage_config(config, name: str) -> ml_collections.ConfigDict:
  """A stage's fields over the stage defaults (so partial stage configs are allowed)."""
  return _merge(default_stage_config(), config.stages[name], f"config.stages.{name}",
                free=("data", "text_data"))


def train_config(config) -> ml_collections.ConfigDict:
  """config.train over the defaults."""
  return _merge(default_train_config(), config.get("train", ml_collections.ConfigDict()),
                "config.train", free=("xla_compiler_options",))


def stage_tasks(config, name: str) -> tuple[str, ...]:
  """The task batches a stage's train step consumes."""
  st = config.stages[name]
  if st.get("kind", "multimodal") == "text":
    return ("text",)
  return tuple(st.get("tasks", ())) or MULTIMODAL_TASKS


# ---- validation ------------------------------------------------------------------------
def _check_known(node, reference, where: str, free: tuple[str, ...] = ()) -> None:
  """Every field of `node` exists in `reference` (recursively; `free` subtrees skipped)."""
  for k, v in node.items():
    if k not in reference:
      raise ConfigError(f"{where}.{k}: unknown field; known: {sorted(reference.keys())}")
    if k in free:
      continue
    if isinstance(v, ml_collections.ConfigDict) and isinstance(reference[k],
                                                               ml_collections.ConfigDict):
      _check_known(v, reference[k], f"{where}.{k}")


def _need(cond: bool, field: str, message: str) -> None:
  if not cond:
    raise ConfigError(f"config.{field}: {message}")


def check_fields(config) -> ModelConfig:
  """Schema checks (no files, no devices). Returns the validated ModelConfig."""
  for k in config.keys():
    _need(k in TOP_LEVEL, k, f"unknown field; known: {sorted(TOP_LEVEL)}")
  for k in ("model", "mesh", "data", "stages", "stage_order"):
    _need(k in config, k, "missing")
  try:
    model = ModelConfig.from_config_dict(config.model)
  except (ValueError, TypeError) as e:
    raise ConfigError(f"config.model: {e}") from None
  _check_known(config.mesh, ml_collections.ConfigDict(dict(shape=(1, 1, 1))), "config.mesh")
  _need(len(config.mesh.shape) == 3, "mesh.shape",
        f"{tuple(config.mesh.shape)}: expected (data, fsdp, tensor)")
  data_ref = data_config_lib.default_data_config()
  _check_known(config.data, data_ref, "config.data")
  _check_known(config.get("text_data", ml_collections.ConfigDict()),
               default_text_data_config(), "config.text_data")
  _check_known(config.get("train", ml_collections.ConfigDict()), default_train_config(),
               "config.train", free=("xla_compiler_options",))
  try:
    eval_config_lib.eval_config(config)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  train = train_config(config)
  _need(train.input_streams >= 0, "train.input_streams",
        f"{train.input_streams}: expected >= 0 (0: one input stream per process)")
  for s in train.eval_sets:
    _need(s in EVAL_SETS, "train.eval_sets", f"{s!r} is not one of {EVAL_SETS}")
  _need(len(config.stage_order) > 0, "stage_order", "no stages to run")
  for name in config.stage_order:
    _need(name in config.stages, "stage_order", f"stage {name!r} is not in config.stages "
          f"({sorted(config.stages.keys())})")
  for name in config.stages.keys():
    where = f"config.stages.{name}"
    _check_known(config.stages[name], default_stage_config(), where,
                 free=("data", "text_data"))
    st = stage_config(config, name)
    _check_known(st.data, data_ref, f"{where}.data")
    _check_known(st.text_data, default_text_data_config(), f"{where}.text_data")
    _check_known(st.optimizer, default_optimizer_config(), f"{where}.optimizer")
    f = f"stages.{name}"
    _need(st.kind in STAGE_KINDS, f"{f}.kind", f"{st.kind!r} is not one of {STAGE_KINDS}")
    _need(st.steps >= 1, f"{f}.steps", f"{st.steps}: expected >= 1")
    _need(all(t in MULTIMODAL_TASKS + ("text",) for t in st.tasks)
          and len(set(st.tasks)) == len(st.tasks)
          and (not st.tasks or any(t in MULTIMODAL_TASKS for t in st.tasks)),
          f"{f}.tasks", f"{tuple(st.tasks)}: expected a subset of "
          f"{MULTIMODAL_TASKS + ('text',)} with at least one of {MULTIMODAL_TASKS}")
    _need(st.grad_accum_steps >= 1, f"{f}.grad_accum_steps", "expected >= 1")
    _need(len(st.trainable) > 0 and all(g in GROUPS for g in st.trainable),
          f"{f}.trainable", f"{tuple(st.trainable)}: expected a non-empty subset of {GROUPS}")
    o = st.optimizer
    _need(o.schedule in SCHEDULES, f"{f}.optimizer.schedule",
          f"{o.schedule!r} is not one of {SCHEDULES}")
    _need(o.lr > 0, f"{f}.optimizer.lr", f"{o.lr}: expected > 0")
    _need(o.warmup_steps >= 0, f"{f}.optimizer.warmup_steps", "expected >= 0")
    for g, m in o.group_lr_mult.items():
      _need(m >= 0, f"{f}.optimizer.group_lr_mult.{g}", f"{m}: expected >= 0")
    if st.kind == "multimodal":
      d = stage_data_config(config, name)
      try:
        data_config_lib.validate(d)
      except ValueError as e:
        raise ConfigError(f"{where}.data: {e}") from None
      _need(tuple(d.fold) == tuple(model.fold), f"{f}.data.fold",
            f"{tuple(d.fold)} differs from model.fold {tuple(model.fold)}")
      grid = data_config_lib.code_grid(d)
      _need(tuple(grid) == tuple(model.tile_grid), f"{f}.data.image_size",
            f"image_size {d.image_size} / vq_downsample {d.vq_downsample} gives a {grid} "
            f"code grid; model.tile_grid is {tuple(model.tile_grid)}")
  return model


def _dataset_checks(config, name: str, train_cfg) -> None:
  st = stage_config(config, name)
  f = f"stages.{name}"
  if st.kind == "multimodal":
    d = stage_data_config(config, name)
    _need_shards(d.pretokenized_dir, "train", f"{f}.data.pretokenized_dir")
  else:
    t = stage_text_config(config, name)
    _need_text(t, config.data.pretokenized_dir, t.train_split, f"{f}.text_data")
  for s in train_cfg.eval_sets:
    if s == "text":
      t = config.text_data
      _need_text(t, config.data.pretokenized_dir, t.eval_split, "text_data")
    else:
      _need_shards(config.data.pretokenized_dir, "validation", "data.pretokenized_dir")


def _need_shards(directory: str, split: str, field: str) -> None:
  from data_pipelines import pretokenize
  try:
    pretokenize.shard_files(directory, split)
  except FileNotFoundError as e:
    raise ConfigError(f"config.{field}: missing dataset: {e}") from None


def _need_text(t, pretokenized_dir: str, split: str, field: str) -> None:
  if t.tfds_name:
    path = os.path.join(os.path.expanduser(t.data_dir), t.tfds_name.split("/")[0])
    _need(os.path.isdir(path), f"{field}.data_dir",
          f"missing dataset: TFDS {t.tfds_name!r} not found in {t.data_dir!r} (build it "
          "with python -m data_pipelines.build)")
  if t.scene_text:
    _need_shards(pretokenized_dir, "train" if split == t.train_split else "validation",
                 "data.pretokenized_dir")


def validate(config, num_devices: int, check_files: bool = True) -> ModelConfig:
  """All checks that can run before compiling; raises ConfigError naming the field."""
  model = check_fields(config)
  shape = [int(s) for s in config.mesh.shape]
  known = math.prod(s for s in shape if s != -1)
  _need(shape.count(-1) <= 1 and all(s > 0 or s == -1 for s in shape), "mesh.shape",
        f"{tuple(shape)}: sizes must be positive with at most one -1")
  _need(num_devices % known == 0 if -1 in shape else known == num_devices, "mesh.shape",
        f"{tuple(shape)} does not divide the {num_devices} devices")
  if -1 in shape:
    shape[shape.index(-1)] = num_devices // known
  batch_parallel = shape[0] * shape[1]
  train = train_config(config)
  for name in config.stage_order:
    st = stage_config(config, name)
    f = f"stages.{name}"
    if st.kind == "multimodal":
      d = stage_data_config(config, name)
      sizes = {f"{f}.data.{t}.batch_size": d[t].batch_size
               for t in ("understanding", "generation")}
    else:
      sizes = {f"{f}.text_data.batch_size": stage_text_config(config, name).batch_size}
    for field, bs in sizes.items():
      _need(bs % batch_parallel == 0, field,
            f"{bs} is not divisible by the mesh's data x fsdp = {batch_parallel} devices")
      _need((bs // batch_parallel) % st.grad_accum_steps == 0, field,
            f"{bs} rows over {batch_parallel} devices do not split into "
            f"{f}.grad_accum_steps = {st.grad_accum_steps} micro-batches")
      _need(train.input_streams == 0 or bs % train.input_streams == 0, field,
            f"{bs} rows do not split into train.input_streams = {train.input_streams}")
    if check_files:
      _dataset_checks(config, name, train)
  if check_files:
    _need(os.path.isfile(os.path.expanduser(config.tokenizer)), "tokenizer",
          f"missing tokenizer model file {config.tokenizer!r}")
  return model


def check_tokenizer(model: ModelConfig, tokenizer: Any) -> None:
  """The tokenizer's id layout matches the model's embedding tables."""
  _need(tokenizer.text_vocab_size == model.vocab_size, "model.vocab_size",
        f"{model.vocab_size} but the tokenizer {tokenizer.name} has text vocabulary "
        f"{tokenizer.text_vocab_size}")
  _need(tokenizer.vocab_size - tokenizer.text_vocab_size == model.num_new_tokens,
        "model.num_new_tokens",
        f"{model.num_new_tokens} but the tokenizer defines "
        f"{tokenizer.vocab_size - tokenizer.text_vocab_size} new tokens")


def to_json(config) -> dict:
  """The resolved config as plain JSON types (tuples become lists)."""
  def convert(x):
    if isinstance(x, dict):
      return {k: convert(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
      return [convert(v) for v in x]
    return x
  return convert(config.to_dict() if hasattr(config, "to_dict") else config)


def from_json(d: dict) -> ml_collections.ConfigDict:
  """Inverse of `to_json` (lists back to tuples)."""
  def convert(x):
    if isinstance(x, dict):
      return {k: convert(v) for k, v in x.items()}
    if isinstance(x, list):
      return tuple(convert(v) for v in x)
    return x
  return ml_collections.ConfigDict(convert(d))


# ---- helpers for experiment files -----------------------------------------------------
def make_stage(kind: str = "multimodal", trainable=GROUPS, steps: int = 100,
               optimizer: dict | None = None, **fields) -> ml_collections.ConfigDict:
  """A stage config over the defaults: `optimizer` updates the optimizer fields, other
  keyword arguments set stage fields (data / text_data overrides as dicts)."""
  s = default_stage_config()
  s.kind, s.trainable, s.steps = kind, tuple(trainable), int(steps)
  s.optimizer.update(optimizer or {})
  for k, v in fields.items():
    if k not in s:
      raise ValueError(f"stage field {k!r} unknown; known: {sorted(s.keys())}")
    s[k] = ml_collections.ConfigDict(v) if isinstance(v, dict) else v
  return s


def only_stage(config: ml_collections.ConfigDict, name: str,
               init_from: str) -> ml_collections.ConfigDict:
  """The experiment reduced to one stage that starts from `init_from` (a params
  checkpoint: another run's W/<stage>/params, or imported weights)."""
  c = ml_collections.ConfigDict(config.to_dict())
  c.stage_order = (name,)
  c.stages = ml_collections.ConfigDict({name: config.stages[name].to_dict()})
  c.stages[name].init_from = init_from
  return c


def load_sibling(this_file: str, name: str):
  """The experiment module `name`.py next to `this_file` (works from any directory)."""
  import importlib.util
  path = os.path.join(os.path.dirname(os.path.abspath(this_file)), name + ".py")
  spec = importlib.util.spec_from_file_location(f"_experiment_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
