"""Raw evaluation records of the scene dataset (images + questions + scene graphs).

  records(config, split, limit=None) -> (list of RawExample with a decoded image, skipped)

Reads `config.data.source` with its split replaced (validation, test, compositional),
in order. Records whose image cannot be decoded are skipped and counted.
"""

import json

import ml_collections

from data_pipelines import image_io
from data_pipelines import sources


def open_split(config, split: str):
  src_cfg = ml_collections.ConfigDict(config.data.source.to_dict())
  src_cfg.split = split
  return sources.open_raw_source(src_cfg)


def records(config, split: str, limit: int | None = None) -> tuple[list, int]:
  """Decoded records of a split (image: uint8 [H, W, 3]), and how many were skipped."""
  src = open_split(config, split)
  fields = sources.field_specs(config.data.source)
  image_root = sources.split_path(config.data.source.get("image_root", ""), split)
  out, skipped = [], 0
  n = len(src) if limit is None else min(limit, len(src))
  for i in range(n):
    try:
      raw = sources.extract(src[i], fields, i, image_root)
      if raw.image is None:  # a text-only conversation
        raise sources.MissingImage(f"record {i} has no image")
      raw.image = image_io.decode_image(raw.image)
    except (image_io.ImageDecodeError, sources.SourceError):
      skipped += 1
      continue
    out.append(raw)
  return out, skipped


def scene_graph(raw) -> dict | None:
  """The record's scene graph (dict) or None for datasets without one."""
  if not raw.scene_graph:
    return None
  try:
    return json.loads(raw.scene_graph)
  except json.JSONDecodeError:
    return None
