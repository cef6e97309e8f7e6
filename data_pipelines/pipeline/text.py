"""Text-only LLM pretraining data: documents -> packed `{"text": batch}` rows (Grain).

The demo pretrains its LLM on text before the vision stages (it stands in for the
pretrained LLM a real run imports). Documents:
  - the `text` feature of a TFDS text dataset (`text_data.tfds_name`, e.g. synergen_text);
  - with `text_data.scene_text`, the captions of the pretokenized scene records and their
    question/answer pairs in the chat template, so the LLM knows the language and the
    chat format the vision stages use.
Each document is `<s> ... </s>` with a next-token target on every position after `<s>`,
no image positions; rows are packed with `packing.py` (same batch contract
as the multimodal tasks) and the iterator is checkpointable (get_state / set_state).
"""

import os

import grain
import jax
import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.pipeline import iterator
from data_pipelines.pipeline import packing
from data_pipelines.pipeline import records
from data_pipelines.pipeline import streams
from synergen_jax import batch as batch_lib

TASK = "text"


def _decode(v) -> str:
  return v.decode("utf-8") if isinstance(v, (bytes, np.bytes_)) else str(v)


def tfds_texts(tfds_name: str, data_dir: str, split: str) -> list[str]:
  """The `text` field of every record of a prepared TFDS dataset split."""
  try:
    source = tfds.data_source(tfds_name, data_dir=os.path.expanduser(data_dir))[split]
  except Exception as e:  # TFDS raises several types for a missing dataset/split
    raise FileNotFoundError(f"text_data: cannot open TFDS {tfds_name!r} split {split!r} in "
                            f"{data_dir!r}: {e}") from e
  return [_decode(source[i]["text"]) for i in range(len(source))]


def scene_documents(pretokenized_dir: str, split: str) -> list[tuple[str, str]]:
  """(kind, text) documents from pretokenized records: ("plain", caption) and
  ("chat", question + "\\x00" + answer)."""
  out = []
  for path in records.shard_files(pretokenized_dir, split):
    src = grain.sources.ArrayRecordDataSource([path])
    for i in range(len(src)):
      try:
        rec = records.decode_record(src[i])
      except records.RecordError:
        continue
      out += [("plain", c) for c in rec["captions"]]
      out += [("chat", f"{q}\x00{a}") for q, a in zip(rec["questions"], rec["answers"])]
  return out


def documents(text_cfg, pretokenized_dir: str, split: str) -> list[tuple[str, str]]:
  """All documents of a split (`train_split` or `eval_split` of the text config)."""
  docs = []
  if text_cfg.tfds_name:
    docs += [("plain", t) for t in tfds_texts(text_cfg.tfds_name, text_cfg.data_dir, split)]
  if text_cfg.scene_text:
    scene_split = "train" if split == text_cfg.train_split else "validation"
    docs += scene_documents(pretokenized_dir, scene_split)
  if not docs:
    raise ValueError(f"text_data: no documents for split {split!r} (set tfds_name or "
                     "scene_text)")
  return docs


class TextExample:
  """grain map: (kind, text) -> an example (`batch.EXAMPLE_FIELDS`) with all-text targets."""

  def __init__(self, tokenizer, mn: int, seq_len: int):
    self.tok, self.mn, self.seq_len = tokenizer, mn, seq_len

  def ids(self, kind: str, text: str) -> list[int]:
    if kind == "chat":
      question, answer = text.split("\x00", 1)
      # The understanding template without the image (sequences.py).
      return (self.tok.encode_chat([("user", question)]) + self.tok.encode(answer)
              + self.tok.turn_end() + [self.tok.eos_id])
    return self.tok.encode(text, add_bos=True, add_eos=True)

  def __call__(self, doc):
    ids = np.asarray(self.ids(*doc)[:self.seq_len], np.int32)
    n = len(ids)
    target = np.ones((n,), np.float32)
    target[0] = 0.0  # <s> is never predicted
    return batch_lib.make((n,), self.mn, batch_lib.EXAMPLE_FIELDS, tokens=ids,
                          text_target=target)


def text_dataset(docs, tokenizer, mn: int, text_cfg, *, shuffle: bool, num_epochs,
                 process_index: int = 0, process_count: int = 1, num_streams: int = 0,
                 sharding=None) -> grain.IterDataset:
  """Packed local batches [batch / process_count, seq_len] of the documents.

  Input streams as in `streams.py`: stream s of S packs documents [s::S]
  into batches of batch / S rows; this process concatenates its streams' batches.
  """
  count, mine = streams.input_streams(
      num_streams, int(text_cfg.batch_size), "text_data.batch_size",
      process_index=process_index, process_count=process_count, sharding=sharding)
  stream_bs = text_cfg.batch_size // count
  seed = int(text_cfg.seed)
  if len(docs) < count:
    raise ValueError(f"{len(docs)} text documents cannot feed {count} input streams")
  parts = []
  for stream in mine:
    ds = grain.MapDataset.source(docs)[stream::count]
    if shuffle:
      ds = ds.shuffle(seed=seed)
    ds = ds.repeat(num_epochs).map(TextExample(tokenizer, mn, text_cfg.seq_len))
    it = packing.pack_examples(ds.to_iter_dataset(), text_cfg.seq_len,
                               text_cfg.packing_bins or stream_bs, tokenizer.pad_id,
                               seed=seed + 2)
    parts.append(it.batch(stream_bs, drop_remainder=True))
  it = streams.concat_streams(parts)
  if text_cfg.prefetch_buffer:
    it = grain.experimental.ThreadPrefetchIterDataset(
        it, prefetch_buffer_size=int(text_cfg.prefetch_buffer))
  return it


def make_text_pipeline(text_cfg, pretokenized_dir: str, tokenizer, mn: int, *, split: str,
                       sharding=None, train: bool = True, docs=None, num_streams: int = 0):
  """`{"text": batch}` iterator (checkpointable), like `multimodal.make_pipeline`.

  train=True: shuffled, repeated forever; False: in order, one pass (validation).
  """
  docs = docs if docs is not None else documents(text_cfg, pretokenized_dir, split)
  ds = text_dataset(docs, tokenizer, mn, text_cfg, shuffle=train,
                    num_epochs=None if train else 1,
                    process_index=jax.process_index(), process_count=jax.process_count(),
                    num_streams=num_streams, sharding=sharding)
  return iterator.TaskBatchIterator({TASK: ds}, sharding)
