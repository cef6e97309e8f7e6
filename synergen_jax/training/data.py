"""The data a stage trains and validates on, as global arrays on the mesh.

  train_iterator(experiment, stage, tokenizer, mesh)
      multimodal stage: `data_pipelines.pipeline.multimodal.make_pipeline` on the stage's data
      config -> {"understanding", "generation"} (+ "text" when the stage's tasks list it:
      text replay from the stage's text_data config); text stage: `text_data` -> {"text"}.
      Checkpointable (get_state / set_state).
  ValidationSets(experiment, tokenizer, mesh).batches(names)
      Fixed validation batches, the same for every stage so losses compare across stages:
      "understanding"/"generation" from the validation split of `config.data` (in order,
      one pass), "text" from `text_data.eval_split`; `train.eval_batches` of each.
      Built once and cached.
"""

import dataclasses

import jax

from data_pipelines.pipeline import multimodal as mm_pipeline
from data_pipelines.pipeline import text as text_pipeline
from synergen_jax import sharding


def train_iterator(experiment, stage, tokenizer, mesh):
  """The train batches of `stage` (an `experiment.Stage` of `experiment`)."""
  model_config, streams = experiment.model, experiment.train.input_streams
  pretokenized_dir = experiment.data.pretokenized_dir
  if stage.kind == "text":
    t = stage.text_data
    return text_pipeline.make_text_pipeline(
        t, pretokenized_dir, tokenizer, model_config.patch_size, split=t.train_split,
        sharding=sharding.row_sharding(mesh), train=True, num_streams=streams)
  extra = {}
  if "text" in stage.tasks:  # text replay beside the vision tasks
    t = stage.text_data
    docs = text_pipeline.documents(t, pretokenized_dir, t.train_split)
    extra["text"] = text_pipeline.text_dataset(
        docs, tokenizer, model_config.patch_size, t, shuffle=True, num_epochs=None,
        process_index=jax.process_index(), process_count=jax.process_count(),
        num_streams=streams, sharding=sharding.row_sharding(mesh))
  vision_tasks = tuple(t for t in stage.tasks if t in mm_pipeline.TASKS)  # only these built
  return mm_pipeline.make_pipeline(stage.data, tokenizer, model_config.fold,
                                   model_config.tile_grid, split="train",
                                   sharding=sharding.row_sharding(mesh), num_streams=streams,
                                   extra=extra, tasks=vision_tasks)


class ValidationSets:
  """Cached validation batches per set name (see module doc)."""

  def __init__(self, experiment, tokenizer, mesh):
    self.experiment, self.tok, self.mesh = experiment, tokenizer, mesh
    self.model_config = experiment.model
    self.streams = experiment.train.input_streams
    self.num_batches = experiment.train.eval_batches
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
    d = dataclasses.replace(self.experiment.data, shuffle=False, num_epochs=1,
                            prefetch_buffer=0)
    it = mm_pipeline.make_pipeline(d, self.tok, self.model_config.fold,
                                   self.model_config.tile_grid, split="validation",
                                   sharding=sharding.row_sharding(self.mesh),
                                   num_streams=self.streams)
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
    t = dataclasses.replace(self.experiment.text_data, prefetch_buffer=0)
    it = text_pipeline.make_text_pipeline(
        t, self.experiment.data.pretokenized_dir, self.tok, self.model_config.patch_size,
        split=t.eval_split, sharding=sharding.row_sharding(self.mesh), train=False,
        num_streams=self.streams)
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
