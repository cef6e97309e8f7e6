"""Flat-path helpers of a params tree (abstract params on a mesh: `model_init`).

Paths are tuples of dict keys into the `params` collection, e.g.
('decoder', 'layers', 'block', 'mmoe', 'text_ffn', 'gate').
"""

from typing import Any

from flax import traverse_util

Path = tuple[str, ...]


def flatten(tree: dict) -> dict[Path, Any]:
  return traverse_util.flatten_dict(tree)


def unflatten(flat: dict[Path, Any]) -> dict:
  return traverse_util.unflatten_dict(flat)


def path_str(path: Path) -> str:
  return "/".join(path)
