"""Sizes of the Emu3 VQ-VAE, as an `ml_collections.ConfigDict`.

The field names follow `transformers.Emu3VQVAEConfig`, so a Hugging Face `config.json`
maps onto this config one to one (see `from_hf_dict`). The real Emu3 tokenizer and the
tiny CPU tokenizers of the tests and the demo are the same code with different sizes.

Fields:
  codebook_size: number of codes (Emu3: 32,768).
  embed_dim: width of a code vector (Emu3: 4).
  latent_channels: encoder output / decoder input width (Emu3: 4; must equal embed_dim,
    because the decoder's temporal layers process the post-quant latents and the
    quantised latents as one batch).
  in_channels / out_channels: image channels (3).
  temporal_downsample_factor: a still image is repeated this many times along time and
    the encoder's causal temporal convolutions reduce it back to one frame (Emu3: 4;
    must be a power of two; 1 means no temporal down/up-sampling layers).
  base_channels, channel_multiplier: stage widths (Emu3: 256 x (1, 2, 2, 4)); the spatial
    downsampling factor is 2 ** (len(channel_multiplier) - 1).
  num_res_blocks: residual blocks per stage (decoder stages have one more) and temporal
    residual blocks in the encoder and the decoder.
  attn_resolutions: stage indices with attention after every residual block (Emu3: (3,)).
  hidden_size: attention width; must equal the width of every stage that has attention
    and of the middle block (base_channels * channel_multiplier[-1]).
  num_attention_heads: heads of every attention block.
  norm_groups: GroupNorm groups (Emu3 / transformers hard-code 32).
  l2_norm_codes: not an Emu3 field (always False for Emu3 and imported weights; configs
    saved without it read as False): l2-normalise latents and code vectors, so codes are
    searched by cosine similarity (see `quantizer.py`). For training from scratch.
"""

import math
from typing import Any, Mapping

import ml_collections

# transformers' Emu3 modules hard-code GroupNorm(num_groups=32).
HF_NORM_GROUPS = 32

_HF_FIELDS = (
    "codebook_size", "embed_dim", "latent_channels", "double_latent", "in_channels",
    "out_channels", "temporal_downsample_factor", "base_channels", "channel_multiplier",
    "num_res_blocks", "attn_resolutions", "hidden_size", "num_attention_heads",
)


def emu3_config() -> ml_collections.ConfigDict:
  """The released Emu3 VQ tokenizer (Emu3-VisionTokenizer / Emu3-Chat-hf `vq_config`)."""
  return ml_collections.ConfigDict(dict(
      codebook_size=32768,
      embed_dim=4,
      latent_channels=4,
      double_latent=False,
      in_channels=3,
      out_channels=3,
      temporal_downsample_factor=4,
      base_channels=256,
      channel_multiplier=(1, 2, 2, 4),
      num_res_blocks=2,
      attn_resolutions=(3,),
      hidden_size=1024,
      num_attention_heads=1,
      norm_groups=HF_NORM_GROUPS,
      l2_norm_codes=False,
  ))


def tiny_config() -> ml_collections.ConfigDict:
  """A few-thousand-parameter instance for CPU tests (8x downsampling, all layer kinds)."""
  cfg = emu3_config()
  cfg.update(dict(
      codebook_size=64,
      base_channels=32,
      channel_multiplier=(1, 1, 1, 2),
      num_res_blocks=1,
      attn_resolutions=(3,),
      hidden_size=64,
      num_attention_heads=2,
  ))
  return cfg


def downsample_factor(cfg: Any) -> int:
  """Spatial downsampling of the encoder: 2 ** (number of stages - 1)."""
  return 2 ** (len(cfg.channel_multiplier) - 1)


def l2_norm_codes(cfg: Any) -> bool:
  """Whether codes are searched by cosine similarity (False when the field is absent)."""
  return bool(cfg.get("l2_norm_codes", False))


def num_temporal_layers(cfg: Any) -> int:
  return int(round(math.log2(cfg.temporal_downsample_factor)))


def validate(cfg: Any) -> None:
  """Raises ValueError naming the field when the sizes cannot build an Emu3 VQ-VAE."""
  def fail(field, msg):
    raise ValueError(f"VQ config field `{field}`: {msg}")

  if cfg.get("double_latent", False):
    fail("double_latent", "the Emu3 tokenizer uses double_latent=False; True is not supported")
  if cfg.latent_channels != cfg.embed_dim:
    fail("latent_channels", f"must equal embed_dim ({cfg.embed_dim}), got {cfg.latent_channels}")
  t = cfg.temporal_downsample_factor
  if t < 1 or (t & (t - 1)):
    fail("temporal_downsample_factor", f"must be a power of two >= 1, got {t}")
  if len(cfg.channel_multiplier) < 1:
    fail("channel_multiplier", "needs at least one stage")
  if cfg.num_res_blocks < 1:
    fail("num_res_blocks", f"must be >= 1 (stage widths change inside the residual blocks), "
         f"got {cfg.num_res_blocks}")
  if cfg.codebook_size < 1:
    fail("codebook_size", f"must be positive, got {cfg.codebook_size}")
  if not isinstance(cfg.get("l2_norm_codes", False), bool):
    fail("l2_norm_codes", f"must be a bool, got {cfg.get('l2_norm_codes')!r}")
  widths = [cfg.base_channels] + [cfg.base_channels * m for m in cfg.channel_multiplier]
  for w in widths:
    if w % cfg.norm_groups:
      fail("norm_groups", f"every stage width {widths} must be divisible by {cfg.norm_groups}")
  if cfg.hidden_size % cfg.num_attention_heads:
    fail("num_attention_heads",
         f"hidden_size {cfg.hidden_size} is not divisible by {cfg.num_attention_heads} heads")
  mid = cfg.base_channels * cfg.channel_multiplier[-1]
  if cfg.hidden_size != mid:
    fail("hidden_size", f"must equal the middle-block width base_channels * "
         f"channel_multiplier[-1] = {mid}, got {cfg.hidden_size}")
  for level in cfg.attn_resolutions:
    if not 0 <= level < len(cfg.channel_multiplier):
      fail("attn_resolutions", f"stage {level} does not exist")
    w = cfg.base_channels * cfg.channel_multiplier[level]
    if w != cfg.hidden_size:
      fail("attn_resolutions", f"stage {level} has width {w} but attention width "
           f"hidden_size is {cfg.hidden_size}")


def from_hf_dict(hf: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """Our config from a Hugging Face Emu3VQVAEConfig dict (`config.json`).

  Accepts either the VQ config itself or a full Emu3 config with a `vq_config` entry.
  """
  if "vq_config" in hf:
    hf = hf["vq_config"]
  cfg = emu3_config()
  for key in _HF_FIELDS:
    if key in hf:
      value = hf[key]
      cfg[key] = tuple(value) if isinstance(value, list) else value
  cfg.norm_groups = HF_NORM_GROUPS
  cfg.l2_norm_codes = False  # Emu3 searches codes by Euclidean distance
  validate(cfg)
  return cfg


def to_hf_dict(cfg: Any) -> dict:
  """The Hugging Face Emu3VQVAEConfig fields of our config (for tests and exports)."""
  out = {k: cfg[k] for k in _HF_FIELDS}
  out["channel_multiplier"] = list(out["channel_multiplier"])
  out["attn_resolutions"] = list(out["attn_resolutions"])
  return out
