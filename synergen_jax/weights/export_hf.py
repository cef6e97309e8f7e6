"""Our model's LLM part -> a Hugging Face directory (safetensors + config.json).

The text model (embedding, attention, norms, *text* FFN experts, final norm, LM head)
is written in the layout of a family (`hf_layout`, inverted): "qwen2" or "llama" load
in transformers as `Qwen2ForCausalLM` / `LlamaForCausalLM`; "internlm2" writes the
packed-`wqkv` layout (loadable with InternLM2's own remote code). Vision parts and the
new special tokens are dropped; the vocabulary is cut back to `hf_vocab_size` rows.

  python -m synergen_jax.weights.export_hf --params=W --config=experiments/X.py --out=D \\
      [--like=ORIGINAL_HF_DIR [--derive_model]] [--family=qwen2|llama|internlm2] \
      [--max_shard_mb=2048]

`--like` takes the family, the unpadded vocabulary size and the other config.json fields
(bos/eos ids, max_position_embeddings, ...) from the original model and copies its
tokenizer files. Tensors are fetched one per layer and written in shards of at most
`max_shard_mb`, so host memory stays at about one shard. Single process only.
"""

import json
import os
import shutil
from typing import Any

import jax
import numpy as np
from absl import flags
from ml_collections import config_flags
from safetensors.numpy import save_file

from synergen_jax import cli, model_init, param_checkpoint, sharding
from synergen_jax.model import ModelConfig
from synergen_jax.weights import hf_config, hf_files, hf_layout, internlm2_qkv, param_paths

TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json", "generation_config.json", "vocab.json",
                   "merges.txt")
_ARCH = {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM",
         "internlm2": "InternLM2ForCausalLM"}


def hf_config_dict(config: ModelConfig, family: str, hf_vocab_size: int,
                   base: dict[str, Any] | None = None) -> dict[str, Any]:
  """config.json for the exported text model (`base`: fields kept from the original)."""
  out = dict(base or {})
  for stale in ("rope_scaling", "quantization_config", "_name_or_path", "torch_dtype", "dtype"):
    out.pop(stale, None)
  if family != "internlm2":
    out.pop("auto_map", None)  # InternLM2's remote-code pointers
  out.update(
      architectures=[_ARCH[family]], model_type=family, hidden_act="silu",
      hidden_size=config.embed_dim, intermediate_size=config.mlp_dim,
      num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
      num_key_value_heads=config.num_kv_heads, head_dim=config.head_dim,
      rms_norm_eps=config.norm_eps, rope_theta=config.rope_theta,
      rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
      vocab_size=hf_vocab_size, tie_word_embeddings=config.tie_embeddings,
      torch_dtype="float32")
  out.setdefault("max_position_embeddings", 32768)
  if family == "llama":
    out.update(attention_bias=config.qkv_bias, mlp_bias=False)
  elif family == "qwen2":
    out.update(use_sliding_window=False)
  else:
    out.update(bias=False)
  return out


class _ShardWriter:
  """Collects tensors and writes safetensors shards of at most `max_bytes`."""

  def __init__(self, out_dir: str, max_bytes: int):
    self.out_dir, self.max_bytes = out_dir, max_bytes
    self.pending: dict[str, np.ndarray] = {}
    self.pending_bytes = 0
    self.files: list[tuple[str, list[str]]] = []
    self.total = 0

  def add(self, name: str, value: np.ndarray) -> None:
    value = np.ascontiguousarray(value, dtype=np.float32)
    if self.pending and self.pending_bytes + value.nbytes > self.max_bytes:
      self.flush()
    self.pending[name] = value
    self.pending_bytes += value.nbytes
    self.total += value.nbytes

  def flush(self) -> None:
    if not self.pending:
      return
    tmp = f"shard-{len(self.files):05d}.tmp"
    save_file(self.pending, os.path.join(self.out_dir, tmp), metadata={"format": "pt"})
    self.files.append((tmp, list(self.pending)))
    self.pending, self.pending_bytes = {}, 0

  def finish(self) -> list[str]:
    """Renames to HF's names (+ index when sharded); returns the file names."""
    self.flush()
    n = len(self.files)
    if n == 1:
      names = [hf_files.SINGLE_FILE]
    else:
      names = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    weight_map = {}
    for (tmp, keys), name in zip(self.files, names):
      os.replace(os.path.join(self.out_dir, tmp), os.path.join(self.out_dir, name))
      weight_map.update({k: name for k in keys})
    if n > 1:
      with open(os.path.join(self.out_dir, hf_files.INDEX_FILE), "w") as f:
        json.dump({"metadata": {"total_size": self.total}, "weight_map": weight_map}, f,
                  indent=2, sort_keys=True)
    return names


def _host(x: Any) -> np.ndarray:
  return np.asarray(jax.device_get(x), dtype=np.float32)


def export_hf(params: dict, config: ModelConfig, out_dir: str, family: str,
              hf_vocab_size: int | None = None, base_config: dict | None = None,
              max_shard_bytes: int = 2 << 30) -> list[str]:
  """Writes the LLM part of `params` (our unboxed params collection) to `out_dir`."""
  if family not in _ARCH:
    raise ValueError(f"family={family!r}: expected one of {tuple(_ARCH)}")
  if family == "internlm2" and config.qkv_bias:
    raise ValueError("family=internlm2 cannot hold q/k/v biases (model.qkv_bias=True)")
  vocab = hf_vocab_size or config.vocab_size
  if not 0 < vocab <= config.vocab_size:
    raise ValueError(f"hf_vocab_size={vocab}: expected 1..model.vocab_size={config.vocab_size}")
  os.makedirs(out_dir, exist_ok=False)
  flat = param_paths.flatten(params)
  writer = _ShardWriter(out_dir, max_shard_bytes)
  s = hf_layout.Shapes(config.embed_dim, config.num_heads, config.num_kv_heads, config.head_dim)

  for path, rule in hf_layout.top_rules(family, config.tie_embeddings).items():
    x = _host(flat[path])
    x = x[:vocab] if path == ("text_embed",) else x[:, :vocab] if path == ("lm_head",) else x
    writer.add(rule.name, hf_layout.to_hf(rule.kind, x))
  rules = hf_layout.layer_rules(family if family != "internlm2" else "llama", config.qkv_bias)
  for layer in range(config.num_layers):
    tensors = {}
    for rel, rule in rules.items():
      x = _host(flat[hf_layout.LAYER_PREFIX + rel][layer])
      tensors[rule.name.format(l=layer)] = hf_layout.to_hf(rule.kind, x)
    if family == "llama" and config.qkv_bias:  # Llama's attention_bias also biases o_proj
      tensors[f"model.layers.{layer}.self_attn.o_proj.bias"] = np.zeros(config.embed_dim,
                                                                        np.float32)
    if family == "internlm2":
      tensors = _to_internlm2_names(tensors, layer, s)
    for name, value in tensors.items():
      writer.add(name, value)
  files = writer.finish()
  cfg = hf_config_dict(config, family, vocab, base_config)
  with open(os.path.join(out_dir, hf_files.CONFIG_FILE), "w") as f:
    json.dump(cfg, f, indent=2, sort_keys=True)
  return files


def _to_internlm2_names(t: dict[str, np.ndarray], layer: int, s: hf_layout.Shapes) -> dict:
  """One layer's Llama-named tensors -> InternLM2 names, q/k/v packed into wqkv."""
  p, a = f"model.layers.{layer}.", f"model.layers.{layer}.self_attn."
  return {
      p + "attention.wqkv.weight": internlm2_qkv.pack_wqkv(
          t[a + "q_proj.weight"], t[a + "k_proj.weight"], t[a + "v_proj.weight"],
          s.heads, s.kv_heads, s.head_dim),
      p + "attention.wo.weight": t[a + "o_proj.weight"],
      p + "attention_norm.weight": t[p + "input_layernorm.weight"],
      p + "ffn_norm.weight": t[p + "post_attention_layernorm.weight"],
      p + "feed_forward.w1.weight": t[p + "mlp.gate_proj.weight"],
      p + "feed_forward.w3.weight": t[p + "mlp.up_proj.weight"],
      p + "feed_forward.w2.weight": t[p + "mlp.down_proj.weight"],
  }


def export_checkpoint(params_dir: str, experiment, out_dir: str, like: str | None = None,
                      family: str | None = None, max_shard_bytes: int = 2 << 30,
                      derive: bool = False) -> list[str]:
  """Restores a params checkpoint of `experiment` onto the present devices and exports it.

  derive: take the LLM fields of the model config from `like`'s config.json (as the
  import's --derive_model did); otherwise they must agree.
  """
  model_cfg = experiment.model
  base, vocab = None, None
  if like:
    base = hf_files.read_config(like)
    spec = hf_config.hf_llm_spec(base)
    model_cfg = hf_config.reconcile(model_cfg, spec, derive)  # same model, or a clear error
    family, vocab = family or spec.family, spec.hf_vocab_size
  config = ModelConfig.from_config_dict(model_cfg)
  family = family or ("qwen2" if config.qkv_bias else "llama")
  mesh = sharding.make_mesh(tuple(experiment.get("mesh", {}).get("shape", (1, -1, 1))))
  target = model_init.with_shardings(*model_init.abstract_params(config, mesh))
  params = param_checkpoint.restore_params(params_dir, target)
  files = export_hf(params, config, out_dir, family, vocab, base, max_shard_bytes)
  if like:
    for name in TOKENIZER_FILES:
      if os.path.isfile(os.path.join(like, name)):
        shutil.copy(os.path.join(like, name), os.path.join(out_dir, name))
  return files


@cli.command
def main(argv):
  del argv
  f = flags.FLAGS
  files = export_checkpoint(f.params, f.config, f.out, f.like, f.family,
                            f.max_shard_mb << 20, f.derive_model)
  print(f"wrote {len(files)} safetensors file(s) + config.json to {f.out}")


def run():
  """Defines the flags (only when run as a program) and runs."""
  config_flags.DEFINE_config_file("config", None, "Experiment config file.")
  flags.DEFINE_string("params", None, "params checkpoint (import_hf / a stage)")
  flags.DEFINE_string("out", None, "HF directory to create")
  flags.DEFINE_string("like", None, "the original HF directory (config, tokenizer)")
  flags.DEFINE_enum("family", None, list(_ARCH), "layout to write")
  flags.DEFINE_integer("max_shard_mb", 2048, "largest safetensors file")
  flags.DEFINE_bool("derive_model", False, "take the LLM fields of config.model from --like")
  cli.run(main, required=("config", "params", "out"))


if __name__ == "__main__":
  run()
