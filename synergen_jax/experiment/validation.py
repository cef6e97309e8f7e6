"""Checks of an experiment before anything is compiled; every error names the field.

  check_fields(config) -> ModelConfig     the raw ConfigDict: unknown fields, values
  validate(experiment, num_devices)      a resolved Experiment against the devices (mesh,
                                          batch splits) and the files it reads
  check_tokenizer(model, tokenizer)      the tokenizer's id layout against the model
"""

import os
from typing import Any

import ml_collections

from data_pipelines import config as data_config_lib
from data_pipelines.pipeline import records
from synergen_jax import sharding
from synergen_jax.experiment import defaults, merged
from synergen_jax.experiment.configdict import check_known
from synergen_jax.experiment.errors import ConfigError
from synergen_jax.model.sampling import SamplingConfig
from synergen_jax.model.config import ModelConfig
from synergen_jax.model.param_groups import GROUPS


def _need(cond: bool, field: str, message: str) -> None:
  if not cond:
    raise ConfigError(f"config.{field}: {message}")


def check_eval(e) -> None:
  """Values of a merged `eval` section."""
  for f in ("vqa_questions", "text_batches", "timing_images", "grid_prompts"):
    _need(int(e[f]) >= 0, f"eval.{f}", f"{e[f]}: expected >= 0")
  for f in ("max_answer_tokens", "gen_prompts", "gen_samples", "batch_size"):
    _need(int(e[f]) >= 1, f"eval.{f}", f"{e[f]}: expected >= 1")
  _need(e.cfg_scale >= 0, "eval.cfg_scale", f"{e.cfg_scale}: expected >= 0 (0 = no guidance)")
  _need(len(e.vqa_splits) == len(set(e.vqa_splits)), "eval.vqa_splits", "duplicate splits")
  try:
    SamplingConfig(temperature=float(e.gen_temperature), top_k=int(e.gen_top_k),
                   top_p=float(e.gen_top_p))
  except ValueError as err:
    raise ConfigError(f"config.eval: {err}") from None


def check_fields(config) -> ModelConfig:
  """Schema checks of a raw experiment ConfigDict (no files, no devices). Returns the
  validated ModelConfig."""
  for k in config.keys():
    _need(k in defaults.TOP_LEVEL, k, f"unknown field; known: {sorted(defaults.TOP_LEVEL)}")
  for k in ("model", "mesh", "data", "stages", "stage_order"):
    _need(k in config, k, "missing")
  try:
    model = ModelConfig.from_config_dict(config.model)
  except (ValueError, TypeError) as e:
    raise ConfigError(f"config.model: {e}") from None
  check_known(config.mesh, ml_collections.ConfigDict(dict(shape=(1, 1, 1))), "config.mesh")
  _need(len(config.mesh.shape) == 3, "mesh.shape",
        f"{tuple(config.mesh.shape)}: expected (data, fsdp, tensor)")
  data_ref = data_config_lib.default_data_config()
  check_known(config.data, data_ref, "config.data")
  check_known(config.get("text_data", ml_collections.ConfigDict()),
              defaults.default_text_data_config(), "config.text_data")
  check_known(config.get("train", ml_collections.ConfigDict()),
              defaults.default_train_config(), "config.train", free=("xla_compiler_options",))
  check_eval(merged.eval_(config))
  train = merged.train(config)
  _need(train.input_streams >= 0, "train.input_streams",
        f"{train.input_streams}: expected >= 0 (0: one input stream per process)")
  for s in train.eval_sets:
    _need(s in defaults.EVAL_SETS, "train.eval_sets",
          f"{s!r} is not one of {defaults.EVAL_SETS}")
  _need(len(config.stage_order) > 0, "stage_order", "no stages to run")
  for name in config.stage_order:
    _need(name in config.stages, "stage_order", f"stage {name!r} is not in config.stages "
          f"({sorted(config.stages.keys())})")
  tasks_known = defaults.MULTIMODAL_TASKS + ("text",)
  for name in config.stages.keys():
    where = f"config.stages.{name}"
    check_known(config.stages[name], defaults.default_stage_config(), where,
                free=("data", "text_data"))
    st = merged.stage(config, name)
    check_known(st.data, data_ref, f"{where}.data")
    check_known(st.text_data, defaults.default_text_data_config(), f"{where}.text_data")
    check_known(st.optimizer, defaults.default_optimizer_config(), f"{where}.optimizer")
    f = f"stages.{name}"
    _need(st.kind in defaults.STAGE_KINDS, f"{f}.kind",
          f"{st.kind!r} is not one of {defaults.STAGE_KINDS}")
    _need(st.steps >= 1, f"{f}.steps", f"{st.steps}: expected >= 1")
    _need(all(t in tasks_known for t in st.tasks) and len(set(st.tasks)) == len(st.tasks)
          and (not st.tasks or any(t in defaults.MULTIMODAL_TASKS for t in st.tasks)),
          f"{f}.tasks", f"{tuple(st.tasks)}: expected a subset of {tasks_known} with at "
          f"least one of {defaults.MULTIMODAL_TASKS}")
    _need(st.grad_accum_steps >= 1, f"{f}.grad_accum_steps", "expected >= 1")
    pairs = tuple(st.text_loss_weights)
    _need(all(isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[1], (int, float))
              and p[1] >= 0 for p in pairs)
          and (not pairs or (sorted(str(p[0]) for p in pairs)
                             == sorted(merged.stage_tasks(st))
                             and sum(p[1] for p in pairs) > 0)),
          f"{f}.text_loss_weights", f"{pairs!r}: expected () or one (task, weight >= 0) pair "
          f"per task of the stage {merged.stage_tasks(st)}, weights not all 0")
    _need(len(st.trainable) > 0 and all(g in GROUPS for g in st.trainable),
          f"{f}.trainable", f"{tuple(st.trainable)}: expected a non-empty subset of {GROUPS}")
    o = st.optimizer
    _need(o.schedule in defaults.SCHEDULES, f"{f}.optimizer.schedule",
          f"{o.schedule!r} is not one of {defaults.SCHEDULES}")
    _need(o.lr > 0, f"{f}.optimizer.lr", f"{o.lr}: expected > 0")
    _need(o.warmup_steps >= 0, f"{f}.optimizer.warmup_steps", "expected >= 0")
    for g, m in o.group_lr_mult.items():
      _need(m >= 0, f"{f}.optimizer.group_lr_mult.{g}", f"{m}: expected >= 0")
    if st.kind == "multimodal":
      d = merged.stage_data(config, name)
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


def validate(experiment, num_devices: int, check_files: bool = True) -> None:
  """A resolved Experiment against `num_devices` (mesh, batch splits over the mesh, the
  micro-batches and the input streams) and, with `check_files`, the datasets and the
  tokenizer it reads. Raises ConfigError naming the field."""
  try:
    shape = sharding.resolve_mesh_shape(experiment.mesh_shape, num_devices)
  except ValueError as e:
    raise ConfigError(f"config.mesh.shape: {e}") from None
  batch_parallel = shape[0] * shape[1]
  streams = experiment.train.input_streams
  for st in experiment.stages:
    f = f"stages.{st.name}"
    if st.kind == "multimodal":
      sizes = {f"{f}.data.{t}.batch_size": st.data[t].batch_size
               for t in defaults.MULTIMODAL_TASKS}
    else:
      sizes = {f"{f}.text_data.batch_size": st.text_data.batch_size}
    for field, bs in sizes.items():
      _need(bs % batch_parallel == 0, field,
            f"{bs} is not divisible by the mesh's data x fsdp = {batch_parallel} devices")
      _need((bs // batch_parallel) % st.grad_accum_steps == 0, field,
            f"{bs} rows over {batch_parallel} devices do not split into "
            f"{f}.grad_accum_steps = {st.grad_accum_steps} micro-batches")
      _need(streams == 0 or bs % streams == 0, field,
            f"{bs} rows do not split into train.input_streams = {streams}")
    if check_files:
      _dataset_checks(experiment, st)
  if check_files:
    _need(os.path.isfile(os.path.expanduser(experiment.tokenizer)), "tokenizer",
          f"missing tokenizer model file {experiment.tokenizer!r}")


def _dataset_checks(experiment, st) -> None:
  f = f"stages.{st.name}"
  pretokenized_dir = experiment.data.pretokenized_dir
  if st.kind == "multimodal":
    _need_shards(st.data.pretokenized_dir, "train", f"{f}.data.pretokenized_dir")
  else:
    _need_text(st.text_data, pretokenized_dir, st.text_data.train_split, f"{f}.text_data")
  for s in experiment.train.eval_sets:
    if s == "text":
      t = experiment.text_data
      _need_text(t, pretokenized_dir, t.eval_split, "text_data")
    else:
      _need_shards(pretokenized_dir, "validation", "data.pretokenized_dir")


def _need_shards(directory: str, split: str, field: str) -> None:
  try:
    records.shard_files(directory, split)
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


def check_tokenizer(model: ModelConfig, tokenizer: Any) -> None:
  """The tokenizer's id layout matches the model's embedding tables."""
  _need(tokenizer.text_vocab_size == model.vocab_size, "model.vocab_size",
        f"{model.vocab_size} but the tokenizer {tokenizer.name} has text vocabulary "
        f"{tokenizer.text_vocab_size}")
  _need(tokenizer.vocab_size - tokenizer.text_vocab_size == model.num_new_tokens,
        "model.num_new_tokens",
        f"{model.num_new_tokens} but the tokenizer defines "
        f"{tokenizer.vocab_size - tokenizer.text_vocab_size} new tokens")
