"""Which HF tensor holds which of our LLM parameters, and how the layouts differ.

Our parameter paths (`SynerGenVL`, layers stacked on a leading axis under
`decoder/layers/block`) against the HF names of each family:

| ours (per layer, under decoder/layers/block) | Llama / Qwen2 (model.layers.{l}.) | InternLM2 (model.layers.{l}.) |
|---|---|---|
| attention_norm/scale [E]           | input_layernorm.weight          | attention_norm.weight |
| attention/query/kernel [E, H, D]   | self_attn.q_proj.weight [H*D, E] | attention.wqkv.weight (packed) |
| attention/key/kernel [E, K, D]     | self_attn.k_proj.weight [K*D, E] | attention.wqkv.weight (packed) |
| attention/value/kernel [E, K, D]   | self_attn.v_proj.weight [K*D, E] | attention.wqkv.weight (packed) |
| attention/{query,key,value}/bias   | self_attn.{q,k,v}_proj.bias (Qwen2) | - |
| attention/out/kernel [H, D, E]     | self_attn.o_proj.weight [E, H*D] | attention.wo.weight |
| ffn_norm/scale [E]                 | post_attention_layernorm.weight | ffn_norm.weight |
| mmoe/text_ffn/gate [E, F]          | mlp.gate_proj.weight [F, E]     | feed_forward.w1.weight |
| mmoe/text_ffn/up [E, F]            | mlp.up_proj.weight [F, E]       | feed_forward.w3.weight |
| mmoe/text_ffn/down [F, E]          | mlp.down_proj.weight [E, F]     | feed_forward.w2.weight |

Top level: text_embed [V, E] <- model.embed_tokens / model.tok_embeddings [V_hf, E];
lm_head [E, V] <- lm_head.weight / output.weight [V_hf, E] (absent when tied);
decoder/final_norm/scale <- model.norm.weight. V is V_hf padded to a multiple of 128.
RoPE needs no permutation: HF Llama/Qwen2/InternLM2 use the rotate-half convention as
`layers.apply_rope` does.
"""

import dataclasses

import numpy as np

from synergen_jax.weights import internlm2_qkv

LAYER_PREFIX = ("decoder", "layers", "block")
TEXT_FFN = ("mmoe", "text_ffn")
VISION_FFN = ("mmoe", "vision_ffn")
# HF tensors that carry no parameters (buffers some checkpoints save).
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


@dataclasses.dataclass(frozen=True)
class Shapes:
  """Sizes the layout conversions need."""

  embed: int
  heads: int
  kv_heads: int
  head_dim: int


@dataclasses.dataclass(frozen=True)
class Rule:
  """One of our parameters <- one HF tensor (`name` may hold `{l}`), converted by `kind`.

  kinds: vector (as is), linear (Linear [out, in] -> kernel [in, out]), q / kv (Linear ->
  [E, heads, D]), o (Linear [E, H*D] -> [H, D, E]), q_bias / kv_bias ([heads*D] ->
  [heads, D]), embed (as is), and for InternLM2 wqkv_q / wqkv_k / wqkv_v (a slice of the
  packed projection, then like q / kv).
  """

  name: str
  kind: str


def _llama_layer(qkv_bias: bool) -> dict[tuple[str, ...], Rule]:
  p = "model.layers.{l}."
  rules = {
      ("attention_norm", "scale"): Rule(p + "input_layernorm.weight", "vector"),
      ("attention", "query", "kernel"): Rule(p + "self_attn.q_proj.weight", "q"),
      ("attention", "key", "kernel"): Rule(p + "self_attn.k_proj.weight", "kv"),
      ("attention", "value", "kernel"): Rule(p + "self_attn.v_proj.weight", "kv"),
      ("attention", "out", "kernel"): Rule(p + "self_attn.o_proj.weight", "o"),
      ("ffn_norm", "scale"): Rule(p + "post_attention_layernorm.weight", "vector"),
      TEXT_FFN + ("gate",): Rule(p + "mlp.gate_proj.weight", "linear"),
      TEXT_FFN + ("up",): Rule(p + "mlp.up_proj.weight", "linear"),
      TEXT_FFN + ("down",): Rule(p + "mlp.down_proj.weight", "linear"),
  }
  if qkv_bias:
    rules[("attention", "query", "bias")] = Rule(p + "self_attn.q_proj.bias", "q_bias")
    rules[("attention", "key", "bias")] = Rule(p + "self_attn.k_proj.bias", "kv_bias")
    rules[("attention", "value", "bias")] = Rule(p + "self_attn.v_proj.bias", "kv_bias")
  return rules


def _internlm2_layer() -> dict[tuple[str, ...], Rule]:
  p = "model.layers.{l}."
  return {
      ("attention_norm", "scale"): Rule(p + "attention_norm.weight", "vector"),
      ("attention", "query", "kernel"): Rule(p + "attention.wqkv.weight", "wqkv_q"),
      ("attention", "key", "kernel"): Rule(p + "attention.wqkv.weight", "wqkv_k"),
      ("attention", "value", "kernel"): Rule(p + "attention.wqkv.weight", "wqkv_v"),
      ("attention", "out", "kernel"): Rule(p + "attention.wo.weight", "o"),
      ("ffn_norm", "scale"): Rule(p + "ffn_norm.weight", "vector"),
      TEXT_FFN + ("gate",): Rule(p + "feed_forward.w1.weight", "linear"),
      TEXT_FFN + ("up",): Rule(p + "feed_forward.w3.weight", "linear"),
      TEXT_FFN + ("down",): Rule(p + "feed_forward.w2.weight", "linear"),
  }


def layer_rules(family: str, qkv_bias: bool) -> dict[tuple[str, ...], Rule]:
  """Per-layer parameter (path under decoder/layers/block) -> HF rule."""
  if family == "internlm2":
    if qkv_bias:
      raise ValueError("InternLM2 with q/k/v biases is not supported")
    return _internlm2_layer()
  return _llama_layer(qkv_bias)


def top_rules(family: str, tie_embeddings: bool) -> dict[tuple[str, ...], Rule]:
  """Top-level parameter path -> HF rule (embedding, final norm, untied LM head)."""
  internlm = family == "internlm2"
  rules = {
      ("text_embed",): Rule("model.tok_embeddings.weight" if internlm
                            else "model.embed_tokens.weight", "embed"),
      ("decoder", "final_norm", "scale"): Rule("model.norm.weight", "vector"),
  }
  if not tie_embeddings:
    rules[("lm_head",)] = Rule("output.weight" if internlm else "lm_head.weight", "linear")
  return rules


def to_ours(kind: str, w: np.ndarray, s: Shapes) -> np.ndarray:
  """One HF tensor (PyTorch layout) -> our layout (for one layer)."""
  if kind in ("vector", "embed"):
    return w
  if kind == "linear":
    return w.T
  if kind in ("wqkv_q", "wqkv_k", "wqkv_v"):
    q, k, v = internlm2_qkv.unpack_wqkv(w, s.heads, s.kv_heads, s.head_dim)
    w, kind = {"wqkv_q": (q, "q"), "wqkv_k": (k, "kv"), "wqkv_v": (v, "kv")}[kind]
  if kind == "q":
    return w.T.reshape(w.shape[1], s.heads, s.head_dim)
  if kind == "kv":
    return w.T.reshape(w.shape[1], s.kv_heads, s.head_dim)
  if kind == "o":
    return w.T.reshape(s.heads, s.head_dim, w.shape[0])
  if kind == "q_bias":
    return w.reshape(s.heads, s.head_dim)
  if kind == "kv_bias":
    return w.reshape(s.kv_heads, s.head_dim)
  raise ValueError(f"unknown conversion kind {kind!r}")


def to_hf(kind: str, x: np.ndarray) -> np.ndarray:
  """Inverse of `to_ours` for the unpacked kinds (our layout -> PyTorch layout)."""
  if kind in ("vector", "embed"):
    return x
  if kind == "linear":
    return x.T
  if kind in ("q", "kv", "wqkv_q", "wqkv_k", "wqkv_v"):
    return x.reshape(x.shape[0], -1).T  # [E, heads, D] -> [heads*D, E]
  if kind == "o":
    return x.reshape(-1, x.shape[-1]).T  # [H, D, E] -> [E, H*D]
  if kind in ("q_bias", "kv_bias"):
    return x.reshape(-1)
  raise ValueError(f"unknown conversion kind {kind!r}")
