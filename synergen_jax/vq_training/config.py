"""A VQ tokenizer experiment, resolved once into frozen typed dataclasses.

  exp = resolve(config)     # the experiment file's ConfigDict (experiments/vq_*.py)
  exp.train.lr, exp.data.batch_size, exp.train.disc.start_step

An experiment file returns a ConfigDict with `seed`, `model` (the VQ sizes,
`model/vq/config.py`, checked there), `data` and `train`; `resolve` checks every field
(unknown, missing, wrong type or value: a `ConfigError` naming the field) and casts it to
its type. A field with a default below is optional: the defaults are the one home of the
VQ defaults, "off" where a field was added later (Emu3's objective), so experiment
files written before it existed keep their meaning. Changes go through
`dataclasses.replace`.
"""

import dataclasses
from typing import Any

import ml_collections

from synergen_jax.experiment.errors import ConfigError
from synergen_jax.model.vq import config as vq_config
from synergen_jax.model.vq.tokenizer import VQTokenizer


@dataclasses.dataclass(frozen=True)
class Data:
  """The scene images a VQ tokenizer trains and is evaluated on (`vq_training/data.py`)."""

  image_size: int        # square renders of this many pixels
  batch_size: int        # images per step, split over the devices of the data axis
  text_prob: float       # share of scenes that carry a line of text
  eval_images: int       # validation scenes (validation seeds 0 .. eval_images - 1)
  eval_batch_size: int   # images per encode / decode call of the evaluation
  cell: int = 0          # object placement (scenes/render.py): 0 free, else a grid cell
  max_objects: int = 4   # objects per scene: 1 .. max_objects


@dataclasses.dataclass(frozen=True)
class Disc:
  """The optional patch-GAN discriminator and its hinge loss."""

  enabled: bool          # train it and add the generator's adversarial loss
  start_step: int        # the adversarial terms count from this step (0 before)
  weight: float          # weight of the generator's adversarial loss
  lr: float              # its peak learning rate (the VQ's schedule shape)
  channels: int          # width of its first convolution
  num_layers: int        # its strided convolutions
  groups: int            # GroupNorm groups of its layers


@dataclasses.dataclass(frozen=True)
class Train:
  """The objective, optimizer, codebook maintenance and loop of VQ training."""

  steps: int             # training steps
  lr: float              # peak learning rate (warm-up, then cosine decay)
  warmup_steps: int      # linear warm-up from 0
  final_lr_frac: float   # the cosine ends at lr * final_lr_frac
  b1: float              # AdamW betas
  b2: float
  weight_decay: float    # AdamW weight decay
  grad_clip: float       # global gradient-norm clip
  l1_weight: float       # reconstruction loss: l1 * |error| + l2 * error^2
  l2_weight: float
  codebook_weight: float  # codebook loss (unused with the EMA codebook)
  commitment_weight: float  # commitment loss (encoder outputs towards their codes)
  usage_decay: float     # decay of the running share of positions per code
  restart_every: int     # dead codes restart from encoder outputs every this many steps
  restart_until: int     # ... before this step
  restart_threshold: float  # a code is dead below restart_threshold / codebook_size usage
  disc: Disc             # the optional discriminator
  log_every: int         # a metrics row every this many steps (and at the last)
  checkpoint_every: int  # a checkpoint every this many steps (and at the last of a run)
  eval_every: int        # validation every this many steps (0: only at the end)
  max_checkpoints: int | None  # checkpoints kept (None: all)
  foreground_weight: float = 0.0  # extra weight of foreground pixels in the pixel loss
  gradient_weight: float = 0.0    # weight of the image-gradient (edge sharpness) loss
  edge_weight: float = 0.0        # extra weight of pixels next to colour edges
  codebook_ema_decay: float = 0.0  # 0: codebook learned by its loss (Emu3); else EMA decay
  codebook_ema_epsilon: float = 1e-5  # Laplace smoothing of the EMA cluster sizes

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

  seed: int              # data order, initialisation and code restarts
  model: ml_collections.FrozenConfigDict  # the VQ sizes (model/vq/config.py)
  data: Data
  train: Train
  config: ml_collections.FrozenConfigDict  # the experiment file's ConfigDict, as given
                                           # (W/config.json and every checkpoint hold it)


def _fail(field: str, msg: str):
  raise ConfigError(f"VQ experiment field `{field}`: {msg}")


_CASTS = {"int": int, "float": float, "int | None": int}


def _typed(cls, section, where: str, **nested):
  """`cls` from a ConfigDict section: unknown and missing fields are errors, numbers are
  cast to the field's type, bools must be bools."""
  fields = {f.name: f for f in dataclasses.fields(cls)}
  required = {n for n, f in fields.items() if f.default is dataclasses.MISSING}
  unknown = sorted(set(section.keys()) - set(fields))
  if unknown:
    raise ConfigError(f"VQ experiment: unknown `{where}` fields {unknown}; known fields "
                      f"are {sorted(fields)}")
  missing = sorted(required - set(section.keys()))
  if missing:
    raise ConfigError(f"VQ experiment: missing `{where}` fields {missing}")
  values = {}
  for name, f in fields.items():
    if name in nested or name not in section:
      continue
    v = section[name]
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind == "bool":
      if not isinstance(v, bool):
        _fail(f"{where}.{name}", f"must be a bool, got {v!r}")
    elif kind in _CASTS and not (v is None and "None" in kind):
      if isinstance(v, bool) or not isinstance(v, (int, float)):
        _fail(f"{where}.{name}", f"must be a number, got {v!r}")
      if kind.startswith("int") and v != int(v):
        _fail(f"{where}.{name}", f"must be an integer, got {v!r}")
      v = _CASTS[kind](v)
    values[name] = v
  return cls(**values, **nested)


def _check_data(d: Data) -> None:
  for name in ("image_size", "batch_size", "eval_images", "eval_batch_size", "max_objects"):
    if getattr(d, name) < 1:
      _fail(f"data.{name}", f"must be >= 1, got {getattr(d, name)}")
  if not 0.0 <= d.text_prob <= 1.0:
    _fail("data.text_prob", f"must be in [0, 1], got {d.text_prob}")
  if d.cell < 0:
    _fail("data.cell", f"must be >= 0 (0 = objects placed freely), got {d.cell}")


def _check_train(t: Train) -> None:
  for name in ("steps", "restart_every", "log_every", "checkpoint_every"):
    if getattr(t, name) < 1:
      _fail(f"train.{name}", f"must be >= 1, got {getattr(t, name)}")
  if t.eval_every < 0:
    _fail("train.eval_every", f"must be >= 0 (0 = only at the end), got {t.eval_every}")
  if t.max_checkpoints is not None and t.max_checkpoints < 1:
    _fail("train.max_checkpoints", f"must be >= 1 or None (keep all), got {t.max_checkpoints}")
  for name in ("l1_weight", "l2_weight", "codebook_weight", "commitment_weight"):
    if getattr(t, name) < 0:
      _fail(f"train.{name}", f"must be >= 0, got {getattr(t, name)}")
  if t.l1_weight == 0 and t.l2_weight == 0:
    _fail("train.l2_weight", "l1_weight and l2_weight are both 0: no reconstruction loss")
  for name in ("foreground_weight", "edge_weight", "gradient_weight"):
    if getattr(t, name) < 0:
      _fail(f"train.{name}", f"must be a number >= 0 (0 = off), got {getattr(t, name)!r}")
  if not 0.0 <= t.codebook_ema_decay < 1.0:
    _fail("train.codebook_ema_decay", f"must be in [0, 1) (0 = codebook learned by the "
          f"codebook loss, as Emu3), got {t.codebook_ema_decay!r}")
  if t.codebook_ema_epsilon <= 0:
    _fail("train.codebook_ema_epsilon", f"must be > 0, got {t.codebook_ema_epsilon!r}")


def resolve(config: Any) -> VQExperiment:
  """The typed VQExperiment of an experiment file's ConfigDict (a VQExperiment is taken
  as it is); raises ConfigError (a ValueError) naming the field."""
  if isinstance(config, VQExperiment):
    return config
  for name in ("seed", "model", "data", "train"):
    if name not in config:
      raise ConfigError(f"VQ experiment: missing field `{name}`")
  unknown = sorted(set(config.keys()) - {"seed", "model", "data", "train"})
  if unknown:
    raise ConfigError(f"VQ experiment: unknown fields {unknown}; known fields are "
                      "['data', 'model', 'seed', 'train']")
  if isinstance(config.seed, bool) or not isinstance(config.seed, int):
    _fail("seed", f"must be an integer, got {config.seed!r}")
  try:
    vq_config.validate(config.model)
  except (ValueError, TypeError, AttributeError, KeyError) as e:
    raise ConfigError(f"VQ experiment `model`: {e}") from None
  data = _typed(Data, config.data, "data")
  _check_data(data)
  if "disc" not in config.train:
    raise ConfigError("VQ experiment: missing `train` fields ['disc']")
  disc = _typed(Disc, config.train.disc, "train.disc")
  train = _typed(Train, config.train, "train", disc=disc)
  _check_train(train)
  return VQExperiment(seed=int(config.seed), model=ml_collections.FrozenConfigDict(config.model),
                      data=data, train=train,
                      config=ml_collections.FrozenConfigDict(config))


def check_config(config: Any) -> VQTokenizer:
  """`resolve`, then the tokenizer of its model; raises a ValueError naming the field."""
  return VQTokenizer(resolve(config).model)
