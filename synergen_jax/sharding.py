"""Device mesh, the logical-axis rules table, the mesh context, sharded initialisation,
batch sharding (`row_sharding`: every batch array's placement).

Every parameter and key activation carries logical axis names (set in `model/`);
`LOGICAL_RULES` is the one table that maps them onto the mesh axes
("data", "fsdp", "tensor"). A logical axis whose mesh axes do not divide its size is
replicated instead (e.g. 2 KV heads on a tensor axis of 8).
"""

import contextlib
import math
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np
from flax.core import meta
from jax.experimental import mesh_utils
from jax.sharding import NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# Logical axis -> mesh axes (None = replicated). One table for the whole project.
LOGICAL_RULES: tuple[tuple[str, Any], ...] = (
    # Activations.
    ("activation_batch", BATCH_AXES),
    ("activation_length", None),
    ("activation_embed", None),
    ("activation_heads", "tensor"),
    ("activation_mlp", "tensor"),
    ("activation_vocab", "tensor"),
    # Parameters.
    ("layers", None),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
    ("vocab", "tensor"),
    ("new_vocab", None),
    ("codebook", "tensor"),
    ("vq_embed", None),
    ("grid_h", None),
    ("grid_w", None),
    ("fold_in", "fsdp"),
    ("fold_hidden", "tensor"),
    ("head_embed", "fsdp"),
    ("slots", None),
)


def resolve_mesh_shape(shape: Sequence[int], num_devices: int,
                       axis_names: Sequence[str] = MESH_AXES) -> tuple[int, ...]:
  """`shape` with its -1 (at most one) replaced by what the other sizes leave of
  `num_devices`; ValueError naming the numbers if the sizes cannot make that many."""
  shape = [int(s) for s in shape]
  if len(shape) != len(axis_names):
    raise ValueError(f"mesh shape {tuple(shape)} must have one size per axis {tuple(axis_names)}")
  if shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
    raise ValueError(f"mesh shape {tuple(shape)}: sizes must be positive, with at most one -1")
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape:
    if num_devices % known:
      raise ValueError(
          f"mesh shape {tuple(shape)}: the fixed sizes ({known}) do not divide the "
          f"{num_devices} devices")
    shape[shape.index(-1)] = num_devices // known
  if math.prod(shape) != num_devices:
    raise ValueError(
        f"mesh shape {tuple(shape)} has {math.prod(shape)} devices but "
        f"{num_devices} are present; expected sizes multiplying to {num_devices}")
  return tuple(shape)


def make_mesh(shape: Sequence[int], devices: Sequence[jax.Device] | None = None,
              axis_names: Sequence[str] = MESH_AXES) -> jax.sharding.Mesh:
  """Mesh of `shape` over the devices; one entry may be -1 (takes the rest).

  Devices of several TPU slices get a hybrid mesh whose first axis spans the slices.
  Raises ValueError naming `mesh` if the sizes do not multiply to the device count.
  """
  devices = list(devices if devices is not None else jax.devices())
  shape = list(resolve_mesh_shape(shape, len(devices), axis_names))
  axis_types = (jax.sharding.AxisType.Auto,) * len(axis_names)
  slices = len({getattr(d, "slice_index", 0) for d in devices})
  if slices > 1:
    return _multislice_mesh(shape, devices, axis_names, axis_types, slices)
  try:
    return jax.make_mesh(tuple(shape), tuple(axis_names), axis_types=axis_types,
                         devices=devices)
  except NotImplementedError:
    # A TPU torus whose physical axes no subset of multiplies to a mesh axis (e.g. 128 on
    # a 16 x 16 v6e slice): split physical axes (jax.make_mesh only does so on v5e).
    grid = mesh_utils.create_device_mesh(tuple(shape), devices,
                                         allow_split_physical_axes=True)
    return jax.sharding.Mesh(grid, tuple(axis_names), axis_types=axis_types)


def _multislice_mesh(shape, devices, axis_names, axis_types, slices: int) -> jax.sharding.Mesh:
  """Multi-slice pods: the first (data) axis spans the slices over DCN, the rest of the
  mesh lies inside each slice (ICI)."""
  if shape[0] % slices:
    raise ValueError(
        f"mesh shape {tuple(shape)}: the devices span {slices} slices, so the first "
        f"({axis_names[0]}) axis must be a multiple of {slices} (it spans the slices)")
  ici = (shape[0] // slices,) + tuple(shape[1:])
  dcn = (slices,) + (1,) * (len(shape) - 1)
  grid = mesh_utils.create_hybrid_device_mesh(ici, dcn, devices,
                                              allow_split_physical_axes=True)
  return jax.sharding.Mesh(grid, tuple(axis_names), axis_types=axis_types)


def _fit(spec: P, shape: Sequence[int], mesh: jax.sharding.Mesh) -> P:
  """Drops mesh axes from dims they do not divide (those dims are replicated)."""
  out = []
  for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
    if axes is None:
      out.append(None)
      continue
    names = (axes,) if isinstance(axes, str) else tuple(axes)
    kept = tuple(a for a in names if a in mesh.shape)
    # Keep the longest prefix of mesh axes that divides the dim (e.g. batch over data only).
    while kept and dim % math.prod(mesh.shape[a] for a in kept):
      kept = kept[:-1]
    out.append(None if not kept else (kept[0] if len(kept) == 1 else kept))
  return P(*out)


def logical_to_sharding(logical: Any, abstract: Any, mesh: jax.sharding.Mesh,
                        rules=LOGICAL_RULES) -> Any:
  """Tree of logical PartitionSpecs (+ shapes) -> tree of NamedShardings on `mesh`."""
  specs = nn.logical_to_mesh(logical, rules)

  def one(spec, x):
    return NamedSharding(mesh, _fit(spec if spec is not None else P(), x.shape, mesh))

  return jax.tree.map(one, specs, abstract, is_leaf=lambda x: isinstance(x, P) or x is None)


@contextlib.contextmanager
def mesh_context(mesh: jax.sharding.Mesh, rules=LOGICAL_RULES):
  """The mesh and logical-axis rules every jitted call of the model runs under
  (`jax.set_mesh(mesh)` + `nn.logical_axis_rules(rules)`)."""
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    yield


@contextlib.contextmanager
def no_mesh():
  """No mesh in context (`jax.set_mesh(None)`) for the block, whatever the caller set;
  inside a trace, where the mesh cannot change, the caller's context stays."""
  try:
    ctx = jax.set_mesh(None)
  except ValueError:  # under jit: set_mesh is not allowed
    ctx = contextlib.nullcontext()
  with ctx:
    yield


def unbox(tree: Any) -> Any:
  """Strips Flax's axis-metadata boxes without applying their sharding constraints.

  `nn.unbox` applies every `nn.Partitioned` / `nn.LogicallyPartitioned` box as a
  `with_sharding_constraint` whenever a mesh is in context (`jax.set_mesh`); on abstract
  shapes outside a trace that constraint fails ("The sharding on the input must be a
  NamedSharding since the target sharding has an AbstractMesh ..."), so anything built
  from abstract shapes would depend on whether the caller's mesh was active. Values,
  shapes and dtypes do not depend on the constraint; placements come from
  `logical_to_sharding` (`out_shardings` of the jitted inits).
  """
  def one(box):
    value = (box.unbox(apply_constraint=False) if isinstance(box, meta.Partitioned)
             else box.unbox())
    return unbox(value)

  return meta.map_axis_meta(one, tree)


def boxed_shapes(init_fn: Callable[..., Any], *args) -> Any:
  """`jax.eval_shape(init_fn, *args)` (boxed, with logical names) traced with no mesh in
  context, so the result is the same whether or not (and whichever) mesh the caller set."""
  with no_mesh():
    return jax.eval_shape(init_fn, *args)


def abstract_variables(init_fn: Callable[..., Any], *args) -> Any:
  """Unboxed abstract variables (ShapeDtypeStructs) of `init_fn(*args)`; any context."""
  return unbox(boxed_shapes(init_fn, *args))


def abstract_and_shardings(init_fn: Callable[..., Any], mesh: jax.sharding.Mesh, *args,
                           rules=LOGICAL_RULES) -> tuple[Any, Any]:
  """(unboxed abstract variables, their NamedShardings) of `init_fn(*args)`.

  Works whether or not a mesh is in context (the trainer builds its eval function lazily
  inside the training loop's `jax.set_mesh`).
  """
  boxed = boxed_shapes(init_fn, *args)
  logical = nn.get_partition_spec(boxed)
  abstract = unbox(boxed)
  return abstract, logical_to_sharding(logical, abstract, mesh, rules)


def sharded_init(init_fn: Callable[..., Any], mesh: jax.sharding.Mesh, *args,
                 rules=LOGICAL_RULES) -> tuple[Any, Any]:
  """Initialises unboxed variables directly into their shardings.

  abstract shapes -> logical specs -> NamedShardings -> jitted init with out_shardings.
  Returns (variables, shardings).
  """
  _, shardings = abstract_and_shardings(init_fn, mesh, *args, rules=rules)
  init = jax.jit(lambda *a: unbox(init_fn(*a)), out_shardings=shardings)
  with mesh_context(mesh, rules):
    variables = init(*args)
  return variables, shardings


def batch_mesh_axes(batch: int) -> tuple[str, ...]:
  """The axes of the active mesh (size > 1) that a batch of `batch` rows is split over
  (the logical `activation_batch` axis), for a `shard_map` manual over them; () without
  a mesh or when the rows do not divide over them (the caller then runs unsharded)."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return ()
  axes = nn.logical_to_mesh_axes(("activation_batch",))[0] or ()
  names = (axes,) if isinstance(axes, str) else tuple(axes)
  names = tuple(a for a in names if a in mesh.axis_names and mesh.shape[a] > 1)
  if batch % math.prod(mesh.shape[a] for a in names):
    return ()
  return names


def row_axes(mesh: jax.sharding.Mesh) -> tuple[str, ...]:
  """The axes a batch's rows are split over: those of BATCH_AXES that `mesh` has."""
  return tuple(a for a in BATCH_AXES if a in mesh.axis_names)


def row_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Rows (the leading dim) split over `row_axes(mesh)`, the other dims replicated: the
  placement of every global batch array."""
  axes = row_axes(mesh)
  return NamedSharding(mesh, P(axes[0] if len(axes) == 1 else axes))


def batch_sharding(mesh: jax.sharding.Mesh, batch: Any) -> Any:
  """NamedShardings for a batch tree: leading (batch) dim over ("data", "fsdp")."""
  def one(x):
    spec = P(BATCH_AXES, *([None] * (np.ndim(x) - 1)))
    return NamedSharding(mesh, _fit(spec, np.shape(x), mesh))

  return jax.tree.map(one, batch)


def shard_batch(mesh: jax.sharding.Mesh, batch: Mapping[str, Any]) -> Any:
  """Places a host-global batch on the mesh (single process)."""
  return jax.device_put(batch, batch_sharding(mesh, batch))


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Multi-host runs: JAX's own distributed runtime (auto-detected on TPU pods)."""
  kwargs = {k: v for k, v in dict(coordinator_address=coordinator_address,
                                  num_processes=num_processes,
                                  process_id=process_id).items() if v is not None}
  jax.distributed.initialize(**kwargs)


