"""Raw evaluation records of the scene dataset (images + questions + scene graphs).

  records(config, split, limit=None) -> (list of RawExample with a decoded image, skipped)

Reads `config.data.source` with its split replaced (validation, test, compositional),
in order (`data_pipelines.sources.raw_examples`). Records without an image, or whose image or
record cannot be decoded, are skipped and counted.
"""

import json

from data_pipelines.sources import image_io
from data_pipelines.sources import raw_examples
from data_pipelines.sources import readers


def records(config, split: str, limit: int | None = None) -> tuple[list, int]:
  """Decoded records of a split (image: uint8 [H, W, 3]), and how many were skipped."""
  raw_split = raw_examples.RawSplit(config.data.source, split)
  n = len(raw_split) if limit is None else min(limit, len(raw_split))
  skips = {}
  out = list(raw_split.examples(range(n), _with_decoded_image, skips))
  return out, sum(skips.values())


def _with_decoded_image(raw: readers.RawExample) -> readers.RawExample:
  if raw.image is None:  # a text-only conversation
    raise readers.MissingImage(f"record {raw.id} has no image")
  raw.image = image_io.decode_image(raw.image)
  return raw


def scene_graph(raw) -> dict | None:
  """The record's scene graph (dict) or None for datasets without one."""
  if not raw.scene_graph:
    return None
  try:
    return json.loads(raw.scene_graph)
  except json.JSONDecodeError:
    return None
