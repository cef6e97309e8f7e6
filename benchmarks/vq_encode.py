"""Throughput of the VQ tokenizer: batch encode (pretokenization) and decode.

  python benchmarks/vq_encode.py --config=experiments/vq_demo.py [--batch=64] [--iters=5]
Prints images/s for the data-parallel encoder and for decode at the config's image size,
with freshly initialised weights (speed does not depend on the values).
"""

import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from synergen_jax.model.vq import VQTokenizer

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/vq_demo.py", "VQ experiment")
_BATCH = flags.DEFINE_integer("batch", 64, "images per call")
_ITERS = flags.DEFINE_integer("iters", 5, "timed calls")


def _time(fn, iters):
  fn()  # compile
  t = time.perf_counter()
  for _ in range(iters):
    fn()
  return (time.perf_counter() - t) / iters


def main(argv):
  del argv
  cfg = _CONFIG.value
  tok = VQTokenizer(cfg.model)
  variables = tok.init(jax.random.key(0))
  s = cfg.data.image_size
  images = np.random.default_rng(0).integers(0, 256, (_BATCH.value, s, s, 3), dtype=np.uint8)
  encode_batch = tok.batch_encoder(variables)
  codes = encode_batch(images)
  enc = _time(lambda: encode_batch(images), _ITERS.value)
  dec = _time(lambda: jax.block_until_ready(tok.decode(variables, codes)), _ITERS.value)
  print(f"devices={jax.device_count()} ({jax.devices()[0].platform}) image={s}px "
        f"batch={_BATCH.value} codes={codes.shape[1:]}")
  print(f"encode: {_BATCH.value / enc:.1f} images/s   decode: {_BATCH.value / dec:.1f} images/s")


if __name__ == "__main__":
  app.run(main)
