"""Nearest-code vector quantisation (Emu3's `Emu3VQVAEVectorQuantizer`).

Emu3 searches the nearest code by Euclidean distance. With `l2_normalize` (an option of
ours for training small tokenizers from scratch, off for Emu3 and imported weights) the
latents and the code vectors are l2-normalised first, so the search is by cosine
similarity and the decoder sees unit vectors (ViT-VQGAN's factorised, normalised codes,
which keep far more of the codebook in use).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

# Codebooks larger than this are searched in chunks, so the [positions, codes] distance
# matrix never exceeds positions x chunk (32,768 codes x a 64 x 64 grid would be 512 MiB
# per image in float32).
_CHUNK = 8192


def nearest_code(z, codebook, chunk: int = _CHUNK):
  """Index of the nearest codebook row (squared Euclidean) for each vector of z.

  Uses Emu3's |z|^2 + |e|^2 - 2 z.e formula; ties go to the lowest index, as torch.argmin.
  z: [..., dim], codebook: [codes, dim] -> int32 [...].
  """
  lead = z.shape[:-1]
  flat = z.reshape(-1, z.shape[-1]).astype(jnp.float32)  # [positions, dim]
  codebook = codebook.astype(jnp.float32)
  z_sq = jnp.sum(flat**2, axis=1, keepdims=True)  # [positions, 1]

  def distances(rows):  # rows: [n, dim] -> [positions, n]
    return z_sq + jnp.sum(rows**2, axis=1) - 2.0 * (flat @ rows.T)

  k = codebook.shape[0]
  if k <= chunk or k % chunk:
    return jnp.argmin(distances(codebook), axis=1).astype(jnp.int32).reshape(lead)

  def step(carry, xs):
    best_d, best_i = carry
    rows, offset = xs
    d = distances(rows)  # [positions, chunk]
    i = jnp.argmin(d, axis=1)
    d = jnp.take_along_axis(d, i[:, None], axis=1)[:, 0]
    better = d < best_d  # strict: earlier chunks win ties
    return (jnp.where(better, d, best_d), jnp.where(better, i + offset, best_i)), None

  init = (jnp.full((flat.shape[0],), jnp.inf, jnp.float32), jnp.zeros((flat.shape[0],), jnp.int32))
  chunks = codebook.reshape(k // chunk, chunk, -1)
  offsets = jnp.arange(0, k, chunk, dtype=jnp.int32)
  (_, idx), _ = jax.lax.scan(step, init, (chunks, offsets))
  return idx.reshape(lead)


def l2_normalize(x, eps: float = 1e-12):
  """x / max(|x|, eps) along the last axis (PyTorch's F.normalize)."""
  norm = jnp.sqrt(jnp.sum(jnp.square(x.astype(jnp.float32)), axis=-1, keepdims=True))
  return (x / jnp.maximum(norm, eps)).astype(x.dtype)


class VectorQuantizer(nn.Module):
  """The codebook: `codes(z)` finds nearest codes, `lookup(codes)` returns their vectors."""
  codebook_size: int
  embed_dim: int
  l2_normalize: bool = False

  def setup(self):
    bound = 1.0 / self.codebook_size

    def init(key, shape, dtype=jnp.float32):  # U(-1/K, 1/K), as Emu3
      return jax.random.uniform(key, shape, dtype, -bound, bound)

    self.embedding = nn.Embed(self.codebook_size, self.embed_dim, embedding_init=init,
                              name="embedding")

  def prepare(self, z):
    """The latents as the codebook compares them: l2-normalised when `l2_normalize`."""
    return l2_normalize(z) if self.l2_normalize else z

  def code_vectors(self):
    """[codebook_size, embed_dim]: the codebook as it is searched and looked up."""
    return self.prepare(self.embedding.embedding)

  def codes(self, z):  # [..., embed_dim] -> int32 [...]
    return nearest_code(self.prepare(z), self.code_vectors())

  def lookup(self, codes):  # int [...] -> [..., embed_dim]
    return self.prepare(jnp.take(self.embedding.embedding, codes, axis=0))

  def __call__(self, z):
    """Quantises z [..., embed_dim]: (straight-through z_q, codes, codebook, commitment).

    codebook loss  = mean |sg(z) - e|^2  (moves codes towards the encoder outputs)
    commitment loss = mean |z - sg(e)|^2 (keeps the encoder near its codes)
    With `l2_normalize`, z and e are the normalised vectors.
    """
    z = self.prepare(z)
    codes = nearest_code(jax.lax.stop_gradient(z), self.code_vectors())
    e = self.lookup(codes)
    codebook_loss = jnp.mean((jax.lax.stop_gradient(z) - e) ** 2)
    commitment_loss = jnp.mean((z - jax.lax.stop_gradient(e)) ** 2)
    z_q = z + jax.lax.stop_gradient(e - z)  # straight-through estimator
    return z_q, codes, codebook_loss, commitment_loss
