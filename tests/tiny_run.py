"""The tiny two-stage training run that several test modules share (built once per
session by the `tiny_run` fixture in conftest.py): TFDS scenes at 64 px, a tokenizer,
mean-colour pretokenized 32 px shards, experiments/tiny.py trained on one device."""

import os
import sys

import jax
import tensorflow_datasets as tfds

from data_pipelines import config as data_config_lib
from data_pipelines import pretokenize
from data_pipelines import tfds_scenes
from data_pipelines.build import tokenizer_corpus
from synergen_jax.tokenizer import Tokenizer
from synergen_jax.training import run as run_lib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from experiments import tiny  # noqa: E402

SIZES = {"train": 40, "validation": 16, "test": 8, "compositional": 8}


def build_data(root):
  """TFDS scenes (64 px), a tokenizer, and 32 px mean-colour pretokenized shards."""
  cfg = tfds_scenes.scene_config(64, SIZES, name="tiny16")
  builder = tfds_scenes.SynergenScenes(config=cfg, data_dir=f"{root}/tfds",
                                       file_format="array_record")
  builder.download_and_prepare()
  src = builder.as_data_source("train", decoders={"image": tfds.decode.SkipDecoding()})
  tok = Tokenizer.train(tokenizer_corpus(src, []), f"{root}/tokenizer.model", vocab_size=380)
  d = data_config_lib.default_data_config()
  d.source.name = "synergen_scenes/tiny16"
  d.source.data_dir = f"{root}/tfds"
  d.pretokenized_dir = f"{root}/pretokenized"
  d.num_shards, d.image_size, d.encode_batch_size = 2, 32, 16
  for split in ("train", "validation"):
    pretokenize.pretokenize(d, pretokenize.mean_color_quantizer(8), split=split)
  return tok


def train(tmp_path_factory) -> dict:
  data_root = tmp_path_factory.mktemp("data")
  tok = build_data(data_root)
  cfg = tiny.get_config()
  cfg.model.vocab_size = tok.text_vocab_size
  cfg.tokenizer = f"{data_root}/tokenizer.model"
  cfg.data.source.data_dir = f"{data_root}/tfds"
  cfg.data.pretokenized_dir = f"{data_root}/pretokenized"
  cfg.train.compilation_cache = False
  cfg.train.xla_compiler_options = {"xla_backend_optimization_level": 0}
  mesh = jax.make_mesh((1, 1, 1), ("data", "fsdp", "tensor"), devices=jax.devices()[:1],
                       axis_types=(jax.sharding.AxisType.Auto,) * 3)
  straight = str(tmp_path_factory.mktemp("straight"))
  report = run_lib.run_experiment(cfg, straight, mesh=mesh)
  return {"cfg": cfg, "mesh": mesh, "straight": straight, "report": report,
          "data_root": str(data_root), "tmp": tmp_path_factory}
