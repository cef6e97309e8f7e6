"""Parameter groups by path, which decide what each training stage trains.

- `vision`: VQ-code embedding, 2-D position embedding, fold MLP (`fold/...`), every
  layer's vision FFN (`.../vision_ffn/...`), the unfolding head (`unfold_head/...`) and
  the new special tokens (`new_token_embed`, `new_token_head`).
- `llm_attention`: every decoder layer's attention (q, k, v, o); norms stay in `llm`.
- `llm`: everything else of the pretrained LLM (text embedding, text FFNs, norms, head).
"""

from typing import Any

import jax

GROUPS = ("vision", "llm_attention", "llm")
_VISION_KEYS = ("fold", "vision_ffn", "unfold_head", "new_token_embed", "new_token_head")


def group_of(path: tuple[str, ...]) -> str:
  """Group name of a parameter from its path of dict keys (e.g. ('decoder', ...))."""
  if any(k in _VISION_KEYS for k in path):
    return "vision"
  if "decoder" in path and "attention" in path:
    return "llm_attention"
  return "llm"


def _keys(path) -> tuple[str, ...]:
  return tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def count_by_group(params: Any) -> dict[str, int]:
  """Number of parameters (elements) per group, plus the `vision_ffn` share."""
  counts = {g: 0 for g in GROUPS}
  counts["vision_ffn"] = 0
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    keys = _keys(path)
    size = int(getattr(leaf, "size", 0))
    counts[group_of(keys)] += size
    if "vision_ffn" in keys:
      counts["vision_ffn"] += size
  return counts
