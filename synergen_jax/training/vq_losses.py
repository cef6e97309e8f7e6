"""Losses, metrics and codebook maintenance for VQ-VAE training (pure jnp functions)."""

import jax
import jax.numpy as jnp


def reconstruction_loss(recon, target, l1_weight: float, l2_weight: float):
  """Weighted mean absolute + mean squared error over all pixels."""
  diff = recon - target
  return l1_weight * jnp.mean(jnp.abs(diff)) + l2_weight * jnp.mean(diff**2)


def psnr(recon, target, data_range: float = 2.0):
  """Mean per-image PSNR (dB) of images in [-1, 1] (data_range 2) or [0, 255] (255)."""
  mse = jnp.mean((recon - target) ** 2, axis=tuple(range(1, recon.ndim)))  # [batch]
  return jnp.mean(10.0 * jnp.log10(data_range**2 / jnp.maximum(mse, 1e-10)))


def code_histogram(codes, codebook_size: int):
  """float32 [codebook_size] counts of each code in `codes` (any shape)."""
  return jnp.zeros((codebook_size,), jnp.float32).at[codes.reshape(-1)].add(1.0)


def usage_and_perplexity(counts):
  """(fraction of codes used at least once, perplexity exp(H) of the code distribution)."""
  total = jnp.maximum(jnp.sum(counts), 1.0)
  p = counts / total
  entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
  return jnp.mean(counts > 0), jnp.exp(entropy)


def hinge_d_loss(logits_real, logits_fake):
  """Discriminator hinge loss."""
  return 0.5 * (jnp.mean(jax.nn.relu(1.0 - logits_real)) + jnp.mean(jax.nn.relu(1.0 + logits_fake)))


def generator_adv_loss(logits_fake):
  """Generator's adversarial loss against a hinge discriminator."""
  return -jnp.mean(logits_fake)


def restart_dead_codes(rng, codebook, usage, latents, threshold: float, noise: float = 1e-3):
  """Replaces rarely used codes with randomly chosen encoder outputs of this batch.

  codebook [K, D]; usage [K] (running share of positions per code, sums to ~1);
  latents [N, D] (this batch's pre-quantisation vectors). A code is dead when its usage
  is below threshold / K. Returns (codebook, usage, number restarted); restarted codes get
  usage 1 / K so they have time to attract vectors before they can be restarted again.
  """
  k = codebook.shape[0]
  dead = usage < threshold / k  # [K]
  pick_rng, noise_rng = jax.random.split(rng)
  picks = jax.random.randint(pick_rng, (k,), 0, latents.shape[0])
  fresh = latents[picks] + noise * jax.random.normal(noise_rng, codebook.shape, codebook.dtype)
  codebook = jnp.where(dead[:, None], fresh.astype(codebook.dtype), codebook)
  usage = jnp.where(dead, 1.0 / k, usage)
  return codebook, usage, jnp.sum(dead)
