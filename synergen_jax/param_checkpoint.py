"""Parameters-only checkpoints (Orbax): what a stage starts from.

Imported pretrained weights (`synergen_jax.weights`) and the parameters a stage hands to
the next are written as one Orbax StandardCheckpointer directory holding the unboxed
`params` tree of `SynerGenVL`. Restoring takes an abstract target carrying the *current*
mesh's shardings, so a checkpoint written on one mesh restores onto any other.
"""

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


def save_params(path: str, params: Any) -> None:
  """Writes `params` (unboxed arrays) to a new directory `path` (must not exist)."""
  path = os.path.abspath(path)
  if os.path.exists(path):
    raise FileExistsError(f"params checkpoint {path} already exists; refusing to overwrite")
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(path, params)
    ckptr.wait_until_finished()


def restore_params(path: str, target: Any) -> Any:
  """Restores into `target`: a tree of arrays or `jax.ShapeDtypeStruct`s with shardings.

  Raises FileNotFoundError naming the path, and ValueError if the tree structure or a
  shape differs from the target (e.g. a checkpoint of another model config).
  """
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f"params checkpoint {path} not found")
  abstract = jax.tree.map(
      lambda x: x if isinstance(x, jax.ShapeDtypeStruct)
      else jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
      target)
  with ocp.StandardCheckpointer() as ckptr:
    meta = ckptr.metadata(path)
    tree = getattr(meta, "item_metadata", meta)
    want = {jax.tree_util.keystr(p): tuple(x.shape)
            for p, x in jax.tree_util.tree_leaves_with_path(abstract)}
    have = {jax.tree_util.keystr(p): tuple(getattr(x, "shape", ()) or ())
            for p, x in jax.tree_util.tree_leaves_with_path(tree)}
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    if missing or extra:
      raise ValueError(f"params checkpoint {path} does not match the model: "
                       f"missing {missing[:5]}, unexpected {extra[:5]}")
    bad = [(k, have[k], want[k]) for k in want if have[k] != want[k]]
    if bad:
      k, h, w = bad[0]
      raise ValueError(f"params checkpoint {path}: {k} has shape {h}, the model expects {w}")
    return ckptr.restore(path, abstract)
