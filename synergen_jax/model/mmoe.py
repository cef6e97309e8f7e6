"""Modality-routed FFN experts (MMoE): a text expert and a vision expert per layer.

Routing is hard: a folded image token (`is_image`) runs the vision expert, every other
token (text and all special tokens) the text expert. Both experts are SwiGLU FFNs of
the same shape; attention and norms stay shared (in the decoder block).

Three implementations with identical parameters:
- `reference`: run both experts on every token and select (2x the FFN FLOPs).
- `sorted`:    sort tokens by modality, run one grouped matmul (`jax.lax.ragged_dot`,
               which lowers to grouped-GEMM kernels on TPU/GPU) so each token runs only
               its own expert, then un-sort.
- `gmm`:       the same sort, but the grouped matmuls are JAX's Pallas megablox kernels
               (`gmm`, weight gradient `tgmm`, only for the experts being trained:
               `_expert_gmm`). For TPUs whose libtpu expands
               `ragged_dot` into a dense matmul over both experts (v5e, v6e with libtpu
               0.0.52, docs/TPU_FIT.md). Off TPU the same kernels run in Pallas
               interpret mode (slow: tests and checks only; use `sorted` on CPU / GPU).
"""

import contextlib
import dataclasses
import functools
import importlib

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from synergen_jax import sharding
from synergen_jax.model.layers import default_kernel_init

# The megablox kernels without their custom VJP (`_expert_gmm` brings its own). Imported
# by module name: the package's `gmm` attribute is the custom-VJP op, not this module.
megablox = importlib.import_module("jax.experimental.pallas.ops.tpu.megablox.gmm")


class ExpertWeights(nn.Module):
  """The three SwiGLU kernels of one expert: gate, up [embed, mlp], down [mlp, embed]."""

  embed_dim: int
  mlp_dim: int
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self):
    def kernel(name, shape, axes):
      return self.param(name, nn.with_logical_partitioning(default_kernel_init(1), axes),
                        shape, self.param_dtype)

    return (kernel("gate", (self.embed_dim, self.mlp_dim), ("embed", "mlp")),
            kernel("up", (self.embed_dim, self.mlp_dim), ("embed", "mlp")),
            kernel("down", (self.mlp_dim, self.embed_dim), ("mlp", "embed")))


def _swiglu(x, gate, up, down, dtype):
  x = x.astype(dtype)
  g, u = _named_gate_up(x @ gate.astype(dtype), x @ up.astype(dtype))
  return (nn.silu(g) * u) @ down.astype(dtype)


def _named_gate_up(gate_out, up_out):
  """The FFN's gate and up outputs [..., mlp], named for the remat policies that keep
  them (decoder.REMAT_POLICIES: the FFN backward then needs no recomputed matmul)."""
  return checkpoint_name(gate_out, "ffn_gate"), checkpoint_name(up_out, "ffn_up")


@jax.custom_vjp
def _permute(x, order, inverse):
  """x[order] for a permutation `order` whose inverse is known.

  The gradient is another gather (g[inverse]) instead of the scatter-add XLA would
  emit for a general gather.
  """
  return x[order]


def _permute_fwd(x, order, inverse):
  return x[order], (order, inverse)


def _permute_bwd(res, g):
  order, inverse = res
  return g[inverse], None, None


_permute.defvjp(_permute_fwd, _permute_bwd)


def _sorted_experts_local(x, is_image, text_w, vision_w, dtype):
  """x: [batch, length, embed]; each token through its own expert via ragged_dot."""
  batch, length, embed = x.shape
  flat = x.reshape(batch * length, embed).astype(dtype)  # [tokens, embed]
  img = is_image.reshape(-1)
  order = jnp.argsort(img, stable=True)  # text tokens first, then image tokens
  inverse = jnp.argsort(order)
  num_image = jnp.sum(img, dtype=jnp.int32)
  group_sizes = jnp.stack([img.shape[0] - num_image, num_image]).astype(jnp.int32)
  xs = _permute(flat, order, inverse)
  gate, up, down = (jnp.stack([t, v]).astype(dtype) for t, v in zip(text_w, vision_w))
  g, u = _named_gate_up(jax.lax.ragged_dot(xs, gate, group_sizes),
                        jax.lax.ragged_dot(xs, up, group_sizes))
  h = nn.silu(g) * u  # [tokens, mlp]
  ys = jax.lax.ragged_dot(h, down, group_sizes)  # [tokens, embed]
  return _permute(ys, inverse, order).reshape(batch, length, embed)


# Megablox tiles: (rows, contracting, output) targets. Rows are padded to a multiple of
# the row tile; the contracting and output tiles must divide embed_dim and mlp_dim.
GMM_TILE_ROWS = 512
GMM_TILE_COLS = 1024
_LANES = 128  # a model-dim tile is the whole dim, or a multiple of the 128-lane width
_ROW_ALIGN = 16  # a row tile below GMM_TILE_ROWS: multiple of the bf16 sublane tile


def gmm_col_tile(dim: int, target: int | None = None) -> int | None:
  """The megablox tile of a model dim (embed_dim or mlp_dim): the whole dim if it is at
  most `target` (default GMM_TILE_COLS), else the largest multiple of 128 <= target
  dividing it (None if none). E.g. Qwen2-0.5B: 896 -> 896, 4864 -> 256."""
  target = target or GMM_TILE_COLS
  if dim <= target:
    return dim
  for t in range(target // _LANES * _LANES, 0, -_LANES):
    if dim % t == 0:
      return t
  return None


def gmm_check_dims(embed_dim: int, mlp_dim: int, target: int | None = None) -> dict:
  """{dim: tile} for both model dims; ValueError naming the field that has no tile."""
  target = target or GMM_TILE_COLS
  tiles = {}
  for field, dim in (("embed_dim", embed_dim), ("mlp_dim", mlp_dim)):
    t = gmm_col_tile(dim, target)
    if t is None:
      raise ValueError(
          f"model.{field} = {dim}: mmoe_impl='gmm' (Pallas megablox) needs it <= {target} "
          f"or divisible by a multiple of {_LANES} that is <= {target} (its kernel tile); "
          "use mmoe_impl='sorted'")
    tiles[dim] = t
  return tiles


@dataclasses.dataclass(frozen=True)
class _GmmTiling:
  """Megablox tiling lookup (m, k, n) -> (tm, tk, tn), hashable (a static argument).

  The forward and the custom VJP's backward kernels (gmm with the transposed weight,
  tgmm for the weight gradient) call it with their own (k, n), always among the two
  model dims, so each model dim gets the same tile everywhere."""

  tm: int
  cols: tuple[tuple[int, int], ...]  # (dim, tile) pairs

  def __call__(self, m, k, n):
    cols = dict(self.cols)
    return self.tm, cols[k], cols[n]


def _gmm_platform_interpret() -> bool:
  """Interpret mode unless the target is a TPU: the mesh's device platform under a mesh
  (a compile-only TPU mesh on a CPU host lowers the real Mosaic kernel), else the
  default backend (as `attention_ops.splash_attention` decides)."""
  mesh = jax.sharding.get_abstract_mesh()
  device = None if mesh.empty else getattr(mesh, "abstract_device", None)
  platform = getattr(device, "platform", None) or jax.default_backend()
  return platform != "tpu"


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class _Perturbed:
  """Which inputs of `_expert_gmm` are differentiated: a static residual (no leaves), so
  the backward knows at trace time which kernels to run (and the kernels' dtype, for
  their gradients, as the kernels themselves are saved only when lhs needs them)."""

  lhs: bool
  text: bool
  vision: bool
  kernel_dtype: jnp.dtype


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _expert_gmm(lhs, text_kernel, vision_kernel, group_sizes, tiling, interpret):
  """lhs rows [0, group_sizes[0]) @ text_kernel, the rest @ vision_kernel (megablox gmm).

  lhs: [rows, k] sorted by expert (text rows first); kernels [k, n] in lhs's dtype (the
  output's too); group_sizes: int32 [2] summing to rows. Unlike megablox's own
  `ops.gmm`, whose VJP runs `tgmm` for every group, the weight gradient is computed only
  for the kernels being differentiated: a training stage that freezes the text expert
  closes over it (no tangent), and its tgmm would be MXU work thrown away.
  """
  return megablox.gmm(lhs, jnp.stack([text_kernel, vision_kernel]), group_sizes,
                      lhs.dtype, tiling, interpret=interpret)  # [rows, n]


def _expert_gmm_fwd(lhs, text_kernel, vision_kernel, group_sizes, tiling, interpret):
  """symbolic_zeros: every array argument (not tiling, interpret) comes as a
  CustomVJPPrimal (.value, .perturbed); only what the backward of the perturbed inputs
  reads is saved."""
  x, gs = lhs.value, group_sizes.value
  rhs = jnp.stack([text_kernel.value, vision_kernel.value])  # [2, k, n]
  need = _Perturbed(lhs.perturbed, text_kernel.perturbed, vision_kernel.perturbed,
                    rhs.dtype)
  out = megablox.gmm(x, rhs, gs, x.dtype, tiling, interpret=interpret)  # [rows, n]
  res = (x if need.text or need.vision else None, rhs if need.lhs else None, gs, need)
  return out, res


def _wgrad_groups(need: _Perturbed) -> tuple[int, int, str | None]:
  """(first group, number of groups, named scope) of the one tgmm over the perturbed
  experts. The scope names a single-group tgmm in the compiled HLO's op_name, so
  `hlo_stats` can count the rows it visits rather than its all-rows cost estimate."""
  if need.text and need.vision:
    return 0, 2, None
  if need.vision:
    return 1, 1, "vision_expert_wgrad"
  return 0, 1, "text_expert_wgrad"


def _expert_wgrad(x, grad, group_sizes, need, tiling, interpret):
  """(d text_kernel, d vision_kernel), None for a kernel not differentiated: one tgmm
  whose grid visits only the row tiles of the perturbed groups."""
  first, count, scope = _wgrad_groups(need)
  with jax.named_scope(scope) if scope else contextlib.nullcontext():
    g = megablox.tgmm(x.swapaxes(0, 1), grad, group_sizes, need.kernel_dtype, tiling,
                      jnp.int32(first), count, interpret=interpret)  # [count, k, n]
  if count == 2:
    return g[0], g[1]
  return (g[0], None) if need.text else (None, g[0])


def _expert_gmm_bwd(tiling, interpret, res, grad):
  """Input gradient gmm(grad, kernels^T) as megablox's own VJP; weight gradients only
  for the perturbed kernels (`_expert_wgrad`); None (a zero) for the rest."""
  x, rhs, group_sizes, need = res
  if isinstance(grad, jax.custom_derivatives.SymbolicZero):
    return None, None, None, None
  d_lhs = d_text = d_vision = None
  if need.lhs:
    d_lhs = megablox.gmm(grad, rhs, group_sizes, grad.dtype, tiling, transpose_rhs=True,
                         interpret=interpret)  # [rows, k]
  if need.text or need.vision:
    d_text, d_vision = _expert_wgrad(x, grad, group_sizes, need, tiling, interpret)
  return d_lhs, d_text, d_vision, None


_expert_gmm.defvjp(_expert_gmm_fwd, _expert_gmm_bwd, symbolic_zeros=True)


def _gmm_experts_local(x, is_image, text_w, vision_w, dtype, interpret):
  """x: [batch, length, embed]; each token through its own expert via megablox gmm.

  Padding: megablox needs the row count to be a multiple of the row tile, and every row
  up to it must belong to a group (rows past the last group are never written). The
  tokens are padded with zero rows routed to the last (vision) group, so they sort after
  every real token: group sizes [text, image + pad] sum to the padded count. A zero row
  gives a zero output (SwiGLU has no bias) and adds nothing to the weight gradients; the
  pad rows are sliced off after un-sorting, so they get no cotangent either.
  """
  batch, length, embed = x.shape
  tokens = batch * length
  mlp = text_w[0].shape[1]
  tm = min(GMM_TILE_ROWS, -(-tokens // _ROW_ALIGN) * _ROW_ALIGN)
  rows = -(-tokens // tm) * tm
  pad = rows - tokens
  tiling = _GmmTiling(tm, tuple(sorted(gmm_check_dims(embed, mlp).items())))
  flat = x.reshape(tokens, embed).astype(dtype)
  img = is_image.reshape(-1)
  if pad:
    flat = jnp.concatenate([flat, jnp.zeros((pad, embed), dtype)])
    img = jnp.concatenate([img, jnp.ones((pad,), img.dtype)])
  order = jnp.argsort(img, stable=True)  # text, then image tokens, then the pad rows
  inverse = jnp.argsort(order)
  num_image = jnp.sum(img, dtype=jnp.int32)
  group_sizes = jnp.stack([rows - num_image, num_image]).astype(jnp.int32)
  xs = _permute(flat, order, inverse)
  gate, up, down = ((t.astype(dtype), v.astype(dtype)) for t, v in zip(text_w, vision_w))

  def gmm(lhs, kernels):
    return _expert_gmm(lhs, *kernels, group_sizes, tiling, interpret)

  g, u = _named_gate_up(gmm(xs, gate), gmm(xs, up))
  h = nn.silu(g) * u  # [rows, mlp]
  ys = gmm(h, down)  # [rows, embed]
  return _permute(ys, inverse, order)[:tokens].reshape(batch, length, embed)


def _sorted_experts(x, is_image, text_w, vision_w, dtype, impl="sorted"):
  """Sorts tokens within each data shard (not across the mesh) when a mesh is set.

  Under a mesh the sort + grouped matmul run in a `shard_map` that is manual over the
  batch mesh axes only: each shard sorts its own tokens (no all-to-all), expert
  weights are gathered over fsdp as any FSDP matmul would, and the tensor axis
  stays automatic. `impl="gmm"` runs the megablox kernels instead of `ragged_dot`;
  a Mosaic kernel cannot be partitioned automatically, so its `shard_map` is manual
  over every free mesh axis: rows split over the batch axes as before, the weights
  whole on every device (gathered over fsdp; over a tensor axis > 1 every device of a
  tensor group computes the same rows: no tensor parallelism for the FFN with `gmm`).
  """
  if impl == "gmm":
    local = functools.partial(_gmm_experts_local, dtype=dtype,
                              interpret=_gmm_platform_interpret())
  else:
    local = functools.partial(_sorted_experts_local, dtype=dtype)
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return local(x, is_image, text_w, vision_w)
  names = sharding.batch_mesh_axes(x.shape[0])
  manual = set(names)
  if impl == "gmm":
    manual = {a for a, t in zip(mesh.axis_names, mesh.axis_types)
              if t != jax.sharding.AxisType.Manual}
  if not manual:
    return local(x, is_image, text_w, vision_w)
  spec = jax.sharding.PartitionSpec(names or None)
  rep = jax.sharding.PartitionSpec()
  fn = jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, rep, rep), out_specs=spec,
                     axis_names=manual, check_vma=False)
  return fn(x, is_image, text_w, vision_w)


class MMoE(nn.Module):
  embed_dim: int
  mlp_dim: int
  vision_experts: bool = True
  impl: str = "sorted"
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, is_image):
    """x: [batch, length, embed]; is_image: [batch, length] bool."""
    text_w = ExpertWeights(self.embed_dim, self.mlp_dim, self.param_dtype, name="text_ffn")()
    if not self.vision_experts:
      return _swiglu(x, *text_w, self.dtype)
    vision_w = ExpertWeights(self.embed_dim, self.mlp_dim, self.param_dtype,
                             name="vision_ffn")()
    if self.impl == "reference":
      y_text = _swiglu(x, *text_w, self.dtype)
      y_vision = _swiglu(x, *vision_w, self.dtype)
      return jnp.where(is_image[..., None], y_vision, y_text)
    return _sorted_experts(x, is_image, text_w, vision_w, self.dtype, self.impl)
