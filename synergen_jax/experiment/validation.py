"""Checks of a resolved experiment against the devices and the files, before anything is
compiled; every error names the field. (Each field's own checks run when `resolve`
makes the typed dataclasses.)

  validate(experiment, num_devices)      a resolved Experiment against the devices (mesh,
                                          batch splits) and the files it reads
  check_tokenizer(model, tokenizer)      the tokenizer's id layout against the model
"""

import os
from typing import Any

from data_pipelines.pipeline import records
from synergen_jax import sharding
from synergen_jax.experiment import defaults
from synergen_jax.model.config import ModelConfig
from synergen_jax.typed_config import ConfigError


def _need(cond: bool, field: str, message: str) -> None:
  if not cond:
    raise ConfigError(f"config.{field}", message)


def validate(experiment, num_devices: int, check_files: bool = True) -> None:
  """A resolved Experiment against `num_devices` (mesh, batch splits over the mesh, the
  micro-batches and the input streams) and, with `check_files`, the datasets and the
  tokenizer it reads. Raises ConfigError naming the field."""
  try:
    shape = sharding.resolve_mesh_shape(experiment.mesh_shape, num_devices)
  except ValueError as e:
    raise ConfigError("config.mesh.shape", str(e)) from None
  batch_parallel = shape[0] * shape[1]
  streams = experiment.train.input_streams
  for st in experiment.stages:
    f = f"stages.{st.name}"
    if st.kind == "multimodal":
      sizes = {f"{f}.data.{t}.batch_size": st.data.task(t).batch_size
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
    raise ConfigError(f"config.{field}", f"missing dataset: {e}") from None


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
