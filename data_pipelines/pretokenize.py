"""The pretokenization command line (the library: data_pipelines/pipeline/pretokenize.py).

  python -m data_pipelines.pretokenize --data.pretokenized_dir=D \
      [--data.source.kind=webdataset --data.source.data_dir='raw/{split}/*.tar' ...] \
      [--encoder=mean_color | --encoder=package.module:factory --encoder_arg=X]

prints one JSON line of counts per split (this run's shards); `--multihost` on every
host (jax.distributed) splits the shards over the hosts; `--stats_only` prints
`shard_stats` of the splits instead (docs/DATA.md).
"""

import importlib
import json

from absl import flags
from ml_collections import config_flags

from data_pipelines import config as config_lib
from data_pipelines.pipeline.pretokenize import mean_color_quantizer, pretokenize, shard_stats
from synergen_jax import cli
from synergen_jax import sharding


def _load_encoder(spec: str, arg: str, config):
  if spec == "mean_color":
    return mean_color_quantizer(config.vq_downsample)
  if ":" not in spec:
    raise ValueError(f"--encoder must be 'mean_color' or 'package.module:factory', got {spec!r}")
  module, attr = spec.split(":", 1)
  factory = getattr(importlib.import_module(module), attr)
  return factory(arg) if arg else factory()


@cli.command
def main(argv):
  del argv
  f = flags.FLAGS
  config = config_lib.resolve(f.data)  # checked, errors naming --data.<field>
  if f.multihost:
    sharding.initialize_distributed()  # then process i writes the shards s % count == i
  if f.stats_only:
    for split in f.splits:
      print(json.dumps({"split": split, **shard_stats(config.pretokenized_dir, split)}))
    return
  encode = _load_encoder(f.encoder, f.encoder_arg, config)
  for split in f.splits:
    stats = pretokenize(config, encode, split=split)
    print(json.dumps({"split": split, **stats}))


def run():
  """Defines the flags (only when run as a program: the module is also a library) and
  runs."""
  config_flags.DEFINE_config_dict("data", config_lib.default_data_config())
  flags.DEFINE_string("encoder", "mean_color", "'mean_color' or 'package.module:factory'")
  flags.DEFINE_string("encoder_arg", "", "argument passed to the encoder factory")
  flags.DEFINE_list("splits", ["train", "validation"], "splits to pretokenize")
  flags.DEFINE_bool("stats_only", False, "print the skip counts of the finished shards")
  flags.DEFINE_bool("multihost", False, "call jax.distributed.initialize() first (the same "
                    "command on every host; on TPU pods it finds the coordinator itself)")
  cli.run(main)


if __name__ == "__main__":
  run()
