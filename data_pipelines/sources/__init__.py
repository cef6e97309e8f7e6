"""Raw sources: raw records (image + text) of any format -> `readers.RawExample`s.

  readers        open_raw_source(kind: tfds | array_record | webdataset | parquet | llava),
                 extract(record, fields) -> RawExample, the skip reasons (SourceError)
  webdataset, parquet, llava   readers of those file formats (docs/DATA.md)
  field_mapping  which raw field is what (per-kind defaults, dotted paths, alternatives)
  conversations  multi-turn conversations (LLaVA turns, the `<image>` placeholder)
  image_io       robust image decoding, short-edge resize + centre crop
  raw_examples   a raw split's read loop, skips counted (pretokenization, evaluation)

Imports nothing else of data_pipelines.
"""
