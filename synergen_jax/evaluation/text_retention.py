"""Text-skill retention: perplexity and next-token accuracy on the text-only split.

The same fixed batches (`text_data.eval_split`, in order) score the evaluated params and
the params their stage started from (`workdir.start_params_dir`), so the difference is
what the stage's multimodal training did to the LLM's text skill.
"""

import dataclasses
import functools
import math

import jax
import numpy as np

from data_pipelines.pipeline import text as text_pipeline
from synergen_jax import sharding
from synergen_jax.model.losses import combine_task_losses


def text_batches(experiment, tokenizer, num_batches: int) -> list[dict]:
  """The first `num_batches` packed batches of `text_data.eval_split` (numpy, in order)."""
  t = dataclasses.replace(experiment.text_data, prefetch_buffer=0)
  it = text_pipeline.make_text_pipeline(t, experiment.data.pretokenized_dir, tokenizer,
                                        experiment.model.patch_size, split=t.eval_split,
                                        sharding=None, train=False)
  out = []
  try:
    while len(out) < num_batches:
      out.append(next(it)["text"])
  except StopIteration:
    pass
  it.close()
  if not out:
    raise ValueError(f"text_data.eval_split {t.eval_split!r} yields no full batch of "
                     f"{t.batch_size} rows")
  return out


@functools.lru_cache(maxsize=None)
def _loss_sums(model):
  # Batches stay whole (replicated): evaluation runs on any device count, whatever the
  # batch size; params keep their shardings.
  return jax.jit(lambda params, batch: model.apply({"params": params}, batch,
                                                   max_gen_patches=0,
                                                   max_text_targets=0))


def metrics(model, mesh, params, batches: list[dict]) -> dict:
  """{"loss", "perplexity", "accuracy"} of next-token prediction over `batches`."""
  fn = _loss_sums(model)
  sums = None
  with sharding.mesh_context(mesh):
    for batch in batches:
      out = fn(params, batch)
      sums = out if sums is None else jax.tree.map(lambda a, b: a + b, sums, out)
  sums = jax.tree.map(lambda x: np.asarray(x, np.float64), jax.device_get(sums))
  _, m = combine_task_losses({"text": sums}, model.config.image_loss_weight)
  loss = float(m["text/text_loss"])
  return {"loss": loss, "perplexity": math.exp(loss), "accuracy": float(m["text/text_accuracy"])}
