"""Builds the embedded dataset, its text-only split and the demo tokenizer.

  python -m data_pipelines.build --data_dir=data/tfds [--image_size=64]
      [--train_size=8000] [--eval_size=500] [--cell=0] [--max_objects=4]
      [--tokenizer=data/tokenizer/synergen.model]
      [--vocab_size=1024] [--pretokenize_dir=DIR]   # DIR: also pretokenize with the
                                                    # fixed mean-colour quantiser

Prints one JSON line of timings and sizes. Building is idempotent (TFDS skips a
dataset that is already prepared).
"""

import json
import time

import tensorflow_datasets as tfds
from absl import flags

from data_pipelines import config as config_lib
from data_pipelines.scenes import tfds_scenes
from data_pipelines.scenes import tfds_text
from synergen_jax import cli
from synergen_jax.tokenizer import Tokenizer

_DATA_DIR = flags.DEFINE_string("data_dir", "data/tfds", "TFDS data dir")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "image size in pixels")
_TRAIN = flags.DEFINE_integer("train_size", 8000, "records in the train split")
_EVAL = flags.DEFINE_integer("eval_size", 500, "records in validation/test/compositional")
_CELL = flags.DEFINE_integer("cell", 0, "placement: 0 = free, else objects centred in "
                             "cell x cell pixel cells (VQ downsampling x fold)")
_MAX_OBJECTS = flags.DEFINE_integer("max_objects", 4, "most objects per scene (1-4)")
_TOKENIZER = flags.DEFINE_string("tokenizer", "data/tokenizer/synergen.model",
                                 "where to write the trained SentencePiece model ('' = skip)")
_VOCAB = flags.DEFINE_integer("vocab_size", 1024, "SentencePiece vocabulary bound")
_PRETOK = flags.DEFINE_string("pretokenize_dir", "", "also pretokenize (mean-colour codes)")


def build_scenes(data_dir: str, image_size: int, train_size: int, eval_size: int,
                 cell: int = 0, max_objects: int = 4):
  """Prepares synergen_scenes (named by `tfds_scenes.config_name`); returns the builder."""
  sizes = {"train": train_size, "validation": eval_size, "test": eval_size,
           "compositional": eval_size}
  config = None
  for predefined in tfds_scenes.SynergenScenes.BUILDER_CONFIGS:
    if (predefined.image_size == image_size and predefined.split_sizes == sizes
        and predefined.cell == cell and predefined.max_objects == max_objects):
      config = predefined.name  # a predefined config is named, not passed
  if config is None:
    config = tfds_scenes.scene_config(
        image_size, sizes, cell=cell, max_objects=max_objects,
        name=tfds_scenes.config_name(image_size, train_size, eval_size, cell, max_objects))
  builder = tfds_scenes.SynergenScenes(config=config, data_dir=data_dir,
                                       file_format="array_record")
  builder.download_and_prepare()
  return builder


def build_text(data_dir: str):
  builder = tfds_text.SynergenText(data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare()
  return builder


def tokenizer_corpus(scene_source, text_source):
  """Sentences for training the tokenizer: captions, QA, prompts, text-only examples."""
  cfg = config_lib.default_data_config()
  out = [cfg.caption_prompt, cfg.generation_prefix, cfg.uncond_prompt.replace("<UNCOND>", "")]
  dec = lambda v: v.decode() if isinstance(v, bytes) else str(v)
  for i in range(len(scene_source)):
    r = scene_source[i]
    out += [dec(c) for c in r["captions"]]
    out += [f"{dec(q)} {dec(a)}" for q, a in zip(r["questions"], r["answers"])]
  for i in range(len(text_source)):
    out.append(dec(text_source[i]["text"]))
  return out


@cli.command
def main(argv):
  del argv
  report = {}
  t0 = time.time()
  scenes_b = build_scenes(_DATA_DIR.value, _IMAGE_SIZE.value, _TRAIN.value, _EVAL.value,
                          _CELL.value, _MAX_OBJECTS.value)
  report["scenes_name"] = f"synergen_scenes/{scenes_b.builder_config.name}"
  report["scenes_build_s"] = round(time.time() - t0, 2)
  t1 = time.time()
  text_b = build_text(_DATA_DIR.value)
  report["text_build_s"] = round(time.time() - t1, 2)
  if _TOKENIZER.value:
    t2 = time.time()
    dec = {"image": tfds.decode.SkipDecoding()}
    corpus = tokenizer_corpus(scenes_b.as_data_source("train", decoders=dec),
                              text_b.as_data_source("train"))
    tok = Tokenizer.train(corpus, _TOKENIZER.value, vocab_size=_VOCAB.value)
    report["tokenizer"] = _TOKENIZER.value
    report["text_vocab_size"] = tok.text_vocab_size
    report["tokenizer_train_s"] = round(time.time() - t2, 2)
  if _PRETOK.value:
    from data_pipelines.pipeline import pretokenize  # keeps --help free of JAX
    t3 = time.time()
    cfg = config_lib.default_data_config()
    cfg.image_size = _IMAGE_SIZE.value
    cfg.source.name = report["scenes_name"]
    cfg.source.data_dir = _DATA_DIR.value
    cfg.pretokenized_dir = _PRETOK.value
    cfg = config_lib.resolve(cfg)
    enc = pretokenize.mean_color_quantizer(cfg.vq_downsample)
    for split in ("train", "validation"):
      report[f"pretokenize_{split}"] = pretokenize.pretokenize(cfg, enc, split=split)
    report["pretokenize_s"] = round(time.time() - t3, 2)
  report["total_s"] = round(time.time() - t0, 2)
  print(json.dumps(report))


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
