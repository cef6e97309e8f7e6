"""Data for synergen-jax: the embedded scene dataset, sequences, pretokenization, Grain.

Modules (one concept each):
  scene_palette, scenes, scene_text, text_corpus   the procedural scene world
  scene_scorer                                     pixels -> objects (evaluation)
  tfds_base, tfds_scenes, tfds_text, build         TFDS ArrayRecord builders + CLI
  image_io, tiling                                 decoding, resize/crop, dynamic tiles
  sources, records, pretokenize                    raw data -> VQ-code ArrayRecord shards
  raw_examples                                     a raw split's read loop (skips counted)
  field_mapping, conversations                     which raw field is what; LLaVA turns
  source_webdataset, source_parquet, source_llava  readers of the raw formats (docs/DATA.md)
  sequences, packing, pipeline                     examples -> packed per-task batches
  config                                           default_data_config() (demo defaults)
"""

from data_pipelines.config import default_data_config

__all__ = ["default_data_config"]
