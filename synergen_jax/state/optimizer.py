"""AdamW with warm-up + constant/cosine schedule, gradient clipping and a decay mask.

The optimizer is built for the *trainable* parameter subtree only (see freezing.py), so
frozen parameters get no optimizer state. By default norms (`scale`), biases and
embedding tables (names containing `embed`) are not weight-decayed. `group_lr_mult`
scales the learning rate of a parameter group (model/param_groups.py: vision,
llm_attention, llm), e.g. new vision parameters faster than the pretrained LLM; at 1.0
everywhere (the default) the optimizer is exactly plain AdamW.

  default_optimizer_config() -> ConfigDict     a stage's `optimizer` section's defaults
  Optimizer.from_config(cfg) -> Optimizer      typed, frozen, checked (a cache key)
  make_optimizer(opt, total_steps, params) -> optax.GradientTransformation
"""

import dataclasses
from typing import Any

import jax
import ml_collections
import optax

from synergen_jax.model import param_groups
from synergen_jax.typed_config import Typed, convert, from_dict, need

SCHEDULES = ("constant", "cosine")


def default_optimizer_config() -> ml_collections.ConfigDict:
  """AdamW + warm-up + constant/cosine + global-norm clipping (METHOD.md section 8)."""
  return ml_collections.ConfigDict(dict(
      lr=1e-4, schedule="cosine", warmup_steps=200, end_lr_frac=0.0,
      b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.05, decay_norms_biases_embeddings=False,
      clip_norm=1.0,
      group_lr_mult=ml_collections.ConfigDict({g: 1.0 for g in param_groups.GROUPS}),
  ))


@dataclasses.dataclass(frozen=True)
class Optimizer(Typed):
  """AdamW + schedule of one stage (`default_optimizer_config`)."""

  # Peak learning rate.
  lr: float
  # After warm-up: "constant", or "cosine" to end_lr_frac * lr at the stage's last step.
  schedule: str
  # Linear warm-up from 0 over this many steps.
  warmup_steps: int
  # The cosine's end value as a fraction of lr.
  end_lr_frac: float
  # Adam's first-moment decay.
  b1: float
  # Adam's second-moment decay.
  b2: float
  # Adam's epsilon.
  eps: float
  # Decoupled weight decay (AdamW).
  weight_decay: float
  # False: no decay on norms, biases and embeddings.
  decay_norms_biases_embeddings: bool
  # Global gradient-norm clipping (0 = off).
  clip_norm: float
  # ((parameter group, learning-rate factor), ...) sorted; 1.0 = lr (model/param_groups.py).
  group_lr_mult: tuple[tuple[str, float], ...]

  def check(self):
    need(self.lr > 0, "lr", f"{self.lr}: expected > 0")
    need(self.schedule in SCHEDULES, "schedule", f"{self.schedule!r} is not one of {SCHEDULES}")
    need(self.warmup_steps >= 0, "warmup_steps", f"{self.warmup_steps}: expected >= 0")
    need(self.clip_norm >= 0, "clip_norm", f"{self.clip_norm}: expected >= 0 (0 = off)")
    for g, m in self.group_lr_mult:
      need(g in param_groups.GROUPS, f"group_lr_mult.{g}",
           f"unknown parameter group; known: {param_groups.GROUPS}")
      need(m >= 0, f"group_lr_mult.{g}", f"{m}: expected >= 0")

  @classmethod
  def from_config(cls, cfg=None, where: str = "optimizer") -> "Optimizer":
    """From an optimizer ConfigDict or dict over the defaults (None = the defaults);
    errors name `where.field`."""
    base = default_optimizer_config()
    over = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg or {})
    fields = {**base.to_dict(), **over}
    mult = fields.pop("group_lr_mult", None)
    mult = {**base.group_lr_mult.to_dict(),
            **(mult.to_dict() if hasattr(mult, "to_dict") else dict(mult or {}))}
    pairs = tuple(sorted((str(g), convert(m, float, f"{where}.group_lr_mult.{g}"))
                         for g, m in mult.items()))
    return from_dict(cls, fields, where, group_lr_mult=pairs)


def schedule(opt: Optimizer, total_steps: int) -> optax.Schedule:
  """Linear warm-up from 0 to `opt.lr`, then constant or cosine to `end_lr_frac * lr`."""
  warmup = opt.warmup_steps
  if opt.schedule == "constant":
    after = optax.constant_schedule(opt.lr)
  else:  # "cosine" (Optimizer checks the name)
    after = optax.cosine_decay_schedule(opt.lr, max(total_steps - warmup, 1),
                                        alpha=opt.end_lr_frac)
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


def make_optimizer(opt: Optimizer, total_steps: int,
                   params: Any) -> optax.GradientTransformation:
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
