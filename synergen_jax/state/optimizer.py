"""AdamW with warm-up + constant/cosine schedule, gradient clipping and a decay mask.

The optimizer is built for the *trainable* parameter subtree only (see freezing.py), so
frozen parameters get no optimizer state. By default norms (`scale`), biases and
embedding tables (names containing `embed`) are not weight-decayed. `group_lr_mult`
scales the learning rate of a parameter group (model/param_groups.py: vision,
llm_attention, llm), e.g. new vision parameters faster than the pretrained LLM; at 1.0
everywhere (the default) the optimizer is exactly plain AdamW.
"""

from typing import Any

import jax
import optax

from synergen_jax.model import param_groups


def schedule(opt: Any, total_steps: int) -> optax.Schedule:
  """Linear warm-up from 0 to `opt.lr`, then constant or cosine to `end_lr_frac * lr`."""
  warmup = int(opt.warmup_steps)
  if opt.schedule == "constant":
    after = optax.constant_schedule(opt.lr)
  elif opt.schedule == "cosine":
    after = optax.cosine_decay_schedule(opt.lr, max(total_steps - warmup, 1),
                                        alpha=float(opt.end_lr_frac))
  else:
    raise ValueError(f"optimizer.schedule must be 'constant' or 'cosine', got {opt.schedule!r}")
  if warmup == 0:
    return after
  return optax.join_schedules(
      [optax.linear_schedule(0.0, opt.lr, warmup), after], boundaries=[warmup])


def _keys(path) -> tuple[str, ...]:
  return tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def is_decayed(path: tuple[str, ...]) -> bool:
  """Kernels and output heads decay; norms, biases and embeddings do not."""
  name = path[-1]
  return not (name in ("scale", "bias") or "embed" in name)


def decay_mask(params: Any, decay_everything: bool = False) -> Any:
  """Tree of bools like `params`: True where weight decay applies."""
  return jax.tree_util.tree_map_with_path(
      lambda p, _: decay_everything or is_decayed(_keys(p)), params)


def group_lr_factors(params: Any, mult: dict) -> Any:
  """Tree like `params`: each leaf's learning-rate factor, `mult[its group]` (default 1)."""
  return jax.tree_util.tree_map_with_path(
      lambda p, _: float(mult.get(param_groups.group_of(_keys(p)), 1.0)), params)


def scale_by_group(params: Any, mult: dict) -> optax.GradientTransformation:
  """Multiplies each update by its parameter group's factor (a per-group learning rate,
  weight decay included, as AdamW's decoupled decay is part of its update). Stateless."""
  factors = group_lr_factors(params, mult)

  def update(updates, state, params=None):
    del params
    return jax.tree.map(lambda u, f: u * f, updates, factors), state

  return optax.GradientTransformation(lambda _: optax.EmptyState(), update)


def make_optimizer(opt: Any, total_steps: int, params: Any) -> optax.GradientTransformation:
  """clip(global norm) -> AdamW(schedule, masked decay) [-> x group_lr_mult], for the tree
  `params`.

  `params` may be abstract (only its structure and paths are used).
  """
  tx = optax.adamw(schedule(opt, total_steps), b1=opt.b1, b2=opt.b2, eps=opt.eps,
                   weight_decay=opt.weight_decay,
                   mask=decay_mask(params, bool(opt.decay_norms_biases_embeddings)))
  if opt.clip_norm and opt.clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(opt.clip_norm), tx)
  mult = dict(opt.group_lr_mult)
  if any(float(v) != 1.0 for v in mult.values()):
    tx = optax.chain(tx, scale_by_group(params, mult))
  return tx
