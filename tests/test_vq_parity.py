"""Parity with transformers' Emu3VQVAE: a tiny random HF model, saved as safetensors,
imported with our importer, must give identical codes and the same pixels."""

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
emu3 = pytest.importorskip("transformers.models.emu3")

from safetensors.torch import save_file  # noqa: E402

from data_pipelines.scenes.render import render_scene  # noqa: E402
from synergen_jax.model.vq import VQTokenizer, config as vq_config  # noqa: E402
from synergen_jax.weights import emu3_vq  # noqa: E402

pytestmark = pytest.mark.slow  # transformers' model and ours, compiled (~10 s)


def _hf_model(cfg, seed=0):
  torch.manual_seed(seed)
  model = emu3.Emu3VQVAE(emu3.Emu3VQVAEConfig(**vq_config.to_hf_dict(cfg),
                                              attn_implementation="eager")).eval()
  with torch.no_grad():  # non-trivial BatchNorm running statistics and affine parameters
    for m in model.modules():
      if isinstance(m, torch.nn.BatchNorm3d):
        m.running_mean.uniform_(-0.5, 0.5)
        m.running_var.uniform_(0.5, 2.0)
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.3, 0.3)
  return model


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
  cfg = vq_config.tiny_config()
  hf = _hf_model(cfg)
  d = str(tmp_path_factory.mktemp("emu3_vq"))
  hf.save_pretrained(d)  # config.json + model.safetensors
  loaded_cfg, variables = emu3_vq.load_emu3_vq(d)
  return hf, VQTokenizer(loaded_cfg), variables, d


def _hf_encode(hf, images):
  x = torch.tensor(images.astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)
  sizes = torch.tensor([list(images.shape[1:3])] * len(images))
  with torch.no_grad():
    return torch.stack(hf.encode(x, image_sizes=sizes).image_tokens).numpy()


def _test_images():
  """Two random-noise images and two rendered scenes (one batch: one compilation)."""
  rng = np.random.default_rng(0)
  noise = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  scenes = np.stack([render_scene(i, 32, "validation")[0] for i in range(2)])
  return np.concatenate([noise, scenes])


def test_config_round_trip(imported):
  _, tok, _, d = imported
  with open(os.path.join(d, "config.json")) as f:
    hf_cfg = json.load(f)
  assert tok.config.codebook_size == hf_cfg["codebook_size"] == 64
  assert tuple(tok.config.channel_multiplier) == tuple(hf_cfg["channel_multiplier"])


def test_codes_identical_and_pixels_close(imported):
  hf, tok, variables, _ = imported
  images = _test_images()  # [random, random, rendered, rendered]
  ref_codes = _hf_encode(hf, images)
  codes = np.asarray(tok.encode(variables, images))
  np.testing.assert_array_equal(codes, ref_codes)
  for i in range(len(images)):  # the comparison is not trivially constant
    assert len(np.unique(codes[i])) > 1

  with torch.no_grad():
    ref = hf.decode(torch.tensor(ref_codes)).permute(0, 2, 3, 1).numpy()  # [B, H, W, 3]
  ours = np.asarray(tok.decode_float(variables, ref_codes))
  assert ours.shape == ref.shape
  rel = np.linalg.norm(ours - ref) / np.linalg.norm(ref)
  assert rel < 1e-4, rel
  assert np.max(np.abs(ours - ref)) < 1e-4 * np.max(np.abs(ref)) * 10


def test_full_emu3_checkpoint_prefix_and_mismatch_errors(imported, tmp_path):
  hf, tok, variables, d = imported
  # A full Emu3 checkpoint nests the tokenizer under `model.vqmodel.`.
  state = {f"model.vqmodel.{k}": v.contiguous() for k, v in hf.state_dict().items()}
  state["model.text_model.embed_tokens.weight"] = torch.zeros(3, 2)
  save_file(state, str(tmp_path / "model.safetensors"))
  cfg = vq_config.from_hf_dict({"vq_config": vq_config.to_hf_dict(tok.config)})
  loaded = emu3_vq.convert_state_dict(emu3_vq.read_safetensors(str(tmp_path)), cfg)
  images = _test_images()
  np.testing.assert_array_equal(np.asarray(tok.encode(loaded, images)),
                                np.asarray(tok.encode(variables, images)))
  # A checkpoint of another size is rejected with the offending keys named.
  other = vq_config.tiny_config()
  other.num_res_blocks = 2
  with pytest.raises(ValueError, match="missing .*time_res_stack_1"):
    emu3_vq.convert_state_dict(emu3_vq.read_safetensors(d), other)
  other = vq_config.tiny_config()
  other.codebook_size = 128
  with pytest.raises(ValueError, match="quantize.embedding.embedding has shape"):
    emu3_vq.convert_state_dict(emu3_vq.read_safetensors(d), other)
