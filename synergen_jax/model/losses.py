"""Cross-entropy over a large output vocabulary without materialising all logits.

`chunked_cross_entropy` walks the positions in chunks under `jax.checkpoint`, so only
one chunk's [chunk, vocab] float32 logits exist at a time, in the forward and in the
backward pass. It returns sums (not means) so task batches can be combined exactly.
"""

from typing import Callable

import jax
import jax.numpy as jnp


def chunk_sums(logits: jax.Array, targets: jax.Array, weights: jax.Array):
  """One chunk's float32 logits [..., vocab] against int targets / weights [...]:
  (sum w * -log p(target), sum w * [argmax == target], logsumexp [...])."""
  lse = jax.nn.logsumexp(logits, axis=-1)
  target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  nll = jnp.sum(weights * (lse - target_logit))
  correct = jnp.sum(weights * (jnp.argmax(logits, axis=-1) == targets))
  return nll, correct, lse


def chunked_cross_entropy(
    hidden: jax.Array,
    targets: jax.Array,
    weights: jax.Array,
    logits_fn: Callable[[jax.Array], jax.Array],
    chunk_size: int,
) -> dict[str, jax.Array]:
  """Weighted next-token cross-entropy, chunked along the length axis.

  hidden: [batch, n, d]; targets: [batch, n] int; weights: [batch, n] float;
  logits_fn: [batch, chunk, d] -> [batch, chunk, vocab]. The batch axis is never
  reshaped, so a batch sharded over devices stays where it is.

  Returns sums: {"nll": sum w * -log p(target), "weight": sum w,
  "correct": sum w * [argmax == target]}.
  """
  batch, n = targets.shape
  chunk = max(1, min(chunk_size, n))
  pad = (-n) % chunk
  if pad:
    hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
    targets = jnp.pad(targets, ((0, 0), (0, pad)))
    weights = jnp.pad(weights, ((0, 0), (0, pad)))
  num_chunks = hidden.shape[1] // chunk
  # [chunks, batch, chunk, ...]: scan over the leading axis.
  hidden = hidden.reshape(batch, num_chunks, chunk, -1).swapaxes(0, 1)
  targets = targets.reshape(batch, num_chunks, chunk).swapaxes(0, 1)
  weights = weights.astype(jnp.float32).reshape(batch, num_chunks, chunk).swapaxes(0, 1)

  @jax.checkpoint
  def one_chunk(h, t, w):
    logits = logits_fn(h).astype(jnp.float32)  # [batch, chunk, vocab]
    nll, correct, _ = chunk_sums(logits, t, w)
    return nll, correct

  def body(carry, xs):
    nll, correct = one_chunk(*xs)
    return (carry[0] + nll, carry[1] + correct), None

  zero = jnp.zeros((), jnp.float32)
  (nll, correct), _ = jax.lax.scan(body, (zero, zero), (hidden, targets, weights))
  return {"nll": nll, "weight": jnp.sum(weights), "correct": jax.lax.stop_gradient(correct)}


def text_task_mean(text_nll: dict, text_weight: dict, task_weights: dict) -> jax.Array:
  """sum_t w_t * nll_t / n_t over sum_t w_t: the weighted mean of each task's own mean
  text loss (a task without text targets in the batch drops out of both sums)."""
  num, den = 0.0, 0.0
  for task, w in task_weights.items():
    present = (text_weight[task] > 0).astype(jnp.float32) * w
    num = num + present * text_nll[task] / jnp.maximum(text_weight[task], 1e-8)
    den = den + present
  return num / jnp.maximum(den, 1e-8)


def combine_task_losses(task_outputs: dict[str, dict[str, jax.Array]],
                        image_loss_weight: float,
                        text_task_weights: dict[str, float] | None = None,
                        ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """loss = text CE + lambda * image CE.

  The image CE is averaged over all tasks' image targets; the text CE likewise, or, with
  `text_task_weights` ({task: weight}, every task listed), it is the weighted mean of each
  task's own mean (`text_task_mean`), so a task's share of the text loss does not follow
  its share of the targets (a few answer tokens beside rows of text replay).
  task_outputs: {task: {"text_nll", "text_weight", "text_correct", "image_nll",
  "image_weight", "image_correct", ...}}. Returns (loss, flat metrics).
  """
  def total(key):
    return sum(out[key] for out in task_outputs.values())

  text_w = jnp.maximum(total("text_weight"), 1e-8)
  image_w = jnp.maximum(total("image_weight"), 1e-8)
  if text_task_weights:
    text_loss = text_task_mean({t: o["text_nll"] for t, o in task_outputs.items()},
                               {t: o["text_weight"] for t, o in task_outputs.items()},
                               text_task_weights)
  else:
    text_loss = total("text_nll") / text_w
  image_loss = total("image_nll") / image_w
  loss = text_loss + image_loss_weight * image_loss
  metrics = {"loss": loss, "text_loss": text_loss, "image_loss": image_loss}
  for task, out in task_outputs.items():
    tw = jnp.maximum(out["text_weight"], 1e-8)
    iw = jnp.maximum(out["image_weight"], 1e-8)
    metrics.update({
        f"{task}/text_loss": out["text_nll"] / tw,
        f"{task}/text_accuracy": out["text_correct"] / tw,
        f"{task}/text_tokens": out["text_weight"],
        f"{task}/image_loss": out["image_nll"] / iw,
        f"{task}/image_accuracy": out["image_correct"] / iw,
        f"{task}/image_codes": out["image_weight"],
        f"{task}/image_patches_dropped": out["image_patches_dropped"],
    })
    if "text_targets_dropped" in out:
      metrics[f"{task}/text_targets_dropped"] = out["text_targets_dropped"]
  return loss, metrics
