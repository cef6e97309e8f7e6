"""Shared helpers for the weights tests: tiny random HF LLMs, our forward, padded batches.

(Named test_*.py so it is owned with the weights tests; it holds no tests itself.)
"""

import functools
import os

import jax
import numpy as np
import torch
import transformers

from synergen_jax.configs import models
from synergen_jax.model import ModelConfig, SynerGenVL
from synergen_jax.weights import hf_config, hf_files

VOCAB = 300  # pads to 384: exercises vocabulary padding
LENGTHS = (11, 7, 3)  # valid tokens per row of the test batch; row length 12


def tiny_hf_model(family: str, seed: int = 0, tie: bool = False):
  """A tiny random transformers model (float32, eager attention)."""
  torch.manual_seed(seed)
  kw = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
            tie_word_embeddings=tie, rms_norm_eps=1e-5)
  if family == "qwen2":
    cfg = transformers.Qwen2Config(rope_theta=1_000_000.0, **kw)
    model = transformers.Qwen2ForCausalLM(cfg)
  else:
    cfg = transformers.LlamaConfig(rope_theta=10_000.0, **kw)
    model = transformers.LlamaForCausalLM(cfg)
  with torch.no_grad():  # random (not zero) biases and norm scales
    for name, p in model.named_parameters():
      if name.endswith("bias") or "norm" in name:
        p.copy_(torch.randn_like(p) * 0.1 + (1.0 if "norm" in name else 0.0))
  model.config._attn_implementation = "eager"
  return model.eval()


def save_hf(model, directory: str, max_shard_size: str | None = None) -> str:
  kw = {"max_shard_size": max_shard_size} if max_shard_size else {}
  model.save_pretrained(directory, **kw)
  return directory


def our_config(hf_dir: str, **overrides) -> ModelConfig:
  """The tiny experiment model with its LLM fields derived from hf_dir/config.json."""
  spec = hf_config.hf_llm_spec(hf_files.read_config(hf_dir))
  cfg = hf_config.reconcile(models.tiny(), spec, derive=True)
  cfg.update(overrides)
  return ModelConfig.from_config_dict(cfg)


def padded_batch(config: ModelConfig, seed: int = 0, lengths=LENGTHS, length: int = 12,
                 vocab: int = VOCAB) -> dict:
  """Right-padded all-text rows (segment 1 on tokens, 0 on padding) in our batch layout."""
  rng = np.random.default_rng(seed)
  b = len(lengths)
  tokens = np.zeros((b, length), np.int32)
  seg = np.zeros((b, length), np.int32)
  for i, n in enumerate(lengths):
    tokens[i, :n] = rng.integers(0, vocab, n)
    seg[i, :n] = 1
  return {
      "tokens": tokens, "segment_ids": seg,
      "positions": np.broadcast_to(np.arange(length, dtype=np.int32), (b, length)).copy(),
      "is_image": np.zeros((b, length), bool),
      "image_codes": np.zeros((b, length, config.patch_size), np.int32),
      "patch_index": np.zeros((b, length), np.int32),
      "text_target": np.zeros((b, length), np.float32),
      "image_target": np.zeros((b, length), np.float32),
  }


@functools.lru_cache(maxsize=None)
def _logits_fn(config: ModelConfig):
  model = SynerGenVL(config)

  def fn(params, batch):
    hidden = model.apply({"params": params}, batch, method="hidden_states")
    return model.apply({"params": params}, hidden, method="text_logits")

  return jax.jit(fn)


def our_logits(config: ModelConfig, params, batch) -> np.ndarray:
  """[batch, length, vocab_size + num_new_tokens] float32."""
  return np.asarray(_logits_fn(config)(params, batch))


def hf_logits(model, batch) -> np.ndarray:
  """transformers' logits [batch, length, hf_vocab] for the same rows (attention mask)."""
  with torch.no_grad():
    out = model(input_ids=torch.tensor(batch["tokens"], dtype=torch.long),
                attention_mask=torch.tensor(batch["segment_ids"] > 0, dtype=torch.long))
  return out.logits.float().numpy()


def max_valid_diff(ours: np.ndarray, theirs: np.ndarray, batch: dict) -> float:
  """Max |difference| over valid (non-padding) positions and the HF vocabulary."""
  valid = batch["segment_ids"] > 0
  v = theirs.shape[-1]
  return float(np.max(np.abs(ours[..., :v] - theirs)[valid]))


def file_list(directory: str) -> list[str]:
  return sorted(os.listdir(directory))
