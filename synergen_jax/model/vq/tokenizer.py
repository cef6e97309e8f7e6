"""The image tokenizer API: uint8 images <-> int32 code grids, checked and jitted.

  tok = VQTokenizer(cfg)                      # cfg: a `vq.config` ConfigDict
  variables = tok.init(jax.random.key(0))     # or imported / restored variables
  codes = tok.encode(variables, images)       # uint8 [B, H, W, 3] -> int32 [B, H/p, W/p]
  images = tok.decode(variables, codes)       # int [B, h, w] -> uint8 [B, h*p, w*p, 3]
  encode_batch = tok.batch_encoder(variables) # data-parallel `images -> codes` (numpy),
                                              # for offline pretokenization
Pixels map to [-1, 1] as Emu3's image processor does (x / 127.5 - 1).
"""

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from synergen_jax import sharding
from synergen_jax.model.vq import config as vq_config
from synergen_jax.model.vq.vqvae import VQVAE


def images_to_float(images):
  """uint8 [..., 3] -> float32 in [-1, 1]."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def float_to_images(x):
  """float in ~[-1, 1] -> uint8 (rounded, clipped)."""
  return jnp.clip(jnp.round((x + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def data_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D ("data",) mesh over all (or the given) devices, with Auto axes."""
  n = len(devices) if devices is not None else jax.device_count()
  return jax.make_mesh((n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)


def init_compiler_options() -> dict:
  """XLA options for jitted parameter initialisation.

  On CPU, XLA's optimising backend spends ~30 s on the ~100 unrolled threefry /
  truncated-normal initialisers of even a tiny VQ-VAE; an init runs once, so it is
  compiled without backend optimisation (~3x faster to compile, same random bits).
  """
  return {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else {}


class VQTokenizer:
  """Checked, jitted encode/decode around the `VQVAE` module for one config."""

  def __init__(self, cfg: Any):
    vq_config.validate(cfg)
    self.config = ml_collections.FrozenConfigDict(cfg)
    self.model = VQVAE(self.config)
    self.factor = vq_config.downsample_factor(cfg)
    self._encode = jax.jit(self._encode_fn)
    self._decode = jax.jit(self._decode_fn)
    self._decode_float = jax.jit(
        lambda v, c: self.model.apply(v, c.astype(jnp.int32), method=VQVAE.decode))
    self._init = jax.jit(self.model.init, compiler_options=init_compiler_options())
    self._batch_encode_fns = {}  # mesh -> jitted data-parallel encode (compiled once)

  # ---- variables -------------------------------------------------------------------
  def init(self, rng: jax.Array, image_size: int | None = None) -> dict:
    """Fresh variables ({'params', 'batch_stats'}); sizes do not depend on image_size."""
    size = image_size or 2 * self.factor
    x = jnp.zeros((1, size, size, self.config.in_channels), jnp.float32)
    if isinstance(rng, jax.core.Tracer):  # inside a caller's jit / eval_shape: inline
      return dict(self.model.init(rng, x))
    return dict(self._init(rng, x))

  def abstract_variables(self) -> dict:
    """Shapes/dtypes of the variables, without allocating them."""
    return jax.eval_shape(self.init, jax.random.key(0))

  # ---- checks ----------------------------------------------------------------------
  def check_images(self, images) -> None:
    """Raises ValueError unless images is uint8 [batch, H, W, in_channels], H, W % p == 0."""
    c = self.config.in_channels
    if images.dtype != np.uint8:
      raise ValueError(f"images must be uint8 [batch, height, width, {c}], got dtype {images.dtype}")
    if images.ndim != 4:
      raise ValueError(f"images must have rank 4 [batch, height, width, {c}], got shape "
                       f"{tuple(images.shape)}")
    b, h, w, ch = images.shape
    if ch != c:
      raise ValueError(f"images must have {c} channels (last axis), got shape {tuple(images.shape)}")
    if h == 0 or w == 0 or h % self.factor or w % self.factor:
      raise ValueError(f"image size {h} x {w} is not a positive multiple of the tokenizer's "
                       f"downsampling factor {self.factor}")

  def check_codes(self, codes) -> None:
    """Raises ValueError unless codes is an integer [batch, h, w] grid of valid code ids."""
    if not jnp.issubdtype(codes.dtype, jnp.integer):
      raise ValueError(f"codes must be an integer array [batch, h, w], got dtype {codes.dtype}")
    if codes.ndim != 3:
      raise ValueError(f"codes must have rank 3 [batch, h, w], got shape {tuple(codes.shape)}")
    if 0 in codes.shape:
      raise ValueError(f"codes must be non-empty, got shape {tuple(codes.shape)}")
    try:
      lo, hi = int(codes.min()), int(codes.max())
    except jax.errors.ConcretizationTypeError:  # traced under jit: values unknown here
      return
    if lo < 0 or hi >= self.config.codebook_size:
      raise ValueError(f"codes must lie in [0, {self.config.codebook_size}), got values "
                       f"in [{lo}, {hi}]")

  # ---- encode / decode -------------------------------------------------------------
  def _encode_fn(self, variables, images):  # uint8 [B, H, W, 3] -> int32 [B, h, w]
    return self.model.apply(variables, images_to_float(images), method=VQVAE.encode)

  def _decode_fn(self, variables, codes):  # int [B, h, w] -> uint8 [B, H, W, 3]
    x = self.model.apply(variables, codes.astype(jnp.int32), method=VQVAE.decode)
    return float_to_images(x)

  def encode(self, variables, images) -> jax.Array:
    """uint8 images [batch, H, W, 3] -> int32 codes [batch, H / p, W / p]."""
    self.check_images(images)
    return self._encode(variables, images)

  def decode(self, variables, codes) -> jax.Array:
    """int codes [batch, h, w] -> uint8 images [batch, h * p, w * p, 3]."""
    self.check_codes(codes)
    return self._decode(variables, codes)

  def decode_float(self, variables, codes) -> jax.Array:
    """int codes [batch, h, w] -> float images in ~[-1, 1] (not rounded)."""
    self.check_codes(codes)
    return self._decode_float(variables, codes)

  def batch_encoder(self, variables, mesh: jax.sharding.Mesh | None = None
                    ) -> Callable[[np.ndarray], np.ndarray]:
    """A data-parallel `images -> codes` callable (numpy in, numpy out).

    The batch is split over the mesh's batch axes (`sharding.row_sharding`; padded to a
    multiple of their size and trimmed back); the variables are replicated once, up front.
    """
    mesh = mesh or data_mesh()
    n = math.prod(mesh.shape[a] for a in sharding.row_axes(mesh))
    batch_sharding = sharding.row_sharding(mesh)
    replicated = NamedSharding(mesh, P())
    variables = jax.device_put(variables, replicated)
    fn = self._batch_encode_fns.get(mesh)
    if fn is None:  # one jitted function per mesh: repeated evaluations do not recompile
      fn = jax.jit(self._encode_fn, in_shardings=(replicated, batch_sharding),
                   out_shardings=batch_sharding)
      self._batch_encode_fns[mesh] = fn

    def encode_batch(images: np.ndarray) -> np.ndarray:
      images = np.asarray(images)
      self.check_images(images)
      b = images.shape[0]
      pad = (-b) % n
      if pad:
        images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], np.uint8)])
      return np.asarray(fn(variables, images))[:b]

    return encode_batch
