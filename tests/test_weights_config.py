"""config.json -> model fields: derivation, mismatch errors, unsupported features; file reading."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from synergen_jax.configs import models
from synergen_jax.weights import hf_config, hf_files, internlm2_qkv

QWEN2_0_5B = dict(  # the published Qwen2-0.5B config.json (shape fields)
    architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_act="silu",
    hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
    num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1_000_000.0, vocab_size=151_936,
    tie_word_embeddings=True, use_sliding_window=False, max_position_embeddings=32768)
INTERNLM2_1_8B = dict(
    architectures=["InternLM2ForCausalLM"], model_type="internlm2", hidden_act="silu",
    hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=16,
    num_key_value_heads=8, rms_norm_eps=1e-5, rope_theta=1_000_000.0, vocab_size=92_544,
    bias=False, tie_word_embeddings=False, rope_scaling={"type": "dynamic", "factor": 2.0})


@pytest.mark.parametrize("hf,ours", [(QWEN2_0_5B, models.qwen2_0_5b()),
                                     (INTERNLM2_1_8B, models.synergen_vl_2_4b())])
def test_paper_experiments_match_their_base_llms(hf, ours):
  spec = hf_config.hf_llm_spec(hf)
  assert hf_config.reconcile(ours, spec) == ours.to_dict()


def test_mismatch_names_both_fields():
  cfg = dict(QWEN2_0_5B, num_key_value_heads=4)
  with pytest.raises(ValueError, match=r"model.num_kv_heads=2 but config.json "
                                       r"num_key_value_heads=4"):
    hf_config.reconcile(models.qwen2_0_5b(), hf_config.hf_llm_spec(cfg))
  with pytest.raises(ValueError, match=r"model.rope_theta=10000.0 but config.json "
                                       r"rope_parameters.rope_theta=1000000.0"):
    new_style = dict(QWEN2_0_5B, rope_parameters={"rope_type": "default",
                                                  "rope_theta": 1e6})
    del new_style["rope_theta"]
    bad = models.qwen2_0_5b()
    bad.rope_theta = 10_000.0
    hf_config.reconcile(bad, hf_config.hf_llm_spec(new_style))


def test_derive_takes_llm_fields_and_pads_vocab():
  cfg = dict(QWEN2_0_5B, vocab_size=151_665)
  out = hf_config.reconcile(models.tiny(), hf_config.hf_llm_spec(cfg), derive=True)
  assert out["vocab_size"] == 151_680 and out["num_kv_heads"] == 2
  assert out["qkv_bias"] and out["tie_embeddings"] and out["codebook_size"] == 64


@pytest.mark.parametrize("change,match", [
    (dict(model_type="gpt2", architectures=["GPT2LMHeadModel"]), "expected one of the families"),
    (dict(hidden_act="gelu"), "hidden_act='gelu'"),
    (dict(rope_scaling={"rope_type": "yarn", "factor": 4.0}), "rope type 'yarn'"),
    (dict(use_sliding_window=True), "use_sliding_window"),
    (dict(hidden_size=None), "no 'hidden_size' field"),
])
def test_unsupported_configs_are_clear_errors(change, match):
  with pytest.raises(ValueError, match=match):
    hf_config.hf_llm_spec(dict(QWEN2_0_5B, **change))


def test_internlm2_pack_unpack_inverse():
  rng = np.random.default_rng(0)
  q, k, v = (rng.normal(size=(n * 3, 5)) for n in (4, 2, 2))
  packed = internlm2_qkv.pack_wqkv(q, k, v, 4, 2, 3)
  # Per KV group: [q_{2g}, q_{2g+1}, k_g, v_g] head blocks of 3 rows.
  np.testing.assert_array_equal(packed[:6], q[:6])
  np.testing.assert_array_equal(packed[6:9], k[:3])
  np.testing.assert_array_equal(packed[9:12], v[:3])
  for a, b in zip(internlm2_qkv.unpack_wqkv(packed, 4, 2, 3), (q, k, v)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match="expected \\(24, embed\\)"):
    internlm2_qkv.unpack_wqkv(packed[:-1], 4, 2, 3)


def test_reader_bfloat16_sharded_and_missing(tmp_path):
  w = torch.randn(3, 4).to(torch.bfloat16)
  save_file({"a": w}, str(tmp_path / "x-1.safetensors"))
  save_file({"b": torch.ones(2)}, str(tmp_path / "x-2.safetensors"))
  (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
      {"weight_map": {"a": "x-1.safetensors", "b": "x-2.safetensors"}}))
  with hf_files.SafetensorsReader(str(tmp_path)) as r:
    assert r.names() == ["a", "b"] and r.shape("a") == (3, 4)
    got = r.get("a")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, w.float().numpy())
    with pytest.raises(KeyError, match="'c' not found"):
      r.get("c")
  (tmp_path / "model.safetensors.index.json").unlink()
  (tmp_path / "pytorch_model.bin").write_bytes(b"")
  with pytest.raises(FileNotFoundError, match="pickle-based"):
    hf_files.SafetensorsReader(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="config.json"):
    hf_files.read_config(str(tmp_path))


def test_import_names_missing_and_unmapped_tensors(tmp_path):
  """A checkpoint with a missing or an unknown tensor fails before anything is read."""
  from synergen_jax import sharding
  from synergen_jax.model import ModelConfig
  from synergen_jax.weights import import_llm
  cfg = dict(INTERNLM2_1_8B, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
             num_attention_heads=2, num_key_value_heads=1, vocab_size=128)
  (tmp_path / "config.json").write_text(json.dumps(cfg))
  save_file({"model.tok_embeddings.weight": torch.zeros(128, 8),
             "model.layers.0.attention.wqkv.bias": torch.zeros(16)},
            str(tmp_path / "model.safetensors"))
  model = hf_config.reconcile(models.tiny(), hf_config.hf_llm_spec(cfg), derive=True)
  model["head"]["embed_dim"] = 8
  config = ModelConfig.from_config_dict(model)
  mesh = sharding.make_mesh((1, 1, 1), devices=__import__("jax").devices()[:1])
  with pytest.raises(ValueError, match=r"lacks tensors the model needs: \['model.layers.0"):
    import_llm.import_llm_params(str(tmp_path), config, mesh)
