"""Imported HF LLMs give transformers' logits (float32, padded batch), for every family."""

import json
import os

import jax
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from synergen_jax import sharding
from synergen_jax.weights import import_llm
from tests import test_weights_helpers as wh

TOL = 1e-4


def _import(hf_dir, config, mesh_shape=(2, 2, 2)):
  mesh = sharding.make_mesh(mesh_shape)
  params, summary = import_llm.import_llm_params(hf_dir, config, mesh)
  return params, summary


@pytest.mark.slow
@pytest.mark.parametrize("family,tie,mesh_shape,shard", [
    ("qwen2", True, (1, -1, 1), "20KB"),
    ("llama", False, (2, 2, 2), None),
])
def test_logits_match_transformers(tmp_path, family, tie, mesh_shape, shard):
  model = wh.tiny_hf_model(family, tie=tie)
  hf_dir = wh.save_hf(model, str(tmp_path / "hf"), max_shard_size=shard)
  if shard:
    assert "model.safetensors.index.json" in wh.file_list(hf_dir)
  config = wh.our_config(hf_dir)
  assert config.vocab_size == 384 and config.tie_embeddings == tie
  assert config.qkv_bias == (family == "qwen2")
  params, summary = _import(hf_dir, config, mesh_shape)
  assert summary.family == family and summary.hf_vocab_size == wh.VOCAB
  # Placed with the model's target shardings (e.g. vocab / heads over "tensor").
  q = params["decoder"]["layers"]["block"]["attention"]["query"]["kernel"]
  assert len(q.sharding.device_set) == 8
  batch = wh.padded_batch(config)
  ours = wh.our_logits(config, params, batch)
  theirs = wh.hf_logits(model, batch)
  err = wh.max_valid_diff(ours, theirs, batch)
  print(f"{family}: max |logit diff| = {err:.2e}")
  assert err < TOL
  # Padded vocabulary rows are zero: their logits are exactly 0.
  np.testing.assert_array_equal(ours[..., wh.VOCAB:config.vocab_size], 0.0)


def _llama_to_internlm2(model, out_dir):
  """Writes a Llama model's weights under InternLM2 names, q/k/v packed into wqkv.

  Packing follows InternLM2's forward: wqkv output features are
  (kv_heads, groups + 2, head_dim) with [q_1..q_groups, k, v] per KV group.
  """
  c = model.config
  heads, kv, d = c.num_attention_heads, c.num_key_value_heads, c.hidden_size // c.num_attention_heads
  groups = heads // kv
  sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
  out = {"model.tok_embeddings.weight": sd["model.embed_tokens.weight"],
         "model.norm.weight": sd["model.norm.weight"], "output.weight": sd["lm_head.weight"]}
  for i in range(c.num_hidden_layers):
    p, a = f"model.layers.{i}.", f"model.layers.{i}.self_attn."
    q = sd[a + "q_proj.weight"].reshape(kv, groups, d, -1)
    k = sd[a + "k_proj.weight"].reshape(kv, 1, d, -1)
    v = sd[a + "v_proj.weight"].reshape(kv, 1, d, -1)
    out[p + "attention.wqkv.weight"] = torch.cat([q, k, v], dim=1).reshape(-1, c.hidden_size)
    out[p + "attention.wo.weight"] = sd[a + "o_proj.weight"]
    out[p + "attention_norm.weight"] = sd[p + "input_layernorm.weight"]
    out[p + "ffn_norm.weight"] = sd[p + "post_attention_layernorm.weight"]
    out[p + "feed_forward.w1.weight"] = sd[p + "mlp.gate_proj.weight"]
    out[p + "feed_forward.w3.weight"] = sd[p + "mlp.up_proj.weight"]
    out[p + "feed_forward.w2.weight"] = sd[p + "mlp.down_proj.weight"]
  os.makedirs(out_dir)
  save_file({k: v.contiguous() for k, v in out.items()},
            os.path.join(out_dir, "model.safetensors"))
  cfg = dict(architectures=["InternLM2ForCausalLM"], model_type="internlm2",
             vocab_size=c.vocab_size, hidden_size=c.hidden_size,
             intermediate_size=c.intermediate_size, num_hidden_layers=c.num_hidden_layers,
             num_attention_heads=heads, num_key_value_heads=kv, hidden_act="silu",
             rms_norm_eps=c.rms_norm_eps, rope_theta=10_000.0, bias=False,
             rope_scaling={"type": "dynamic", "factor": 2.0},
             tie_word_embeddings=False, max_position_embeddings=128)
  with open(os.path.join(out_dir, "config.json"), "w") as f:
    json.dump(cfg, f)
  return out_dir


@pytest.mark.slow
def test_internlm2_layout_matches_llama_import(tmp_path):
  model = wh.tiny_hf_model("llama")
  llama_dir = wh.save_hf(model, str(tmp_path / "llama"))
  intern_dir = _llama_to_internlm2(model, str(tmp_path / "internlm2"))
  config = wh.our_config(llama_dir)
  assert wh.our_config(intern_dir) == config
  p_llama, _ = _import(llama_dir, config)
  p_intern, summary = _import(intern_dir, config)
  assert summary.family == "internlm2"
  jax.tree.map(np.testing.assert_array_equal, p_llama, p_intern)
  batch = wh.padded_batch(config)
  np.testing.assert_array_equal(wh.our_logits(config, p_intern, batch),
                                wh.our_logits(config, p_llama, batch))
