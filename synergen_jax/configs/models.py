"""Model configs (ml_collections) for every model the project trains or tests.

Each function returns the `config.model` part of an experiment; `ModelConfig.from_config_dict`
validates it. Sizes of the paper models come from the base LLMs' published configs
(InternLM2-1.8B, Qwen2-0.5B) and the paper (fold 2x8 at 512 px, 2x4 at 256 px, 4-layer head).
The paper does not give the VQ-code embedding width d_v or the head width; we use the
LLM width for both, which reproduces the paper's 3.6B total / 2.4B activated count for
SynerGen-VL-2.4B (`python -m synergen_jax.count_params --config=experiments/synergen_vl_2_4b.py`).
"""

import dataclasses

import ml_collections

from synergen_jax.model.config import ModelConfig


def _base(**overrides) -> ml_collections.ConfigDict:
  """`ModelConfig`'s defaults (their one home) with `overrides`."""
  cfg = ml_collections.ConfigDict(dataclasses.asdict(ModelConfig()))
  cfg.update(overrides)
  return cfg


def tiny() -> ml_collections.ConfigDict:
  """For unit tests: every axis small but shardable over 8 fake devices."""
  return _base(
      vocab_size=128, embed_dim=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8,
      mlp_dim=64, codebook_size=64, code_embed_dim=8, tile_grid=(4, 4), fold=(2, 2),
      head=dict(num_layers=1, embed_dim=32, num_heads=4, num_kv_heads=2, head_dim=8,
                mlp_dim=64),
      loss_chunk_size=16, max_gen_patches=4)


def demo() -> ml_collections.ConfigDict:
  """The CPU demo model's base: 64 px images, 8x VQ downsampling -> 8x8 codes, 2x2 fold
  (experiments/demo.py narrows it and folds the 4x VQ's 16x16 codes 4x4)."""
  return _base(
      vocab_size=1024, embed_dim=256, num_layers=4, num_heads=4, num_kv_heads=2,
      head_dim=64, mlp_dim=768, codebook_size=1024, code_embed_dim=64, tile_grid=(8, 8),
      fold=(2, 2), tie_embeddings=True,
      head=dict(num_layers=2, embed_dim=256, num_heads=4, num_kv_heads=2, head_dim=64,
                mlp_dim=768),
      rope_theta=10_000.0, loss_chunk_size=256, max_gen_patches=32)


def qwen2_0_5b() -> ml_collections.ConfigDict:
  """Ablation model: Qwen2-0.5B(-Instruct) shape, 256 px images -> 32x32 codes, 2x4 fold."""
  return _base(
      vocab_size=151_936, embed_dim=896, num_layers=24, num_heads=14, num_kv_heads=2,
      head_dim=64, mlp_dim=4864, qkv_bias=True, rope_theta=1_000_000.0, norm_eps=1e-6,
      tie_embeddings=True, codebook_size=32_768, code_embed_dim=896, tile_grid=(32, 32),
      fold=(2, 4),
      head=dict(num_layers=4, embed_dim=896, num_heads=14, num_kv_heads=2, head_dim=64,
                mlp_dim=4864),
      loss_chunk_size=512, max_gen_patches=128, dtype="bfloat16", remat_policy="full")


def synergen_vl_2_4b() -> ml_collections.ConfigDict:
  """SynerGen-VL-2.4B: InternLM2-1.8B shape, 512 px images -> 64x64 codes, 2x8 fold."""
  return _base(
      vocab_size=92_544, embed_dim=2048, num_layers=24, num_heads=16, num_kv_heads=8,
      head_dim=128, mlp_dim=8192, qkv_bias=False, rope_theta=1_000_000.0, norm_eps=1e-5,
      tie_embeddings=False, codebook_size=32_768, code_embed_dim=2048, tile_grid=(64, 64),
      fold=(2, 8),
      head=dict(num_layers=4, embed_dim=2048, num_heads=16, num_kv_heads=8, head_dim=128,
                mlp_dim=8192),
      loss_chunk_size=512, max_gen_patches=256, dtype="bfloat16", remat_policy="full")

