"""Shared helpers for tests: tiny configs, batches, init, a small text tokenizer."""

import dataclasses
import functools

import flax.linen as nn
import jax
import numpy as np

from synergen_jax.configs import models
from synergen_jax.model import ModelConfig, SynerGenVL
from synergen_jax.model.synthetic import synthetic_task_batch
from synergen_jax.tokenizer import Tokenizer


def tiny_config(**overrides) -> ModelConfig:
  config = ModelConfig.from_config_dict(models.tiny())
  return dataclasses.replace(config, **overrides)


def batch(config: ModelConfig, task: str = "understanding", batch_size: int = 2,
          length: int = 32, seed: int = 0, examples_per_row: int = 2) -> dict:
  return synthetic_task_batch(config, np.random.default_rng(seed), batch_size, length, task,
                              examples_per_row)


@functools.lru_cache(maxsize=None)
def _jitted(config: ModelConfig, method: str):
  model = SynerGenVL(config)
  if method == "init":
    return jax.jit(lambda key, b: nn.unbox(model.init(key, b)))
  if method == "__call__":
    return jax.jit(model.apply)
  return jax.jit(lambda v, b: model.apply(v, b, method=method))


def init(config: ModelConfig, b: dict, seed: int = 0):
  return _jitted(config, "init")(jax.random.key(seed), b)


def apply(config: ModelConfig, v, b):
  """Loss sums of one task batch (jitted once per config)."""
  return _jitted(config, "__call__")(v, b)


def hidden(config: ModelConfig, v, b):
  """Final hidden states (jitted once per config)."""
  return _jitted(config, "hidden_states")(v, b)


def perturb(tree, scale=0.5, seed=1):
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(
      treedef, [x + scale * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)])


def write_random_vq(workdir: str, seed: int = 0):
  """A tiny VQ tokenizer workdir (the imported-weights layout) holding arbitrary values of
  the right structure (nothing to compile); returns (tokenizer, variables)."""
  from synergen_jax.model.vq import VQTokenizer, config as vq_config
  from synergen_jax.vq_training import vq_checkpoint
  tok = VQTokenizer(vq_config.tiny_config())
  rng = np.random.default_rng(seed)
  variables = jax.tree_util.tree_map(lambda a: rng.standard_normal(a.shape).astype(a.dtype),
                                     tok.abstract_variables())
  vq_checkpoint.write_imported(workdir, tok.config, variables)
  return tok, variables


def sequence_tokenizer() -> Tokenizer:
  """A small trained tokenizer with the chat markers, for the sequence builders."""
  corpus = ["What color is the square? red", "Generate an image of: a red square.",
            "Here is a random image", "Provide a one-sentence caption for the image."] * 10
  return Tokenizer.train(corpus, vocab_size=300)


def code_grid(seed: int, h: int = 4, w: int = 4) -> np.ndarray:
  """int32 [h, w] random VQ codes in [0, 100)."""
  return np.random.default_rng(seed).integers(0, 100, (h, w)).astype(np.int32)
