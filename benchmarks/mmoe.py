"""MMoE speed: production (`sorted`, each token runs only its expert) vs `reference`.

  python benchmarks/mmoe.py [--tokens 8192 --embed 512 --mlp 2048 --image_frac 0.5]

Times a jitted forward and forward+backward of one MMoE layer for both
implementations in the same process and prints the ratios. On CPU, XLA lowers
`jax.lax.ragged_dot` to a masked dense matmul, so the FLOP saving only materialises
on backends with a grouped-matmul kernel (TPU, GPU); the figure printed is what this
machine measures.
"""

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from synergen_jax.model.mmoe import MMoE


def _time(fn, *args, repeats):
  jax.block_until_ready(fn(*args))  # compile
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t)
  return best


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--tokens", type=int, default=8192)
  ap.add_argument("--embed", type=int, default=512)
  ap.add_argument("--mlp", type=int, default=2048)
  ap.add_argument("--image_frac", type=float, default=0.5)
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--dtype", default="float32")
  args = ap.parse_args()
  rows = 8
  length = args.tokens // rows
  rng = np.random.default_rng(0)
  dtype = jnp.dtype(args.dtype)
  x = jnp.asarray(rng.normal(size=(rows, length, args.embed)), dtype)
  is_image = jnp.asarray(rng.random((rows, length)) < args.image_frac)
  params = nn.unbox(MMoE(args.embed, args.mlp).init(jax.random.key(0), x, is_image))
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); tokens {rows}x{length}, "
        f"embed {args.embed}, mlp {args.mlp}, image share {args.image_frac}, {args.dtype}")
  results = {}
  for impl in ("reference", "sorted"):
    mod = MMoE(args.embed, args.mlp, impl=impl, dtype=dtype)
    fwd = jax.jit(mod.apply)
    bwd = jax.jit(jax.grad(
        lambda p, x, m: jnp.sum(mod.apply(p, x, m).astype(jnp.float32)), argnums=(0, 1)))
    results[impl] = (_time(fwd, params, x, is_image, repeats=args.repeats),
                     _time(bwd, params, x, is_image, repeats=args.repeats))
  print(f"{'impl':<12s}{'forward ms':>14s}{'fwd+bwd ms':>14s}")
  for impl, (f, b) in results.items():
    print(f"{impl:<12s}{f * 1e3:>14.2f}{b * 1e3:>14.2f}")
  rf, rb = results["reference"]
  sf, sb = results["sorted"]
  print(f"speed-up of sorted over reference: forward {rf / sf:.2f}x, fwd+bwd {rb / sb:.2f}x")


if __name__ == "__main__":
  main()
