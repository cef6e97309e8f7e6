"""Output projection + cross-entropy with its gradients computed in the forward pass.

`fused_cross_entropy` is `chunked_cross_entropy` (losses.py) with the classifier
`hidden @ concat(matrices)` folded in and a custom VJP (`model.loss_impl="fused"`, the
TPU experiments' setting). Under `jax.grad` its forward pass, chunk by chunk, computes
the logits once and from them at once the input gradient and the weight gradients:

  d nll / d logits = w * (softmax(logits) - onehot(target))
  d hidden = d logits @ W^T,   d W_i = hidden^T @ d logits[:, cols of W_i]

and the backward pass only scales what was kept by the incoming cotangent. Against the
chunked loss under `jax.checkpoint` (which recomputes every chunk's logits in the
backward pass) this saves one [positions, d] x [d, vocab] matmul per chunk, and:

- Each output matrix (e.g. the frozen pretrained LM head and the trainable new-token
  rows, kept as separate parameters) gets a weight gradient only if it is being
  differentiated (`symbolic_zeros`: the forward rule sees which inputs are perturbed),
  so a frozen vocabulary costs no weight-gradient matmul.
- Under a mesh it runs in a `shard_map` manual over the batch axes: the matrices are
  gathered once per call (per micro-batch), not in every chunk; each shard accumulates
  its weight gradients over its chunks in float32 and they are summed over the batch
  shards once, after the last chunk.

The gradients it keeps (float32 [d, V_i] per differentiated matrix, and [batch, n, d]
for the input) live from the forward to the backward pass. Without `jax.grad` (eval)
only the forward chunks run. Returns sums, like `chunked_cross_entropy`.
"""

import functools

import jax
import jax.numpy as jnp

from synergen_jax import sharding
from synergen_jax.model.losses import chunk_sums


def _chunks(x: jax.Array, chunk: int) -> jax.Array:
  """[batch, n, ...] (n a multiple of chunk) -> [n / chunk, batch, chunk, ...]."""
  b, n = x.shape[:2]
  return x.reshape(b, n // chunk, chunk, *x.shape[2:]).swapaxes(0, 1)


def _unchunk(x: jax.Array) -> jax.Array:
  """Inverse of `_chunks`."""
  c, b, k = x.shape[:3]
  return x.swapaxes(0, 1).reshape(b, c * k, *x.shape[3:])


def _logits(h, matrix, dtype):
  return jnp.einsum("bcd,dv->bcv", h.astype(dtype), matrix,
                    preferred_element_type=jnp.float32)  # [batch, chunk, vocab] f32


def _local(hidden, targets, weights, matrices, chunk, dtype, with_grads):
  """One shard's sums (and, if `with_grads` says so, gradients) over its rows.

  with_grads: None (forward only) or a tuple of bools, one per matrix (weight gradient
  wanted?). Returns (nll, correct, d_hidden | None, (d_matrix_i | None, ...)).
  """
  widths = [m.shape[1] for m in matrices]
  matrix = jnp.concatenate([m.astype(dtype) for m in matrices], axis=1)  # [d, vocab]
  hs, ts, ws = _chunks(hidden, chunk), _chunks(targets, chunk), _chunks(weights, chunk)
  zero = jnp.zeros((), jnp.float32)

  if with_grads is None:
    def fwd_body(carry, xs):
      h, t, w = xs
      nll, correct, _ = chunk_sums(_logits(h, matrix, dtype), t, w)
      return (carry[0] + nll, carry[1] + correct), None

    (nll, correct), _ = jax.lax.scan(fwd_body, (zero, zero), (hs, ts, ws))
    return nll, correct, None, (None,) * len(matrices)

  offsets = [0]
  for width in widths:
    offsets.append(offsets[-1] + width)
  d_zero = tuple(jnp.zeros(m.shape, jnp.float32) if want else None
                 for m, want in zip(matrices, with_grads))

  def grad_body(carry, xs):
    nll_acc, correct_acc, d_acc = carry
    h, t, w = xs
    logits = _logits(h, matrix, dtype)
    nll, correct, lse = chunk_sums(logits, t, w)
    probs = jnp.exp(logits - lse[..., None])
    onehot = jax.nn.one_hot(t, logits.shape[-1], dtype=jnp.float32)
    d_logits = ((probs - onehot) * w[..., None]).astype(dtype)  # [batch, chunk, vocab]
    d_h = jnp.einsum("bcv,dv->bcd", d_logits, matrix,
                     preferred_element_type=jnp.float32)  # [batch, chunk, d]
    h_c = h.astype(dtype)
    d_new = tuple(
        None if acc is None else acc + jnp.einsum(
            "bcd,bcv->dv", h_c, d_logits[..., lo:hi], preferred_element_type=jnp.float32)
        for acc, lo, hi in zip(d_acc, offsets[:-1], offsets[1:]))
    return (nll_acc + nll, correct_acc + correct, d_new), d_h.astype(hidden.dtype)

  (nll, correct, d_mats), d_h = jax.lax.scan(grad_body, (zero, zero, d_zero), (hs, ts, ws))
  return nll, correct, _unchunk(d_h), d_mats


def _run(hidden, targets, weights, matrices, chunk, dtype, with_grads):
  """`_local` on every batch shard; sums and weight gradients reduced over shards."""
  names = sharding.batch_mesh_axes(hidden.shape[0])
  if not names:
    return _local(hidden, targets, weights, matrices, chunk, dtype, with_grads)
  P = jax.sharding.PartitionSpec
  rows, rep = P(names), P()

  wants = with_grads or ()

  def per_shard(h, t, w, ms):
    nll, correct, d_h, d_ms = _local(h, t, w, ms, chunk, dtype, with_grads)
    reduce = functools.partial(jax.lax.psum, axis_name=names)
    kept = tuple(reduce(d) for d in d_ms if d is not None)  # summed over shards once
    return (reduce(nll), reduce(correct)) + ((d_h, kept) if with_grads is not None else ())

  out_specs = (rep, rep)
  if with_grads is not None:
    out_specs += (rows, (rep,) * sum(wants))
  fn = jax.shard_map(per_shard, mesh=jax.sharding.get_abstract_mesh(),
                     in_specs=(rows, rows, rows, (rep,) * len(matrices)),
                     out_specs=out_specs, axis_names=set(names), check_vma=False)
  out = fn(hidden, targets, weights, tuple(matrices))
  if with_grads is None:
    return out[0], out[1], None, (None,) * len(matrices)
  kept = iter(out[3])
  return out[0], out[1], out[2], tuple(next(kept) if want else None for want in wants)


def _pad(hidden, targets, weights, chunk):
  pad = (-targets.shape[1]) % chunk
  if pad:
    hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
    targets = jnp.pad(targets, ((0, 0), (0, pad)))
    weights = jnp.pad(weights, ((0, 0), (0, pad)))
  return hidden, targets, weights


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _fused(hidden, targets, weights, matrices, chunk, dtype):
  nll, correct, _, _ = _run(hidden, targets, weights, matrices, chunk, dtype, None)
  return nll, correct


def _fused_fwd(hidden, targets, weights, matrices, chunk, dtype):
  # symbolic_zeros: every leaf is a CustomVJPPrimal(value, perturbed).
  wants = tuple(bool(m.perturbed) for m in matrices)
  values = [x.value for x in (hidden, targets, weights)]
  ms = tuple(m.value for m in matrices)
  nll, correct, d_h, d_ms = _run(*values, ms, chunk, dtype, wants)
  keep_h = d_h if hidden.perturbed else None
  return (nll, correct), (keep_h, d_ms, ms)


def _fused_bwd(chunk, dtype, res, cts):
  del chunk, dtype
  d_h, d_ms, ms = res
  ct = cts[0]  # d loss / d nll; `correct` is not differentiable
  if isinstance(ct, jax.custom_derivatives.SymbolicZero):
    ct = jnp.zeros((), jnp.float32)
  scale = lambda g, like: (ct * g).astype(like.dtype)
  g_h = None if d_h is None else scale(d_h, d_h)
  g_ms = tuple(None if d is None else scale(d, m) for d, m in zip(d_ms, ms))
  return g_h, None, None, g_ms


_fused.defvjp(_fused_fwd, _fused_bwd, symbolic_zeros=True)


def fused_cross_entropy(hidden: jax.Array, targets: jax.Array, weights: jax.Array,
                        matrices, chunk_size: int, dtype=jnp.float32) -> dict[str, jax.Array]:
  """Weighted next-token cross-entropy of `hidden @ concat(matrices, axis=1)`.

  hidden: [batch, n, d]; targets: [batch, n] int (column of the concatenated classes);
  weights: [batch, n] float (not differentiated); matrices: tuple of [d, V_i] (e.g.
  the LM head and the new-token head); the projection runs in `dtype` with float32
  logits. Returns sums, as `chunked_cross_entropy`: {"nll", "weight", "correct"}.
  """
  n = targets.shape[1]
  chunk = max(1, min(int(chunk_size), n))
  weights = weights.astype(jnp.float32)
  h, t, w = _pad(hidden, targets, weights, chunk)
  nll, correct = _fused(h, t, w, tuple(matrices), chunk, jnp.dtype(dtype))
  return {"nll": nll, "weight": jnp.sum(weights), "correct": jax.lax.stop_gradient(correct)}
