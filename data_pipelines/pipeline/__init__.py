"""The pipeline: raw sources -> pretokenized shards -> packed, checkpointable batches.

  pretokenize    raw split -> VQ-code ArrayRecord shards (offline; its command line is
                 `python -m data_pipelines.pretokenize`)
  records        the shards: file names and the pickle-free record format
  tiling         an image -> dynamic understanding tiles (+ thumbnail)
  sequences      token sequences of the tasks (the training / inference templates)
  examples       choosing examples: a record -> one task example or a skip
  packing        skip counting, first-fit packing into fixed-length rows
  streams        stream arithmetic: which records a stream reads, which streams a
                 process reads, concatenating a process's streams
  iterator       the checkpointable {task: batch} iterator, its counters, their sum over
                 processes
  multimodal     make_pipeline: the understanding + generation tasks (grain plumbing)
  text           make_text_pipeline: text-only LLM data
  augment        whole-code shifts of VQ code grids (a data-side probe)

Reads `sources/` and `config.py`; never the scenes (they reach it as a TFDS source).
"""
