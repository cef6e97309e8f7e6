"""The data a stage trains and validates on, as global arrays on the mesh.

  train_iterator(config, stage, tokenizer, model_config, mesh)
      multimodal stage: `data_pipelines.pipeline.make_pipeline` on the stage's data
      config -> {"understanding", "generation"} (+ "text" when the stage's tasks list it:
      text replay from the stage's text_data config); text stage: `text_data` -> {"text"}.
      Checkpointable (get_state / set_state).
  ValidationSets(config, tokenizer, model_config, mesh).batches(names)
      Fixed validation batches, the same for every stage so losses compare across stages:
      "understanding"/"generation" from the validation split of `config.data` (in order,
      one pass), "text" from `text_data.eval_split`. Built once and cached.
"""

import jax
import ml_collections
from jax.sharding import NamedSharding, PartitionSpec as P

from data_pipelines import pipeline as mm_pipeline
from synergen_jax import sharding
from synergen_jax.training import experiment
from synergen_jax.training import text_data


def _row_sharding(mesh):
  return NamedSharding(mesh, P(sharding.BATCH_AXES))


def _streams(config) -> int:
  """config.train.input_streams: how many input streams make a global batch (0: one per
  process); the data order depends on it, not on the number of processes."""
  return int(config.train.get("input_streams", 0))


def train_iterator(config, stage: str, tokenizer, model_config, mesh):
  if config.stages[stage].get("kind", "multimodal") == "text":
    t = experiment.stage_text_config(config, stage)
    return text_data.make_text_pipeline(t, config.data.pretokenized_dir, tokenizer,
                                        model_config.patch_size, split=t.train_split,
                                        sharding=_row_sharding(mesh), train=True,
                                        num_streams=_streams(config))
  d = experiment.stage_data_config(config, stage)
  extra = {}
  if "text" in experiment.stage_tasks(config, stage):  # text replay beside the vision tasks
    t = experiment.stage_text_config(config, stage)
    docs = text_data.documents(t, config.data.pretokenized_dir, t.train_split)
    extra["text"] = text_data.text_dataset(
        docs, tokenizer, model_config.patch_size, t, shuffle=True, num_epochs=None,
        process_index=jax.process_index(), process_count=jax.process_count(),
        num_streams=_streams(config), sharding=_row_sharding(mesh))
  return mm_pipeline.make_pipeline(d, tokenizer, model_config.fold, model_config.tile_grid,
                                   split="train", sharding=_row_sharding(mesh),
                                   num_streams=_streams(config), extra=extra)


class ValidationSets:
  """Cached validation batches per set name (see module doc)."""

  def __init__(self, config, tokenizer, model_config, mesh, num_batches: int):
    self.config, self.tok, self.model_config, self.mesh = config, tokenizer, model_config, mesh
    self.num_batches = int(num_batches)
    self._cache: dict[str, list] = {}

  def _take(self, it, task: str) -> list:
    out = []
    try:
      while len(out) < self.num_batches:
        out.append(next(it)[task])
    except StopIteration:
      pass
    if hasattr(it, "close"):
      it.close()
    if not out:
      raise ValueError(f"validation set {task!r} yields no full batch")
    return out

  def _build_multimodal(self):
    d = ml_collections.ConfigDict(self.config.data.to_dict())
    d.shuffle = False
    d.num_epochs = 1
    d.prefetch_buffer = 0
    it = mm_pipeline.make_pipeline(d, self.tok, self.model_config.fold,
                                   self.model_config.tile_grid, split="validation",
                                   sharding=_row_sharding(self.mesh),
                                   num_streams=_streams(self.config))
    batches = []
    try:
      while len(batches) < self.num_batches:
        batches.append(next(it))
    except StopIteration:
      pass
    it.close()
    if not batches:
      raise ValueError(f"{d.pretokenized_dir}: the validation split yields no full batch")
    for task in mm_pipeline.TASKS:
      self._cache[task] = [b[task] for b in batches]

  def _build_text(self):
    t = ml_collections.ConfigDict(self.config.text_data.to_dict())
    t.prefetch_buffer = 0
    it = text_data.make_text_pipeline(t, self.config.data.pretokenized_dir, self.tok,
                                      self.model_config.patch_size, split=t.eval_split,
                                      sharding=_row_sharding(self.mesh), train=False,
                                      num_streams=_streams(self.config))
    self._cache["text"] = self._take(it, "text")

  def batches(self, names) -> list[dict]:
    """[{name: batch} per batch index], as many as the shortest set has (one shape)."""
    for name in names:
      if name not in self._cache:
        if name == "text":
          self._build_text()
        else:
          self._build_multimodal()
    n = min(len(self._cache[name]) for name in names)
    return [{name: self._cache[name][i] for name in names} for i in range(n)]
