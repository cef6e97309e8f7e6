"""Data for synergen-jax: the embedded scene dataset, raw sources, the Grain pipeline.

Three sub-packages, each importing only those above it in this list:
  scenes/     the embedded world: renderer, palette, text, scorer, TFDS builders
  sources/    raw sources: tfds, array_record, webdataset, parquet, llava; the field
              mapping, conversations, image decoding
  pipeline/   pretokenization, records, sequences, choosing examples, stream
              arithmetic, packing, the checkpointable iterator, the task pipelines
and at the top:
  config      the `data` and `text_data` configs: defaults (ConfigDicts) and the typed
              frozen DataConfig / TextData that sources/ and pipeline/ read
  build       `python -m data_pipelines.build`: the TFDS datasets and the tokenizer
  pretokenize `python -m data_pipelines.pretokenize` (pipeline/pretokenize.py's command line)
"""

from data_pipelines.config import default_data_config

__all__ = ["default_data_config"]
