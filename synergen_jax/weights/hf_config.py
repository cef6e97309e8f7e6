"""HF `config.json` of a Qwen2 / Llama / InternLM2 LLM -> the LLM fields of our model config.

`hf_llm_spec(config_json)` reads the shape of the LLM (and rejects features our decoder
does not implement, naming the field); `reconcile(model_cfg, spec, derive)` either checks
an experiment's `config.model` against it (a mismatch is an error naming both fields,
e.g. `model.num_kv_heads=2 but config.json num_key_value_heads=4`) or derives the LLM
fields from it. Our text vocabulary is the HF vocabulary padded to a multiple of 128
(`tokenizer.pad_vocab`), so the embedding and LM head shard over the mesh.
"""

import dataclasses
import math
from typing import Any, Mapping

from synergen_jax.tokenizer import pad_vocab

FAMILIES = ("qwen2", "llama", "internlm2")
_ARCHITECTURES = {"Qwen2ForCausalLM": "qwen2", "LlamaForCausalLM": "llama",
                  "InternLM2ForCausalLM": "internlm2"}


@dataclasses.dataclass(frozen=True)
class HFLLMSpec:
  """What we read from config.json.

  fields: our ModelConfig field -> (value, the config.json field it came from).
  """

  family: str
  fields: dict[str, tuple[Any, str]]
  hf_vocab_size: int
  max_position_embeddings: int

  def value(self, field: str) -> Any:
    return self.fields[field][0]


def detect_family(cfg: Mapping[str, Any]) -> str:
  """'qwen2', 'llama' or 'internlm2' from `model_type` (or `architectures`)."""
  model_type = str(cfg.get("model_type", "")).lower()
  if model_type in FAMILIES:
    return model_type
  for arch in cfg.get("architectures") or ():
    if arch in _ARCHITECTURES:
      return _ARCHITECTURES[arch]
  raise ValueError(
      f"config.json model_type={cfg.get('model_type')!r} / architectures="
      f"{cfg.get('architectures')!r}: expected one of the families {FAMILIES}")


def _need(cfg: Mapping[str, Any], key: str) -> Any:
  if key not in cfg or cfg[key] is None:
    raise ValueError(f"config.json has no {key!r} field, which the importer needs")
  return cfg[key]


def _rope(cfg: Mapping[str, Any], family: str) -> tuple[float, str]:
  """(theta, source field); only plain RoPE is implemented by our decoder."""
  params = cfg.get("rope_parameters")
  scaling = cfg.get("rope_scaling")
  if isinstance(params, Mapping):
    rope_type = params.get("rope_type", params.get("type", "default"))
    theta, source = params.get("rope_theta", cfg.get("rope_theta")), "rope_parameters.rope_theta"
  else:
    rope_type = "default"
    theta, source = cfg.get("rope_theta", 10_000.0), "rope_theta"
  if isinstance(scaling, Mapping):
    rope_type = scaling.get("rope_type", scaling.get("type", rope_type))
  # InternLM2 ships `dynamic` NTK scaling, which only changes RoPE beyond
  # max_position_embeddings; within that length it is plain RoPE.
  allowed = ("default", "dynamic") if family == "internlm2" else ("default",)
  if rope_type not in allowed:
    raise ValueError(f"config.json rope type {rope_type!r} (rope_scaling / rope_parameters) "
                     f"is not supported: expected {allowed}")
  if theta is None:
    raise ValueError("config.json gives no rope_theta")
  return float(theta), source


def hf_llm_spec(cfg: Mapping[str, Any]) -> HFLLMSpec:
  """Reads and validates the LLM shape of an HF config.json dict."""
  family = detect_family(cfg)
  act = cfg.get("hidden_act", "silu")
  if act != "silu":
    raise ValueError(f"config.json hidden_act={act!r}: our FFN is SwiGLU (expected 'silu')")
  hidden, heads = int(_need(cfg, "hidden_size")), int(_need(cfg, "num_attention_heads"))
  kv_key = "num_key_value_heads" if cfg.get("num_key_value_heads") else "num_attention_heads"
  head_dim = cfg.get("head_dim")
  if family == "qwen2":
    if cfg.get("use_sliding_window"):
      raise ValueError("config.json use_sliding_window=true: sliding-window attention is "
                       "not supported")
    qkv_bias = (True, "model_type (Qwen2 always has q/k/v biases)")
  elif family == "llama":
    if cfg.get("attention_bias") or cfg.get("mlp_bias"):
      raise ValueError("config.json attention_bias/mlp_bias=true: biases on the output "
                       "projection / MLP are not supported (only q/k/v biases, as in Qwen2)")
    qkv_bias = (False, "attention_bias")
  else:
    if cfg.get("bias", False):
      raise ValueError("config.json bias=true: InternLM2 wqkv/wo biases are not supported")
    qkv_bias = (False, "bias")
  theta, theta_src = _rope(cfg, family)
  hf_vocab = int(_need(cfg, "vocab_size"))
  fields = {
      "vocab_size": (pad_vocab(hf_vocab), "vocab_size"),
      "embed_dim": (hidden, "hidden_size"),
      "num_layers": (int(_need(cfg, "num_hidden_layers")), "num_hidden_layers"),
      "num_heads": (heads, "num_attention_heads"),
      "num_kv_heads": (int(cfg[kv_key]), kv_key),
      "head_dim": (int(head_dim) if head_dim else hidden // heads,
                   "head_dim" if head_dim else "hidden_size / num_attention_heads"),
      "mlp_dim": (int(_need(cfg, "intermediate_size")), "intermediate_size"),
      "qkv_bias": qkv_bias,
      "rope_theta": (theta, theta_src),
      "norm_eps": (float(_need(cfg, "rms_norm_eps")), "rms_norm_eps"),
      "tie_embeddings": (bool(cfg.get("tie_word_embeddings", family == "qwen2")),
                         "tie_word_embeddings"),
  }
  return HFLLMSpec(family, fields, hf_vocab, int(cfg.get("max_position_embeddings", 32768)))


def _same(a: Any, b: Any) -> bool:
  if isinstance(a, float) or isinstance(b, float):
    return math.isclose(float(a), float(b), rel_tol=1e-9)
  return a == b


def reconcile(model_cfg: Mapping[str, Any], spec: HFLLMSpec, derive: bool = False) -> dict:
  """The experiment's model config (a dict) checked against / derived from config.json.

  derive=False: every LLM field must equal config.json's, else ValueError naming both.
  derive=True: the LLM fields are taken from config.json (other fields are kept).
  """
  out = dict(model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else model_cfg)
  for field, (value, source) in spec.fields.items():
    if derive:
      out[field] = value
      continue
    have = out.get(field)
    if have is None or not _same(have, value):
      shown = repr(value)
      if field == "vocab_size":
        shown = f"{spec.hf_vocab_size} (padded to a multiple of 128: {value})"
      raise ValueError(f"model.{field}={have!r} but config.json {source}={shown}; fix the "
                       "experiment config or import with --derive_model")
  return out
