"""A VQ tokenizer experiment, resolved once into frozen typed dataclasses.

  exp = resolve(config)     # the experiment file's ConfigDict (experiments/vq_*.py)
  exp.train.lr, exp.data.batch_size, exp.train.disc.start_step

An experiment file returns a ConfigDict with `seed`, `model` (the VQ sizes,
`model/vq/config.py`, checked there), `data` and `train`; `resolve` checks every field
(unknown, missing, wrong type or value: a `ConfigError` naming the field) and casts it to
its type, with `typed_config` as the main experiment. A field with a default below is
optional: the defaults are the one home of the VQ defaults, "off" where a field was
added later (Emu3's objective), so experiment files written before it existed keep their
meaning. Changes go through `dataclasses.replace` (checked again).
"""

import dataclasses
from typing import Any

import ml_collections

from synergen_jax.model.vq import config as vq_config
from synergen_jax.model.vq.tokenizer import VQTokenizer
from synergen_jax.typed_config import ConfigError, Typed, from_dict, need


@dataclasses.dataclass(frozen=True)
class Data(Typed):
  """The scene images a VQ tokenizer trains and is evaluated on (`vq_training/data.py`)."""

  # Square renders of this many pixels.
  image_size: int
  # Images per step, split over the devices of the data axis.
  batch_size: int
  # Share of scenes that carry a line of text.
  text_prob: float
  # Validation scenes (validation seeds 0 .. eval_images - 1).
  eval_images: int
  # Images per encode / decode call of the evaluation.
  eval_batch_size: int
  # Object placement (scenes/render.py): 0 free, else a grid cell of this many pixels.
  cell: int = 0
  # Objects per scene: 1 .. max_objects.
  max_objects: int = 4
  # Train on crop x crop px windows, each around one object or the text of its scene
  # (aligned to `cell` px, or to 8 px when placement is free); 0 = whole images. The
  # network is convolutional and its cost per step is per pixel; most pixels of a scene
  # are background. Evaluation always uses whole images.
  crop: int = 0

  def check(self):
    for name in ("image_size", "batch_size", "eval_images", "eval_batch_size", "max_objects"):
      need(getattr(self, name) >= 1, name, f"{getattr(self, name)}: expected >= 1")
    need(0.0 <= self.text_prob <= 1.0, "text_prob", f"{self.text_prob}: expected in [0, 1]")
    need(self.cell >= 0, "cell", f"{self.cell}: expected >= 0 (0 = objects placed freely)")
    need(self.crop == 0 or (self.crop % 8 == 0 and self.crop <= self.image_size
                            and self.crop % (self.cell or 8) == 0), "crop",
         f"{self.crop}: expected 0 or a multiple of 8 and of cell ({self.cell}) up to "
         f"image_size ({self.image_size})")


@dataclasses.dataclass(frozen=True)
class Disc(Typed):
  """The optional patch-GAN discriminator and its hinge loss."""

  # Train it and add the generator's adversarial loss.
  enabled: bool
  # The adversarial terms count from this step (0 before).
  start_step: int
  # Weight of the generator's adversarial loss.
  weight: float
  # Its peak learning rate (the VQ's schedule shape).
  lr: float
  # Width of its first convolution.
  channels: int
  # Its strided convolutions.
  num_layers: int
  # GroupNorm groups of its layers.
  groups: int


@dataclasses.dataclass(frozen=True)
class Train(Typed):
  """The objective, optimizer, codebook maintenance and loop of VQ training."""

  # Training steps.
  steps: int
  # Peak learning rate (linear warm-up, then cosine decay).
  lr: float
  # Warm-up steps from 0.
  warmup_steps: int
  # The cosine ends at lr * final_lr_frac.
  final_lr_frac: float
  # AdamW's first-moment decay.
  b1: float
  # AdamW's second-moment decay.
  b2: float
  # AdamW's weight decay.
  weight_decay: float
  # Global gradient-norm clip.
  grad_clip: float
  # Reconstruction loss: l1_weight * |error| + l2_weight * error^2.
  l1_weight: float
  # (see l1_weight)
  l2_weight: float
  # Codebook loss (unused with the EMA codebook).
  codebook_weight: float
  # Commitment loss (encoder outputs towards their codes).
  commitment_weight: float
  # Decay of the running share of positions per code.
  usage_decay: float
  # Dead codes restart from encoder outputs every this many steps ...
  restart_every: int
  # ... before this step.
  restart_until: int
  # A code is dead below restart_threshold / codebook_size of the positions.
  restart_threshold: float
  # The optional discriminator.
  disc: Disc
  # A metrics row every this many steps (and at the last).
  log_every: int
  # A checkpoint every this many steps (and at the last of a run).
  checkpoint_every: int
  # Validation every this many steps (0: only at the end).
  eval_every: int
  # Checkpoints kept (None: all).
  max_checkpoints: int | None
  # Extra weight of foreground pixels in the pixel loss (0 = off).
  foreground_weight: float = 0.0
  # Weight of the image-gradient (edge sharpness) loss (0 = off).
  gradient_weight: float = 0.0
  # Extra weight of pixels next to colour edges in the pixel loss (0 = off).
  edge_weight: float = 0.0
  # 0: the codebook is learned by its loss (Emu3); else the decay of its EMA update.
  codebook_ema_decay: float = 0.0
  # Laplace smoothing of the EMA cluster sizes.
  codebook_ema_epsilon: float = 1e-5

  def check(self):
    for name in ("steps", "restart_every", "log_every", "checkpoint_every"):
      need(getattr(self, name) >= 1, name, f"{getattr(self, name)}: expected >= 1")
    need(self.eval_every >= 0, "eval_every", f"{self.eval_every}: expected >= 0 (0 = only "
         "at the end)")
    need(self.max_checkpoints is None or self.max_checkpoints >= 1, "max_checkpoints",
         f"{self.max_checkpoints}: expected >= 1 or None (keep all)")
    for name in ("l1_weight", "l2_weight", "codebook_weight", "commitment_weight",
                 "foreground_weight", "edge_weight", "gradient_weight"):
      need(getattr(self, name) >= 0, name, f"{getattr(self, name)}: expected >= 0")
    need(self.l1_weight > 0 or self.l2_weight > 0, "l2_weight",
         "l1_weight and l2_weight are both 0: no reconstruction loss")
    need(0.0 <= self.codebook_ema_decay < 1.0, "codebook_ema_decay",
         f"{self.codebook_ema_decay}: expected in [0, 1) (0 = codebook learned by the "
         "codebook loss, as Emu3)")
    need(self.codebook_ema_epsilon > 0, "codebook_ema_epsilon",
         f"{self.codebook_ema_epsilon}: expected > 0")

  @property
  def weighs_pixels(self) -> bool:
    """Whether some pixels weigh more in the reconstruction loss."""
    return bool(self.foreground_weight or self.edge_weight)

  @property
  def codebook_loss_weight(self) -> float:
    """The codebook loss's weight in the objective: 0 when EMA moves the codebook."""
    return 0.0 if self.codebook_ema_decay else self.codebook_weight


@dataclasses.dataclass(frozen=True, eq=False)
class VQExperiment:
  """A VQ tokenizer experiment, resolved (module doc)."""

  # Data order, initialisation and code restarts.
  seed: int
  # The VQ sizes (model/vq/config.py, checked there).
  model: ml_collections.FrozenConfigDict
  # The scene images.
  data: Data
  # Objective, optimizer and loop.
  train: Train
  # The experiment file's ConfigDict as given (W/config.json and every checkpoint hold it).
  config: ml_collections.FrozenConfigDict


def _with_defaults(cls, section, where: str, **nested):
  """`cls` from a ConfigDict section; its fields with a default may be left out."""
  values = section.to_dict() if hasattr(section, "to_dict") else dict(section)
  for f in dataclasses.fields(cls):
    if f.default is not dataclasses.MISSING:
      values.setdefault(f.name, f.default)
  for name in nested:
    values.pop(name, None)
  return from_dict(cls, values, where, **nested)


def resolve(config: Any) -> VQExperiment:
  """The typed VQExperiment of an experiment file's ConfigDict (a VQExperiment is taken
  as it is); raises ConfigError (a ValueError) naming the field."""
  if isinstance(config, VQExperiment):
    return config
  known = ("seed", "model", "data", "train")
  for name in config.keys():
    need(name in known, f"config.{name}", f"unknown field; known: {sorted(known)}")
  for name in known:
    need(name in config, f"config.{name}", "missing")
  need(isinstance(config.seed, int) and not isinstance(config.seed, bool), "config.seed",
       f"{config.seed!r}: expected an int")
  try:
    vq_config.validate(config.model)
  except (ValueError, TypeError, AttributeError, KeyError) as e:
    raise ConfigError("config.model", str(e)) from None
  need("disc" in config.train, "config.train.disc", "missing")
  disc = from_dict(Disc, config.train.disc, "config.train.disc")
  return VQExperiment(seed=int(config.seed),
                      model=ml_collections.FrozenConfigDict(config.model),
                      data=_with_defaults(Data, config.data, "config.data"),
                      train=_with_defaults(Train, config.train, "config.train", disc=disc),
                      config=ml_collections.FrozenConfigDict(config))


def check_config(config: Any) -> VQTokenizer:
  """`resolve`, then the tokenizer of its model; raises a ValueError naming the field."""
  return VQTokenizer(resolve(config).model)
