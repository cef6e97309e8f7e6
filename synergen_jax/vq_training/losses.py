"""Losses, metrics and codebook maintenance for VQ-VAE training (pure jnp functions)."""

import jax
import jax.numpy as jnp


def reconstruction_loss(recon, target, l1_weight: float, l2_weight: float,
                        pixel_weight=None):
  """Weighted mean absolute + mean squared error over all pixels.

  `pixel_weight` [batch, H, W] (optional) weights each pixel; the result is then the
  weighted mean (sum of weighted errors / sum of weights).
  """
  diff = recon - target
  err = l1_weight * jnp.abs(diff) + l2_weight * diff**2  # [batch, H, W, C]
  if pixel_weight is None:
    return jnp.mean(err)
  w = pixel_weight[..., None]
  return jnp.sum(w * err) / (jnp.sum(w) * err.shape[-1])


def gradient_loss(recon, target):
  """Mean absolute difference of the horizontal and vertical pixel differences.

  Blur lowers the image gradient at edges and corners, so this term penalises it where
  the pixel loss barely does (a rounded corner moves few pixels).
  """
  def grads(x):  # [batch, H, W, C] -> differences along width and height
    return x[:, :, 1:] - x[:, :, :-1], x[:, 1:] - x[:, :-1]
  (rx, ry), (tx, ty) = grads(recon), grads(target)
  return 0.5 * (jnp.mean(jnp.abs(rx - tx)) + jnp.mean(jnp.abs(ry - ty)))


def foreground_mask(images, threshold: float = 0.1, dilate: int = 1):
  """float32 [batch, H, W]: 1 on pixels that differ from the image's background colour.

  images: [batch, H, W, C] in [-1, 1]. The background colour is the per-channel median of
  the image's border pixels (scenes are objects and text on a plain background, placed
  clear of the border; a median of the border is robust to an object touching it and
  far cheaper than one of the whole image); a pixel is foreground when any channel
  differs from it by more than `threshold`. The mask is dilated by `dilate` pixels so
  the background just outside an object's edge (which decides its shape as much as the
  inside) counts too.
  """
  b, h, w, c = images.shape
  border = jnp.concatenate([images[:, 0], images[:, -1], images[:, 1:-1, 0],
                            images[:, 1:-1, -1]], axis=1)  # [batch, 2 * (H + W) - 4, C]
  bg = jnp.median(border, axis=1)  # [batch, C]
  fg = jnp.max(jnp.abs(images - bg[:, None, None, :]), axis=-1) > threshold  # [batch, H, W]
  fg = fg.astype(jnp.float32)
  if dilate:
    k = 2 * dilate + 1
    fg = jax.lax.reduce_window(fg, -jnp.inf, jax.lax.max, (1, k, k), (1, 1, 1), "SAME")
  return fg


def edge_mask(images, threshold: float = 0.1):
  """float32 [batch, H, W]: 1 on pixels within one pixel of a colour edge, else 0.

  images: [batch, H, W, C] in [-1, 1]. A pixel is on an edge when, in some channel, its
  3 x 3 neighbourhood (clipped at the image border) spans more than `threshold`: a band
  two pixels wide, one on each side of every boundary. The scene scorer classifies an
  object's shape from where its boundary falls (rounded corners, blurred arms), which
  these few pixels decide and a plain per-pixel mean barely weighs.
  """
  win = (1, 3, 3, 1)
  hi = jax.lax.reduce_window(images, -jnp.inf, jax.lax.max, win, (1, 1, 1, 1), "SAME")
  lo = jax.lax.reduce_window(images, jnp.inf, jax.lax.min, win, (1, 1, 1, 1), "SAME")
  return (jnp.max(hi - lo, axis=-1) > threshold).astype(jnp.float32)  # [batch, H, W]


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


def ema_codebook_update(ema_count, ema_sum, codes, latents, decay: float, epsilon: float):
  """One EMA (online k-means) step of the codebook, with Laplace-smoothed cluster sizes.

  ema_count [K], ema_sum [K, D]: running (decayed) number and sum of the latents assigned
  to each code; codes [N] int, latents [N, D]: this batch's assignments. Returns
  (ema_count, ema_sum, codebook [K, D]) where codebook = ema_sum / smoothed count and
  smoothed count = (count + eps) / (total + K * eps) * total (no division by ~0 for codes
  that attract nothing; van den Oord et al. 2017, appendix A.1).
  """
  k = ema_count.shape[0]
  counts = jnp.zeros((k,), jnp.float32).at[codes].add(1.0)
  sums = jnp.zeros(ema_sum.shape, jnp.float32).at[codes].add(latents.astype(jnp.float32))
  ema_count = decay * ema_count + (1.0 - decay) * counts
  ema_sum = decay * ema_sum + (1.0 - decay) * sums
  total = jnp.sum(ema_count)
  smoothed = (ema_count + epsilon) / (total + k * epsilon) * total
  return ema_count, ema_sum, ema_sum / smoothed[:, None]


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
  is below threshold / K. Returns (codebook, usage, dead [K] bool: the restarted codes);
  restarted codes get usage 1 / K so they have time to attract vectors before they can be
  restarted again.
  """
  k = codebook.shape[0]
  dead = usage < threshold / k  # [K]
  pick_rng, noise_rng = jax.random.split(rng)
  picks = jax.random.randint(pick_rng, (k,), 0, latents.shape[0])
  fresh = latents[picks] + noise * jax.random.normal(noise_rng, codebook.shape, codebook.dtype)
  codebook = jnp.where(dead[:, None], fresh.astype(codebook.dtype), codebook)
  usage = jnp.where(dead, 1.0 / k, usage)
  return codebook, usage, dead
