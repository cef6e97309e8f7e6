"""Frozen model configuration: the only thing `model/` modules are built from.

The ml_collections model configs in `synergen_jax/configs/models.py` are turned into a
`ModelConfig` once, at the edge (CLI, trainer, tests), by `ModelConfig.from_config_dict`,
which rejects unknown or inconsistent fields with a message naming the field.
"""

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp

from synergen_jax import image_grid
from synergen_jax.model import mmoe

ATTENTION_BACKENDS = ("xla", "cudnn", "splash")
MMOE_IMPLS = ("sorted", "reference", "gmm")  # gmm: Pallas megablox, for TPU (model/mmoe.py)
REMAT_POLICIES = ("none", "full", "dots", "dots_no_batch", "qkv_ffn", "ffn")  # decoder.py
# chunked: autodiff of the chunked loss (logits recomputed in the backward pass);
# fused: gradients in the forward pass, no frozen weight gradient (model/fused_cross_entropy.py)
LOSS_IMPLS = ("chunked", "fused")


@dataclasses.dataclass(frozen=True)
class HeadConfig:
  """The token-unfolding head: a shallow causal transformer (no experts)."""

  num_layers: int = 2
  embed_dim: int = 64
  num_heads: int = 4
  num_kv_heads: int = 2
  head_dim: int = 16
  mlp_dim: int = 128


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Every size of a SynerGen-VL model.

  Token ids: `[0, vocab_size)` is the LLM's (padded) text vocabulary; the next
  `num_new_tokens` ids are the new special tokens (`<boi>`, `<eoi>`, `<UNCOND>`, ...)
  whose embeddings are separate, trainable vision-side parameters.
  """

  # The LLM.
  vocab_size: int = 256
  num_new_tokens: int = 8
  embed_dim: int = 64
  num_layers: int = 2
  num_heads: int = 4
  num_kv_heads: int = 2
  head_dim: int = 16
  mlp_dim: int = 128
  qkv_bias: bool = False
  rope_theta: float = 10_000.0
  norm_eps: float = 1e-6
  tie_embeddings: bool = False
  # Vision experts: each layer's FFN has a text and a vision expert (off = plain LLM).
  vision_experts: bool = True
  mmoe_impl: str = "sorted"
  # Images: VQ codebook, code-embedding width d_v, codes per tile, fold (m, n).
  codebook_size: int = 512
  code_embed_dim: int = 32
  tile_grid: tuple[int, int] = (8, 8)
  fold: tuple[int, int] = (2, 2)
  # Scale of the fold MLP's output projection at init (1 = fan-in init). A pretrained
  # LLM's text embeddings are small (RMS ~0.02-0.1); folded image embeddings at fan-in
  # init are ~10-20x larger, so image tokens start out of scale with the text.
  fold_init_scale: float = 1.0
  # The fold's first projection starts slot-shared: every code slot's block of fc1 is the
  # same matrix, so the fold starts as a (position-aware) sum of its codes' embeddings,
  # the same for an object whichever slots it falls in, and learns slot-specific detail
  # after (docs/LEARNING.md, "the shift problem").
  fold_slot_shared_init: bool = False
  head: HeadConfig = dataclasses.field(default_factory=HeadConfig)
  # Loss.
  image_loss_weight: float = 2.0
  # Weight of each patch's first code in the image loss (the others weigh 1). The head
  # predicts that code from the LLM state alone; the rest of the patch mostly follows
  # from it, so only this code carries what the prompt decides for the patch
  # (docs/LEARNING.md, "why the generator ignored its prompt"). 1 = the plain mean.
  image_first_code_weight: float = 1.0
  loss_chunk_size: int = 128
  loss_impl: str = "chunked"
  max_gen_patches: int = 16  # static per-row buffer of image targets for the head
  # Static per-row buffer of text targets the LM head runs on in understanding and
  # generation rows (0 = every position, as text-only rows always do); targets beyond
  # it are dropped and counted (`{task}/text_targets_dropped`).
  max_text_targets: int = 0
  # Execution.
  attention_backend: str = "xla"
  remat_policy: str = "none"
  dtype: str = "float32"  # compute dtype; parameters are always param_dtype
  param_dtype: str = "float32"

  def __post_init__(self):
    def need(cond, field, expected):
      if not cond:
        raise ValueError(
            f"model.{field} = {getattr(self, field.split('.')[0])!r}: expected {expected}"
        )

    need(self.image_first_code_weight > 0, "image_first_code_weight", "> 0")
    for f in ("vocab_size", "embed_dim", "num_layers", "num_heads", "num_kv_heads",
              "head_dim", "mlp_dim", "codebook_size", "code_embed_dim",
              "loss_chunk_size", "max_gen_patches"):
      need(getattr(self, f) > 0, f, "a positive integer")
    need(self.fold_init_scale > 0, "fold_init_scale", "> 0")
    need(self.max_text_targets >= 0, "max_text_targets", ">= 0 (0 = every position)")
    need(self.num_new_tokens >= 4, "num_new_tokens", ">= 4 (<boi>, <eoi>, <UNCOND>, <img>)")
    need(self.num_heads % self.num_kv_heads == 0, "num_kv_heads",
         f"a divisor of num_heads = {self.num_heads}")
    need(self.head.num_heads % self.head.num_kv_heads == 0, "head",
         "head.num_kv_heads dividing head.num_heads")
    need(self.head_dim % 2 == 0 and self.head.head_dim % 2 == 0, "head_dim",
         "even head dims (RoPE rotates pairs)")
    need(self.attention_backend in ATTENTION_BACKENDS, "attention_backend",
         f"one of {ATTENTION_BACKENDS}")
    need(self.mmoe_impl in MMOE_IMPLS, "mmoe_impl", f"one of {MMOE_IMPLS}")
    if self.mmoe_impl == "gmm" and self.vision_experts:
      mmoe.gmm_check_dims(self.embed_dim, self.mlp_dim)
    need(self.loss_impl in LOSS_IMPLS, "loss_impl", f"one of {LOSS_IMPLS}")
    need(self.remat_policy in REMAT_POLICIES, "remat_policy", f"one of {REMAT_POLICIES}")
    need(self.dtype in ("float32", "bfloat16"), "dtype", "'float32' or 'bfloat16'")
    need(self.param_dtype in ("float32", "bfloat16"), "param_dtype",
         "'float32' or 'bfloat16'")
    need(len(self.tile_grid) == 2 and len(self.fold) == 2, "fold",
         "tile_grid and fold as (rows, cols) pairs")
    try:
      image_grid.check_foldable(*self.tile_grid, *self.fold, what="model.tile_grid")
    except ValueError as e:
      raise ValueError(f"model.fold = {tuple(self.fold)}: {e}") from None

  # Derived sizes.
  @property
  def patch_size(self) -> int:
    """Codes per folded token, m * n."""
    return self.fold[0] * self.fold[1]

  @property
  def patches_per_tile(self) -> int:
    return image_grid.num_patches(*self.tile_grid, *self.fold)

  @property
  def total_vocab(self) -> int:
    return self.vocab_size + self.num_new_tokens

  @property
  def compute_dtype(self):
    return jnp.dtype(self.dtype)

  @property
  def params_dtype(self):
    return jnp.dtype(self.param_dtype)

  @classmethod
  def from_config_dict(cls, cfg: Mapping[str, Any]) -> "ModelConfig":
    """Builds from an ml_collections ConfigDict (or dict); unknown fields are errors."""
    cfg = dict(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(cfg) - known)
    if unknown:
      raise ValueError(f"unknown model config field(s) {unknown}; known: {sorted(known)}")
    head = dict(cfg.pop("head", {}) or {})
    head_known = {f.name for f in dataclasses.fields(HeadConfig)}
    head_unknown = sorted(set(head) - head_known)
    if head_unknown:
      raise ValueError(
          f"unknown model.head config field(s) {head_unknown}; known: {sorted(head_known)}"
      )
    for key in ("tile_grid", "fold"):
      if key in cfg:
        cfg[key] = tuple(int(v) for v in cfg[key])
    return cls(head=HeadConfig(**head), **cfg)
