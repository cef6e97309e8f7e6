"""Offline image pretokenization: raw dataset -> ArrayRecord shards of VQ codes + text.

  pretokenize(config, encode, split=None) -> stats dict
      `config`: a `config.DataConfig`, or a data ConfigDict resolved here. Reads
      `config.source` (sources/readers.py: tfds, array_record, webdataset,
      parquet, llava), decodes each image robustly (image_io), skips and counts
      (`skip_reasons`, per reason) the records `readers.extract` refuses
      ("undecodable_record", "missing_image", "missing_text", "bad_conversation",
      "bad_field"; see sources/readers.py) and undecodable images ("undecodable_image"),
      makes the generation image (short-edge resize + centre crop) and the
      understanding tiles (tiling.py), runs `encode` on them in batches sharded over
      this process's devices, and writes `config.num_shards` shards (up to
      `config.encode_workers` at a time, each in a thread; the same files for any number)
      `{pretokenized_dir}/{split}.array_record-NNNNN-of-NNNNN` (records.py format)
      plus a `.stats.json` per shard. Resumable: finished shards are skipped
      (a shard is written to a temporary name and renamed when complete).
      Multi-host: process i writes the shards s with s % process_count == i.
      A text-only conversation (llava) is written with empty codes (records.py).
  shard_stats(directory, split) -> {"shards", "written", "skipped", "skip_reasons"}
      The counts of every finished shard of a split (from the `.stats.json` files), also
      of shards written by earlier (resumed) runs or other hosts.
  encode_batched(encode, images, devices=None) -> int32 [N, h, w]
  mean_color_quantizer(downsample, levels=4) -> encode
      A fixed, non-neural quantiser (mean colour of each p x p block, `levels` per
      channel -> levels**3 codes) for tests and demos before a VQ model exists.

`encode` is any callable uint8 [B, H, W, 3] -> int [B, h, w] (e.g. a jitted VQ encoder).

Its command line: `python -m data_pipelines.pretokenize` (data_pipelines/pretokenize.py).
"""

import concurrent.futures
import json
import os
import queue
import time

import jax
import jax.numpy as jnp
import numpy as np
from array_record.python import array_record_module
from jax.sharding import Mesh

from data_pipelines import config as config_lib
from data_pipelines.pipeline import records
from data_pipelines.pipeline import tiling
from data_pipelines.sources import image_io
from data_pipelines.sources import raw_examples
from data_pipelines.sources import readers
from synergen_jax import sharding


UNDECODABLE_RECORD = readers.UndecodableRecord.reason  # skip reason: source cannot decode
UNDECODABLE_IMAGE = image_io.ImageDecodeError.reason  # skip reason: image does not decode


def mean_color_quantizer(downsample: int, levels: int = 4):
  """uint8 [B, H, W, 3] -> int32 [B, H/p, W/p] codes in [0, levels**3)."""

  @jax.jit
  def encode(images):
    b, h, w, _ = images.shape
    x = images.astype(jnp.float32).reshape(b, h // downsample, downsample,
                                           w // downsample, downsample, 3)
    mean = x.mean(axis=(2, 4))  # [B, h, w, 3]
    q = jnp.clip(jnp.floor(mean / 256.0 * levels), 0, levels - 1).astype(jnp.int32)
    return q[..., 0] * levels * levels + q[..., 1] * levels + q[..., 2]

  return encode


def encode_batched(encode, images: np.ndarray, devices=None) -> np.ndarray:
  """Runs `encode` on uint8 [N, H, W, 3] sharded over `devices` (default: local)."""
  devices = list(devices or jax.local_devices())
  n = images.shape[0]
  pad = (-n) % len(devices)
  if pad:
    images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
  mesh = Mesh(np.asarray(devices), ("data",))
  x = jax.device_put(images, sharding.row_sharding(mesh))
  codes = np.asarray(jax.device_get(encode(x)))
  if codes.ndim != 3 or codes.shape[0] != images.shape[0]:
    raise ValueError(f"encoder returned codes of shape {codes.shape}; expected "
                     f"[{images.shape[0]}, h, w] for images {images.shape}")
  if not np.issubdtype(codes.dtype, np.integer):
    raise ValueError(f"encoder returned {codes.dtype} codes; expected integers")
  return codes[:n].astype(np.int32)


def _prepare(raw: readers.RawExample, config):
  """Decoded image -> (generation image [S, S, 3], tiles [T, S, S, 3], grid);
  (None, None, None) for a text-only record."""
  if raw.image is None:
    return None, None, None
  image = image_io.decode_image(raw.image)
  gen = image_io.resize_center_crop(image, config.image_size)
  tiles, grid = tiling.dynamic_tiles(image, config.image_size, config.max_tiles,
                                     config.use_thumbnail)
  return gen, tiles, grid


def _write_shard(path, indices, split, config, encode, devices, stats):
  tmp = path + ".tmp"
  writer = array_record_module.ArrayRecordWriter(tmp, "group_size:1")
  bs = config.encode_batch_size
  for start in range(0, len(indices), bs):
    # (raw, gen, tiles, grid); gen None for a text-only record
    batch = list(split.examples(indices[start:start + bs],
                                lambda raw: (raw,) + _prepare(raw, config),
                                stats["skip_reasons"]))
    stats["skipped"] = sum(stats["skip_reasons"].values())
    if not batch:
      continue
    with_image = [b for b in batch if b[1] is not None]
    # An image that is its own single tile (already at the tile size) is encoded once
    # for both tasks.
    own_tile = [len(b[2]) == 1 and np.array_equal(b[1], b[2][0]) for b in with_image]
    if with_image:
      images = np.concatenate([b[1][None] if same else np.concatenate([b[1][None], b[2]])
                               for b, same in zip(with_image, own_tile)])
      codes = encode_batched(encode, images, devices)  # [sum(1 + T) - own tiles, h, w]
      if tuple(codes.shape[1:]) != config.code_grid:
        raise ValueError(f"the encoder gives {codes.shape[1:]} codes per {config.image_size} "
                         f"px image; data.image_size / data.vq_downsample expects "
                         f"{config.code_grid} (set data.vq_downsample to the "
                         "VQ's downsampling factor)")
    k, same_of = 0, iter(own_tile)
    for raw, gen, tiles, grid in batch:
      text = {"id": raw.id, "captions": raw.captions, "questions": raw.questions,
              "answers": raw.answers, "question_types": raw.question_types,
              "scene_graph": raw.scene_graph, "conversation": raw.conversation}
      if gen is None:
        writer.write(records.encode_record({**text, **records.text_only_codes()}))
      else:
        same = next(same_of)
        und = codes[k:k + 1] if same else codes[k + 1:k + 1 + len(tiles)]
        writer.write(records.encode_record({
            **text, "gen_codes": codes[k], "und_codes": und, "und_grid": grid}))
        k += 1 if same else 1 + len(tiles)
      stats["written"] += 1
  writer.close()
  os.replace(tmp, path)


def pretokenize(config, encode, split: str | None = None, devices=None) -> dict:
  """Pretokenizes one split of `config.source`; returns counts (see module doc)."""
  config = config_lib.resolve(config)
  split = split or config.source.split
  out_dir = os.path.expanduser(config.pretokenized_dir)
  os.makedirs(out_dir, exist_ok=True)
  n = config.num_shards
  total = {"written": 0, "skipped": 0, "shards_done": 0, "shards_skipped": 0,
           "skip_reasons": {}, "seconds": 0.0}
  t0 = time.time()
  # Opening a source indexes all its inputs (tar headers, parquet footers), so readers are
  # reused: at most one per thread, each read by one shard at a time.
  first = raw_examples.RawSplit(config.source, split)
  idle = queue.SimpleQueue()
  idle.put(first)
  todo = []  # (shard's path, its record indices): this process's unfinished shards
  for shard, indices in enumerate(np.array_split(np.arange(len(first)), n)):
    if shard % jax.process_count() != jax.process_index():
      continue
    path = records.shard_path(out_dir, split, shard, n)
    if os.path.exists(path):
      total["shards_skipped"] += 1
    else:
      todo.append((path, indices))

  def write(path, indices):
    stats = {"written": 0, "skipped": 0, "skip_reasons": {}}
    try:
      reader = idle.get_nowait()
    except queue.Empty:  # every reader is in use by another thread
      reader = raw_examples.RawSplit(config.source, split)
    _write_shard(path, indices, reader, config, encode, devices, stats)
    idle.put(reader)
    with open(path + ".stats.json", "w") as f:
      json.dump(stats, f)
    return stats

  # `encode_workers` shards at a time, each in a thread: one shard's decoding and writing
  # overlap another's encoder call (which releases the GIL). A shard's records and codes do
  # not depend on the others, so the files are the same for any number of workers.
  with concurrent.futures.ThreadPoolExecutor(config.encode_workers) as pool:
    for stats in pool.map(lambda job: write(*job), todo):
      total["shards_done"] += 1
      total["written"] += stats["written"]
      total["skipped"] += stats["skipped"]
      for k, v in stats["skip_reasons"].items():
        total["skip_reasons"][k] = total["skip_reasons"].get(k, 0) + v
  total["seconds"] = time.time() - t0
  return total


def shard_stats(directory: str, split: str) -> dict:
  """Sums the `.stats.json` of a split's finished shards (see the module docstring)."""
  total = {"shards": 0, "written": 0, "skipped": 0, "skip_reasons": {}}
  for path in records.shard_files(directory, split):
    try:
      with open(path + ".stats.json") as f:
        stats = json.load(f)
    except FileNotFoundError:
      continue
    total["shards"] += 1
    total["written"] += stats["written"]
    total["skipped"] += stats["skipped"]
    for k, v in stats["skip_reasons"].items():
      total["skip_reasons"][k] = total["skip_reasons"].get(k, 0) + v
  return total
