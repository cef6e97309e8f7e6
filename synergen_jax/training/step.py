"""The jitted train step and evaluation step.

  step = make_train_step(spec, tasks, grad_accum_steps, compiler_options)
      # (state, batches) -> (state, metrics)
  sums = make_eval_step(spec, tasks, compiler_options)
      # (params, batches) -> {task: loss sums}

`tasks` are the keys of `batches`; `batches` is `{task: batch}` (docs/ARCHITECTURE.md,
"The batch contract"; "understanding", "generation" or "text"), one batch per task per
step, each with its own batch size and length.
Loss = text CE + lambda * image CE over all tasks (`losses.combine_task_losses`).
Only the trainable subtree is differentiated (frozen parameters get no weight gradient
and no optimizer state). Both functions are `jax.jit`ted with explicit in/out shardings
(the state is donated); call them inside `sharding.mesh_context(mesh)`.
`compiler_options` go to XLA (e.g. {"xla_backend_optimization_level": 0} halves CPU
compile time for short runs).

Gradient accumulation (`grad_accum_steps = k > 1`) scans over k micro-batches of rows
(micro-batch j = rows j, j+k, ... so it stays spread over the batch-sharded devices).
Because losses are sums normalised by the *whole* batch's target weights, the
accumulated gradient equals the full-batch gradient (up to float summation order).
"""

import jax
import jax.numpy as jnp
import optax

from synergen_jax import sharding
from synergen_jax.model.losses import combine_task_losses, text_task_mean
from synergen_jax.model.synergen import target_weights
from synergen_jax.state import freezing
from synergen_jax.state.train_state import StateSpec, TrainState


def batch_shardings(mesh, tasks) -> dict:
  """Every batch field sharded on its leading (row) dim (`sharding.row_sharding`)."""
  return {t: sharding.row_sharding(mesh) for t in tasks}


def head_budgets(config, task: str, max_gen_patches: int | None = None) -> dict:
  """Per-row target buffers of a task (the model call's and `target_weights`' static
  arguments): only generation batches run the unfolding head (on `max_gen_patches`
  patches if given and > 0, else the model's); text-only rows run the LM head on every
  position (every token is a target)."""
  gen = max_gen_patches or config.max_gen_patches
  return {"max_gen_patches": gen if task == "generation" else 0,
          "max_text_targets": 0 if task == "text" else config.max_text_targets}


def batch_counts(batches: dict) -> dict:
  """Per task: non-pad tokens, image positions and the causal context sum (for FLOPs)."""
  out = {}
  for t, b in batches.items():
    real = b["segment_ids"] > 0
    out[f"{t}/tokens"] = jnp.sum(real).astype(jnp.float32)
    out[f"{t}/image_positions"] = jnp.sum(real & b["is_image"]).astype(jnp.float32)
    out[f"{t}/context_sum"] = jnp.sum(jnp.where(real, b["positions"] + 1, 0)).astype(
        jnp.float32)
  return out


def _micro(batch: dict, k: int) -> dict:
  """[B, ...] -> [k, B/k, ...] with micro-batch j = rows j, j + k, j + 2k, ..."""
  def one(x):
    x = x.reshape((x.shape[0] // k, k) + x.shape[1:])
    return jnp.moveaxis(x, 1, 0)
  return jax.tree.map(one, batch)


def make_train_step(spec: StateSpec, tasks, grad_accum_steps: int = 1,
                    compiler_options: dict | None = None,
                    text_loss_weights: tuple[tuple[str, float], ...] = (),
                    max_gen_patches: int | None = None):
  """(state, {task: batch}) -> (state, metrics), jitted with the state donated.

  text_loss_weights: ((task, weight), ...) for a per-task mean text loss
  (`losses.combine_task_losses`); () = one mean over all tasks' text targets.
  max_gen_patches: the unfolding head's per-row buffer (None or 0: the model's).
  """
  model, lam = spec.model, spec.config.image_loss_weight
  k = int(grad_accum_steps)
  task_w = dict(text_loss_weights) or None

  def task_outputs(params, batches):
    return {t: model.apply({"params": params}, b,
                           **head_budgets(spec.config, t, max_gen_patches))
            for t, b in batches.items()}

  def grads_full(trainable, frozen, batches):
    def loss_fn(tr):
      outs = task_outputs(freezing.merge(tr, frozen), batches)
      loss, _ = combine_task_losses(outs, lam, task_w)
      return loss, outs
    (_, outs), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
    return grads, outs

  def grads_accumulated(trainable, frozen, batches):
    weights = {t: target_weights(b, **head_budgets(spec.config, t, max_gen_patches),
                                 first_code_weight=spec.config.image_first_code_weight)
               for t, b in batches.items()}
    text_w = jnp.maximum(sum(w[0] for w in weights.values()), 1e-8)
    image_w = jnp.maximum(sum(w[1] for w in weights.values()), 1e-8)
    micro = {t: _micro(b, k) for t, b in batches.items()}
    row_spec = sharding.row_sharding(spec.mesh)

    def micro_loss(tr, mb):
      outs = task_outputs(freezing.merge(tr, frozen), mb)
      image = sum(o["image_nll"] for o in outs.values())
      if task_w:  # each task's micro-batch sum over its whole-batch target count
        text = text_task_mean({t: o["text_nll"] for t, o in outs.items()},
                              {t: w[0] for t, w in weights.items()}, task_w)
      else:
        text = sum(o["text_nll"] for o in outs.values()) / text_w
      return text + lam * image / image_w, outs

    def body(carry, mb):
      mb = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, row_spec), mb)
      (_, outs), g = jax.value_and_grad(micro_loss, has_aux=True)(trainable, mb)
      return jax.tree.map(jnp.add, carry, (g, outs)), None

    first = jax.tree.map(lambda x: x[0], micro)
    outs_abs = jax.eval_shape(lambda tr, mb: task_outputs(freezing.merge(tr, frozen), mb),
                              trainable, first)
    zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), (trainable, outs_abs))
    (grads, outs), _ = jax.lax.scan(body, zeros, micro)
    return grads, outs

  def step(state: TrainState, batches: dict):
    trainable, frozen = spec.split(state.params)
    compute = grads_full if k == 1 else grads_accumulated
    grads, outs = compute(trainable, frozen, batches)
    _, metrics = combine_task_losses(outs, lam, task_w)
    updates, opt_state = spec.tx.update(grads, state.opt_state, trainable)
    trainable = optax.apply_updates(trainable, updates)
    metrics.update(batch_counts(batches))
    metrics["grad_norm"] = optax.tree.norm(grads)
    metrics["param_norm"] = optax.tree.norm(trainable)
    metrics["lr"] = jnp.asarray(spec.schedule(state.step), jnp.float32)
    new = TrainState(step=state.step + 1, params=freezing.merge(trainable, frozen),
                     opt_state=opt_state)
    return new, metrics

  return jax.jit(step, in_shardings=(spec.shardings, batch_shardings(spec.mesh, tasks)),
                 out_shardings=(spec.shardings, spec.replicated), donate_argnums=(0,),
                 compiler_options=compiler_options or None)


def make_eval_step(spec: StateSpec, tasks, compiler_options: dict | None = None):
  """(params, {task: batch}) -> {task: loss sums} (combine on the host after summing)."""
  model = spec.model

  def sums(params, batches):
    return {t: model.apply({"params": params}, b, **head_budgets(spec.config, t))
            for t, b in batches.items()}

  return jax.jit(sums, in_shardings=(spec.param_shardings, batch_shardings(spec.mesh, tasks)),
                 out_shardings=spec.replicated, compiler_options=compiler_options or None)
