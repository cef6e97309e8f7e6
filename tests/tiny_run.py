"""The tiny two-stage training run that several test modules share (the `tiny_run`
fixture in conftest.py): TFDS scenes at 64 px, a tokenizer, mean-colour pretokenized
32 px shards, experiments/tiny.py trained on one device.

It is trained once per test session, not once per xdist worker: the first worker that
needs it builds it under the session's shared temporary directory while holding a file
lock (`_once`), the others wait for the lock and reuse it. Every worker then gets its own
copy of the trained workdir (`load`): tests may write into it (a rerun rewrites its
reports), the data is only read. The data alone (`data`: built once per session too,
under a lock of its own) also serves tests that train the tiny experiment their own way
(tests/test_multihost.py).
"""

import fcntl
import json
import os
import shutil
import sys

import jax
import tensorflow_datasets as tfds

from data_pipelines import config as data_config_lib
from data_pipelines.build import tokenizer_corpus
from data_pipelines.pipeline import pretokenize
from data_pipelines.scenes import tfds_scenes
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


def config(data_root, vocab_size: int):
  """experiments/tiny.py on the data under `data_root`."""
  cfg = tiny.get_config()
  cfg.model.vocab_size = vocab_size
  cfg.tokenizer = f"{data_root}/tokenizer.model"
  cfg.data.source.data_dir = f"{data_root}/tfds"
  cfg.data.pretokenized_dir = f"{data_root}/pretokenized"
  cfg.train.compilation_cache = False
  cfg.train.xla_compiler_options = {"xla_backend_optimization_level": 0}
  return cfg


def mesh():
  return jax.make_mesh((1, 1, 1), ("data", "fsdp", "tensor"), devices=jax.devices()[:1],
                       axis_types=(jax.sharding.AxisType.Auto,) * 3)


def shared_root(tmp_path_factory):
  """The directory all xdist workers of this session share (the base temp dir alone)."""
  base = tmp_path_factory.getbasetemp()
  return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _once(shared, name: str, build_into):
  """shared/name, built by `build_into(directory)` once per session: the first worker that
  asks builds it while holding shared/name.lock (the others wait and reuse it); the
  marker shared/name/COMPLETE is written last, so a build that failed half-way is redone."""
  root = shared / name
  with open(shared / f"{name}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building it: wait
    if not (root / "COMPLETE").exists():
      shutil.rmtree(root, ignore_errors=True)
      root.mkdir()
      build_into(root)
      (root / "COMPLETE").touch()
  return root


def data(tmp_path_factory):
  """(data root, text vocab size): the session's `build_data`; tests only read it."""
  def build_into(root):
    (root / "vocab.json").write_text(json.dumps(build_data(root).text_vocab_size))
  root = _once(shared_root(tmp_path_factory), "tiny_data", build_into)
  return root, json.loads((root / "vocab.json").read_text())


def load(tmp_path_factory) -> dict:
  """The session's tiny run (the straight run of `config`, its report in the workdir's
  report.json), with this worker's own copy of the straight workdir."""
  data_root, vocab_size = data(tmp_path_factory)
  root = _once(shared_root(tmp_path_factory), "tiny_run",
               lambda root: run_lib.run_experiment(config(data_root, vocab_size),
                                                   str(root / "straight"), mesh=mesh()))
  straight = tmp_path_factory.mktemp("straight")
  shutil.copytree(root / "straight", straight, dirs_exist_ok=True)
  report = json.loads((straight / "report.json").read_text())
  return {"cfg": config(data_root, vocab_size), "mesh": mesh(), "straight": str(straight),
          "report": report, "data_root": str(data_root), "tmp": tmp_path_factory}
