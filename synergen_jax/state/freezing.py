"""Stage freezing: split the parameters into a trainable and a frozen subtree.

Only the trainable subtree is differentiated and given optimizer state, so a frozen
parameter has neither a weight gradient nor Adam moments. Groups come from
`model/param_groups.py` (vision, llm_attention, llm). Splitting is by path on nested
dicts, so it works on arrays, abstract shapes and shardings alike.
"""

from typing import Any, Sequence

import jax
from flax import traverse_util

from synergen_jax.model.param_groups import group_of


def _is_leaf(x) -> bool:
  return not isinstance(x, dict)


def split(params: dict, trainable_groups: Sequence[str]) -> tuple[dict, dict]:
  """(trainable, frozen) nested dicts; together they hold every leaf of `params`."""
  flat = traverse_util.flatten_dict(params, is_leaf=lambda _, x: _is_leaf(x))
  groups = set(trainable_groups)
  trainable = {k: v for k, v in flat.items() if group_of(k) in groups}
  frozen = {k: v for k, v in flat.items() if group_of(k) not in groups}
  return traverse_util.unflatten_dict(trainable), traverse_util.unflatten_dict(frozen)


def merge(trainable: dict, frozen: dict) -> dict:
  """Inverse of `split`."""
  flat = traverse_util.flatten_dict(trainable, is_leaf=lambda _, x: _is_leaf(x))
  flat.update(traverse_util.flatten_dict(frozen, is_leaf=lambda _, x: _is_leaf(x)))
  return traverse_util.unflatten_dict(flat)


def num_elements(tree: Any) -> int:
  return sum(int(x.size) for x in jax.tree.leaves(tree))


def num_bytes(tree: Any) -> int:
  return sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def copy_text_ffn_to_vision(params: dict) -> dict:
  """Initialises every vision FFN expert as a copy of its text FFN (METHOD.md section 4).

  Works on the decoder's `.../mmoe/{text_ffn,vision_ffn}` subtrees; a model without
  vision experts is returned unchanged.
  """
  flat = traverse_util.flatten_dict(params, is_leaf=lambda _, x: _is_leaf(x))
  out = dict(flat)
  for path in flat:
    if "vision_ffn" in path:
      src = tuple("text_ffn" if k == "vision_ffn" else k for k in path)
      if src not in flat:
        raise ValueError(f"vision FFN parameter {'/'.join(path)} has no text FFN twin")
      out[path] = flat[src]
  return traverse_util.unflatten_dict(out)
