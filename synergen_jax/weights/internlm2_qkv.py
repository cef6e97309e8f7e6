"""InternLM2's packed `attention.wqkv` projection <-> separate q / k / v projections.

InternLM2's modeling code computes `qkv = wqkv(x)` and splits the output features as

  qkv: [..., (kv_heads, groups + 2, head_dim)]    groups = num_heads // kv_heads
  q = qkv[..., :groups, :]  -> heads (kv_head, group) in that order, i.e. head h*groups + g
  k = qkv[..., -2, :]       v = qkv[..., -1, :]

so for each KV group the rows of the weight are [q_1 ... q_groups, k, v], each head_dim
rows. Weights are in PyTorch Linear layout [out_features, in_features].
"""

import numpy as np


def unpack_wqkv(wqkv: np.ndarray, num_heads: int, num_kv_heads: int,
                head_dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """wqkv [(kv_heads*(groups+2)*head_dim), embed] -> q [heads*head_dim, embed],
  k, v [kv_heads*head_dim, embed] (Linear layout, heads in HF order)."""
  groups = num_heads // num_kv_heads
  rows = num_kv_heads * (groups + 2) * head_dim
  if wqkv.ndim != 2 or wqkv.shape[0] != rows:
    raise ValueError(f"InternLM2 wqkv has shape {wqkv.shape}; expected ({rows}, embed) for "
                     f"{num_heads} heads, {num_kv_heads} KV heads, head_dim {head_dim}")
  w = wqkv.reshape(num_kv_heads, groups + 2, head_dim, -1)
  q = w[:, :groups].reshape(num_heads * head_dim, -1)
  k = w[:, -2].reshape(num_kv_heads * head_dim, -1)
  v = w[:, -1].reshape(num_kv_heads * head_dim, -1)
  return q, k, v


def pack_wqkv(q: np.ndarray, k: np.ndarray, v: np.ndarray, num_heads: int,
              num_kv_heads: int, head_dim: int) -> np.ndarray:
  """Inverse of `unpack_wqkv`."""
  groups = num_heads // num_kv_heads
  embed = q.shape[-1]
  qg = q.reshape(num_kv_heads, groups, head_dim, embed)
  kg = k.reshape(num_kv_heads, 1, head_dim, embed)
  vg = v.reshape(num_kv_heads, 1, head_dim, embed)
  return np.concatenate([qg, kg, vg], axis=1).reshape(-1, embed)
