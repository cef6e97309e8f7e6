"""The VQ experiment's `train` section: its fields, the optional fields' defaults, checks
(`check_config`: also that its model builds).

The one home of the VQ `train` defaults: the optional fields default to "off" (Emu3's
objective), so experiment files written before they existed keep their meaning.
"""

from typing import Any

from synergen_jax.experiment.errors import ConfigError
from synergen_jax.model.vq.tokenizer import VQTokenizer

# Fields of `train` the trainer reads (required).
TRAIN_FIELDS = frozenset({
    "steps", "lr", "warmup_steps", "final_lr_frac", "b1", "b2", "weight_decay", "grad_clip",
    "l1_weight", "l2_weight", "codebook_weight", "commitment_weight", "usage_decay",
    "restart_every", "restart_until", "restart_threshold", "disc", "log_every",
    "checkpoint_every", "eval_every", "max_checkpoints"})
OPTIONAL_TRAIN_FIELDS = {
    "foreground_weight": 0.0,  # extra weight of foreground pixels in the reconstruction loss
    "gradient_weight": 0.0,  # weight of the image-gradient (edge sharpness) loss
    "edge_weight": 0.0,  # extra weight of pixels next to colour edges in the same loss
    "codebook_ema_decay": 0.0,  # 0: codebook learned by its loss (Emu3); else EMA decay
    "codebook_ema_epsilon": 1e-5,  # Laplace smoothing of the EMA cluster sizes
}


def train_option(t: Any, name: str):
  """An optional `train` field, or its default."""
  return t.get(name, OPTIONAL_TRAIN_FIELDS[name])


def validate_config(config: Any) -> None:
  """Raises ConfigError (a ValueError) naming the field when the experiment's `train`
  section is wrong."""
  t = config.train
  def fail(field, msg):
    raise ConfigError(f"VQ experiment field `train.{field}`: {msg}")

  unknown = sorted(set(t.keys()) - TRAIN_FIELDS - set(OPTIONAL_TRAIN_FIELDS))
  if unknown:
    raise ConfigError(f"VQ experiment: unknown `train` fields {unknown}; known fields are "
                      f"{sorted(TRAIN_FIELDS | set(OPTIONAL_TRAIN_FIELDS))}")
  missing = sorted(TRAIN_FIELDS - set(t.keys()))
  if missing:
    raise ConfigError(f"VQ experiment: missing `train` fields {missing}")
  if t.steps < 1:
    fail("steps", f"must be >= 1, got {t.steps}")
  if t.restart_every < 1:
    fail("restart_every", f"must be >= 1, got {t.restart_every}")
  for name in ("l1_weight", "l2_weight", "codebook_weight", "commitment_weight"):
    if t[name] < 0:
      fail(name, f"must be >= 0, got {t[name]}")
  if t.l1_weight == 0 and t.l2_weight == 0:
    fail("l2_weight", "l1_weight and l2_weight are both 0: no reconstruction loss")
  for name in ("foreground_weight", "edge_weight", "gradient_weight"):
    value = train_option(t, name)
    if not isinstance(value, (int, float)) or value < 0:
      fail(name, f"must be a number >= 0 (0 = off), got {value!r}")
  decay = train_option(t, "codebook_ema_decay")
  if not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
    fail("codebook_ema_decay", f"must be in [0, 1) (0 = codebook learned by the codebook "
         f"loss, as Emu3), got {decay!r}")
  eps = train_option(t, "codebook_ema_epsilon")
  if not isinstance(eps, (int, float)) or eps <= 0:
    fail("codebook_ema_epsilon", f"must be > 0, got {eps!r}")


def check_config(config: Any) -> VQTokenizer:
  """`validate_config`, then the tokenizer of `config.model` (which checks the model
  section); raises a ValueError naming the field."""
  validate_config(config)
  return VQTokenizer(config.model)
