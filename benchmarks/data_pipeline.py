"""Measures the data side: dataset build time, scorer accuracy, pipeline throughput.

  python benchmarks/data_pipeline.py [--workdir=/tmp/synergen_data_bench] [--steps=50]
      [--scorer_images=1000]

Builds the default embedded dataset (64 px) + tokenizer + mean-colour pretokenization
into --workdir (skipped parts are reused: delete the dir for a cold build time), then
prints one JSON line of measured figures:
  build_s, tokenizer_s, pretokenize_s       wall-clock seconds on this machine
  scorer_accuracy                           fraction of ground-truth objects recovered
  examples_per_s, tokens_per_s              both tasks together, after a warm-up step
  packing_efficiency/{task}                 non-pad fraction of packed rows
"""

import json
import os
import time

from absl import app
from absl import flags

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/synergen_data_bench", "output dir")
_STEPS = flags.DEFINE_integer("steps", 50, "pipeline steps to time")
_SCORER = flags.DEFINE_integer("scorer_images", 1000, "ground-truth images to score")


def main(argv):
  del argv
  import tensorflow_datasets as tfds
  from data_pipelines import build
  from data_pipelines import config as config_lib
  from data_pipelines.pipeline import multimodal
  from data_pipelines.pipeline import pretokenize
  from data_pipelines.scenes import render
  from data_pipelines.scenes import scorer
  from synergen_jax.tokenizer import Tokenizer

  out = {}
  tfds_dir = os.path.join(_WORKDIR.value, "tfds")
  t = time.time()
  scenes_b = build.build_scenes(tfds_dir, 64, 8000, 500)
  text_b = build.build_text(tfds_dir)
  out["build_s"] = round(time.time() - t, 2)
  out["train_records"] = len(scenes_b.as_data_source("train"))

  t = time.time()
  corpus = build.tokenizer_corpus(
      scenes_b.as_data_source("train", decoders={"image": tfds.decode.SkipDecoding()}),
      text_b.as_data_source("train"))
  tok = Tokenizer.train(corpus, os.path.join(_WORKDIR.value, "tokenizer.model"))
  out["tokenizer_s"] = round(time.time() - t, 2)
  out["text_vocab_size"] = tok.text_vocab_size

  cfg = config_lib.default_data_config()
  cfg.source.data_dir = tfds_dir
  cfg.pretokenized_dir = os.path.join(_WORKDIR.value, "pretok")
  cfg = config_lib.resolve(cfg)
  t = time.time()
  stats = pretokenize.pretokenize(cfg, pretokenize.mean_color_quantizer(cfg.vq_downsample))
  out["pretokenize_s"] = round(time.time() - t, 2)
  out["pretokenize_written"] = stats["written"]

  total = right = 0
  t = time.time()
  for split in ("test", "compositional"):
    for seed in range(_SCORER.value // 2):
      img, graph = render.render_scene(seed, 64, split)
      n = len(graph["objects"])
      total += n
      right += round(scorer.match_fraction(scorer.score_image(img), graph,
                                                 max_center_dist=0.05) * n)
  out["scorer_accuracy"] = right / total
  out["scorer_objects"] = total
  out["scorer_ms_per_image"] = round(1000 * (time.time() - t) / max(_SCORER.value, 1), 2)

  it = multimodal.make_pipeline(cfg, tok, (2, 2), cfg.code_grid)  # the demo default fold
  it.next_local()  # warm-up (thread start, first file reads)
  m0 = it.metrics()
  t = time.time()
  for _ in range(_STEPS.value):
    it.next_local()
  dt = time.time() - t
  m1 = it.metrics()
  ex = sum(m1[f"{k}/examples"] - m0[f"{k}/examples"] for k in multimodal.TASKS)
  tokens = sum(m1[f"{k}/tokens"] - m0[f"{k}/tokens"] for k in multimodal.TASKS)
  out["steps"] = _STEPS.value
  out["examples_per_s"] = round(ex / dt, 1)
  out["tokens_per_s"] = round(tokens / dt, 1)
  for k in multimodal.TASKS:
    out[f"packing_efficiency/{k}"] = round(m1[f"{k}/packing_efficiency"], 4)
    out[f"batch/{k}"] = f"{cfg[k].batch_size}x{cfg[k].seq_len}"
  it.close()
  print(json.dumps(out))


if __name__ == "__main__":
  app.run(main)
