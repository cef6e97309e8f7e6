"""Attention kernels behind one signature, chosen by config.

All take q [batch, q_len, heads, head_dim], k/v [batch, kv_len, kv_heads, head_dim]
(grouped-query: heads is a multiple of kv_heads) and return [batch, q_len, heads, head_dim].

- `xla`:    `jax.nn.dot_product_attention(implementation="xla")` with an explicit mask.
- `cudnn`:  the same call's cuDNN flash implementation (NVIDIA GPUs, bf16/fp16).
- `splash`: Pallas TPU splash attention (causal + segment ids); `interpret=True` runs
            the same kernel on CPU, which is how the tests check it.
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as splash_mask


def causal_segment_mask(q_segment_ids: jax.Array, kv_segment_ids: jax.Array) -> jax.Array:
  """[batch, 1, q_len, kv_len] bool: same segment and key not after query.

  Padding (segment 0) attends to padding only, so no row is fully masked.
  """
  q_len, kv_len = q_segment_ids.shape[1], kv_segment_ids.shape[1]
  causal = jnp.arange(q_len)[:, None] >= jnp.arange(kv_len)[None, :]  # [q, kv]
  same = q_segment_ids[:, :, None] == kv_segment_ids[:, None, :]  # [b, q, kv]
  return (same & causal[None])[:, None]


def xla_attention(q, k, v, mask):
  """mask: [batch, 1, q_len, kv_len] bool (True = attend)."""
  return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation="xla")


def cudnn_attention(q, k, v, segment_ids):
  """cuDNN flash attention: causal mask + segment mask (NVIDIA GPU only)."""
  seg_mask = segment_ids[:, None, :, None] == segment_ids[:, None, None, :]
  return jax.nn.dot_product_attention(
      q, k, v, mask=seg_mask, is_causal=True, implementation="cudnn")


SPLASH_MIN_BLOCK = 128  # Pallas splash block sizes are multiples of the 128-lane width


@functools.lru_cache(maxsize=32)
def _splash_kernel(q_len: int, num_heads: int, block: int, interpret: bool):
  mask = splash_mask.MultiHeadMask(
      [splash_mask.CausalMask((q_len, q_len)) for _ in range(num_heads)])
  # The fused backward kernel computes dq inside the dk/dv kernel (5 matmuls per block
  # instead of 3 + 4 in two kernels that both recompute the scores).
  sizes = splash.BlockSizes(
      block_q=block, block_kv=block, block_kv_compute=block,
      block_q_dkv=block, block_kv_dkv=block, block_kv_dkv_compute=block,
      block_q_dq=None, block_kv_dq=None, use_fused_bwd_kernel=True,
  )
  return splash.make_splash_mqa_single_device(mask, block_sizes=sizes, interpret=interpret)


def splash_attention(q, k, v, segment_ids, *, block: int = 128, interpret: bool | None = None):
  """Pallas splash attention, causal within each packed segment.

  Grouped-query heads run as one multi-query kernel per KV head. `interpret`
  defaults to True unless the target is a TPU (the mesh's device platform under a
  mesh, so a TPU mesh of compile-only devices lowers the real Mosaic kernel on a CPU
  host; else the default backend), so the kernel can be checked on CPU. Under a mesh
  the kernel runs per shard in a `shard_map` manual over every (free) mesh axis (a
  Mosaic kernel cannot be partitioned automatically): rows split over the batch mesh
  axes and, when both head counts divide it, heads over the tensor axis; operands are
  replicated over the other axes.
  """
  mesh = jax.sharding.get_abstract_mesh()
  if interpret is None:
    device = None if mesh.empty else getattr(mesh, "abstract_device", None)
    platform = getattr(device, "platform", None) or jax.default_backend()
    interpret = platform != "tpu"
  free = () if mesh.empty else tuple(
      a for a, t in zip(mesh.axis_names, mesh.axis_types)
      if t != jax.sharding.AxisType.Manual)
  if free:
    batch_axes = nn.logical_to_mesh_axes(("activation_batch",))[0] or ()
    batch_axes = (batch_axes,) if isinstance(batch_axes, str) else tuple(batch_axes)
    batch_axes = tuple(a for a in batch_axes if a in free and mesh.shape[a] > 1)
    rows = math.prod(mesh.shape[a] for a in batch_axes)
    if q.shape[0] % rows:
      batch_axes = ()
    tensor = mesh.shape.get("tensor", 1)
    head_axis = ("tensor" if "tensor" in free and tensor > 1 and q.shape[2] % tensor == 0
                 and k.shape[2] % tensor == 0 else None)
    b = batch_axes or None
    qkv_spec = P(b, None, head_axis, None)
    fn = jax.shard_map(
        functools.partial(_splash_local, block=block, interpret=interpret), mesh=mesh,
        in_specs=(qkv_spec, qkv_spec, qkv_spec, P(b, None)), out_specs=qkv_spec,
        axis_names=set(free), check_vma=False)
    return fn(q, k, v, segment_ids)
  return _splash_local(q, k, v, segment_ids, block=block, interpret=interpret)


def _splash_local(q, k, v, segment_ids, *, block: int, interpret: bool):
  batch, q_len, num_heads, head_dim = q.shape
  kv_heads = k.shape[2]
  group = num_heads // kv_heads
  block = min(block, q_len)
  if q_len % block or block % SPLASH_MIN_BLOCK:
    raise ValueError(
        f"splash attention needs the sequence length ({q_len}) to be a multiple of "
        f"its block size ({block}), itself a multiple of {SPLASH_MIN_BLOCK} (the kernel's "
        "lane width): pad the sequences (data seq_len) or use attention_backend='xla'")
  kernel = _splash_kernel(q_len, group, block, interpret)
  scale = 1.0 / np.sqrt(head_dim)
  # [batch, kv_heads, group, length, head_dim] and [batch, kv_heads, length, head_dim].
  qh = (q * scale).reshape(batch, q_len, kv_heads, group, head_dim).transpose(0, 2, 3, 1, 4)
  kh = k.transpose(0, 2, 1, 3)
  vh = v.transpose(0, 2, 1, 3)
  seg = segment_ids.astype(jnp.int32)

  def one_row(qr, kr, vr, sr):
    ids = splash.SegmentIds(q=sr, kv=sr)
    return jax.vmap(lambda qg, kg, vg: kernel(qg, kg, vg, segment_ids=ids))(qr, kr, vr)

  out = jax.vmap(one_row)(qh, kh, vh, seg)  # [batch, kv_heads, group, length, head_dim]
  return out.transpose(0, 3, 1, 2, 4).reshape(batch, q_len, num_heads, head_dim)
