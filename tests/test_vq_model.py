"""The VQ tokenizer module and API: shapes, quantisation, checks, sharded encode.

Compile time dominates on CPU, so every compiled test shares one small tokenizer with all
layer kinds (8x downsampling, attention, temporal down/up-sampling and residual blocks,
spatial norms) and one image shape, [2, 16, 32]: each jitted function compiles once.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synergen_jax.model.vq import VQTokenizer, VQVAE, config as vq_config
from synergen_jax.model.vq.quantizer import nearest_code


K = 16  # codebook size of the shared test tokenizer


def small_config():
  """tiny_config's layer kinds at minimal width: 4 stages (8x), attention in the last,
  one temporal down/up-sampling layer + temporal residual block, 16 codes."""
  cfg = vq_config.tiny_config()
  cfg.update(dict(codebook_size=K, base_channels=8, hidden_size=16, norm_groups=4,
                  num_attention_heads=2, temporal_downsample_factor=2))
  return cfg


@pytest.fixture(scope="module")
def tok_and_vars():
  tok = VQTokenizer(small_config())
  return tok, tok.init(jax.random.key(0))


def _images(b=2, h=16, w=32, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (b, h, w, 3), dtype=np.uint8)


def test_shapes_and_dtypes(tok_and_vars):
  tok, v = tok_and_vars
  assert tok.factor == 8
  codes = tok.encode(v, _images())
  assert codes.shape == (2, 2, 4) and codes.dtype == jnp.int32
  assert int(codes.min()) >= 0 and int(codes.max()) < K
  images = tok.decode(v, codes)
  assert images.shape == (2, 16, 32, 3) and images.dtype == jnp.uint8
  # Variables: BatchNorm running statistics of the temporal blocks live in batch_stats.
  stats = v["batch_stats"]["encoder"]["time_res_stack_0"]["norm1"]
  assert stats["mean"].shape == (4,) and stats["var"].shape == (4,)
  assert "time_conv_0" in v["params"]["encoder"] and "time_conv_0" in v["params"]["decoder"]
  assert "attn_0" in v["params"]["encoder"]["down_block"]["down_3"]


def test_real_emu3_config_shapes():
  tok = VQTokenizer(vq_config.emu3_config())
  abstract = tok.abstract_variables()
  n = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(abstract["params"]))
  assert abstract["params"]["quantize"]["embedding"]["embedding"].shape == (32768, 4)
  assert 2.0e8 < n < 3.5e8, n  # Emu3's VQ-VAE has ~270M parameters
  out = jax.eval_shape(lambda v, x: tok.model.apply(v, x, method=VQVAE.encode), abstract,
                       jax.ShapeDtypeStruct((1, 512, 512, 3), jnp.float32))
  assert out.shape == (1, 64, 64)


@pytest.mark.slow
def test_codebook_exact_latents_round_trip(tok_and_vars):
  """Latents equal to codebook rows quantise to exactly those codes, and decoding the
  codes equals decoding the latents."""
  tok, v = tok_and_vars
  codebook = jax.random.normal(jax.random.key(1), (K, 4))
  v = dict(v, params=dict(v["params"], quantize={"embedding": {"embedding": codebook}}))
  codes = jax.random.randint(jax.random.key(2), (2, 2, 4), 0, K)
  latents = codebook[codes]  # [2, 2, 4, 4]
  quantize = jax.jit(lambda v, z: tok.model.apply(v, z, method=lambda m, z: m.quantize(z)))
  _, got, _, _ = quantize(v, latents)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(codes))
  z_q, c, codebook_loss, commitment_loss = quantize(v, latents + 1e-4)
  np.testing.assert_array_equal(np.asarray(c), np.asarray(codes))
  np.testing.assert_allclose(np.asarray(z_q), np.asarray(latents), atol=1e-6)
  assert float(codebook_loss) == pytest.approx(1e-8, rel=1e-2)
  assert float(commitment_loss) == pytest.approx(1e-8, rel=1e-2)
  from_codes = tok.decode_float(v, codes)
  from_latents = jax.jit(lambda v, z: tok.model.apply(v, z, method=VQVAE.decode_latents))(
      v, latents)
  np.testing.assert_allclose(np.asarray(from_codes), np.asarray(from_latents), atol=1e-6)
  assert from_codes.shape == (2, 16, 32, 3)


def test_chunked_nearest_code_matches_full_search():
  z = jax.random.normal(jax.random.key(3), (7, 9, 4))
  codebook = jax.random.normal(jax.random.key(4), (64, 4))
  codebook = codebook.at[40].set(codebook[3])  # a tie: the lower index must win
  z = z.at[0, 0].set(codebook[3])
  full = jax.jit(lambda z, c: nearest_code(z, c, chunk=1024))(z, codebook)
  chunked = jax.jit(lambda z, c: nearest_code(z, c, chunk=16))(z, codebook)
  np.testing.assert_array_equal(np.asarray(full), np.asarray(chunked))
  assert int(full[0, 0]) == 3
  d = ((z[..., None, :] - codebook) ** 2).sum(-1)
  np.testing.assert_array_equal(np.asarray(full), np.asarray(jnp.argmin(d, -1)))


@pytest.mark.slow
def test_training_forward_is_straight_through(tok_and_vars):
  tok, v = tok_and_vars
  images = _images()
  x = jnp.asarray(images, jnp.float32) / 127.5 - 1

  @jax.jit
  def forward_and_grad(v, x):  # one compiled forward: the outputs are the grad's aux
    def loss(p):
      out = tok.model.apply(dict(v, params=p), x)
      return jnp.sum(out["recon"]), out
    (_, out), g = jax.value_and_grad(loss, has_aux=True)(v["params"])
    return out, g

  out, g = forward_and_grad(v, x)
  np.testing.assert_array_equal(np.asarray(out["codes"]), np.asarray(tok.encode(v, images)))
  np.testing.assert_allclose(np.asarray(out["recon"]),
                             np.asarray(tok.decode_float(v, out["codes"])), atol=1e-5)
  # The reconstruction is differentiable w.r.t. the encoder (straight-through).
  assert float(jnp.abs(g["encoder"]["conv_in"]["kernel"]).sum()) > 0


@pytest.mark.parametrize("images, message", [
    (np.zeros((1, 16, 16, 3), np.float32), "uint8"),
    (np.zeros((16, 16, 3), np.uint8), "rank 4"),
    (np.zeros((1, 16, 16, 4), np.uint8), "3 channels"),
    (np.zeros((1, 20, 16, 3), np.uint8), "multiple of the tokenizer's downsampling factor 8"),
    (np.zeros((1, 0, 16, 3), np.uint8), "positive multiple"),
])
def test_bad_images_rejected(tok_and_vars, images, message):
  tok, v = tok_and_vars
  with pytest.raises(ValueError, match=message):
    tok.encode(v, images)


@pytest.mark.parametrize("codes, message", [
    (np.zeros((1, 2, 2), np.float32), "integer"),
    (np.zeros((2, 2), np.int32), "rank 3"),
    (np.full((1, 2, 2), K, np.int32), rf"\[0, {K}\)"),
    (np.full((1, 2, 2), -1, np.int32), rf"\[0, {K}\)"),
])
def test_bad_codes_rejected(tok_and_vars, codes, message):
  tok, v = tok_and_vars
  with pytest.raises(ValueError, match=message):
    tok.decode(v, codes)


@pytest.mark.parametrize("field, value, message", [
    ("latent_channels", 8, "latent_channels"),
    ("hidden_size", 32, "hidden_size"),
    ("attn_resolutions", (0,), "attn_resolutions"),
    ("temporal_downsample_factor", 3, "power of two"),
    ("norm_groups", 5, "norm_groups"),
])
def test_bad_config_rejected(field, value, message):
  cfg = vq_config.tiny_config()
  cfg[field] = value
  with pytest.raises(ValueError, match=message):
    VQTokenizer(cfg)


def test_sharded_batch_encoder_matches_encode(tok_and_vars):
  tok, v = tok_and_vars
  assert jax.device_count() == 8
  images = _images(seed=1)  # 2 images: not a multiple of 8, padded, then trimmed
  encode_batch = tok.batch_encoder(v)
  codes = encode_batch(images)
  assert isinstance(codes, np.ndarray) and codes.shape == (2, 2, 4)
  np.testing.assert_array_equal(codes, np.asarray(tok.encode(v, images)))
  # A second encoder for the same mesh reuses the compiled function (evaluations during
  # training call batch_encoder repeatedly).
  np.testing.assert_array_equal(tok.batch_encoder(v)(images), codes)
  assert len(tok._batch_encode_fns) == 1
  with pytest.raises(ValueError, match="uint8"):
    encode_batch(images.astype(np.float32))


def test_l2_norm_codes_quantizer():
  """With l2_norm_codes the search is by cosine similarity and looked-up vectors are unit
  vectors; without it (Emu3) the search is Euclidean on the raw vectors."""
  from synergen_jax.model.vq.quantizer import VectorQuantizer
  z = jax.random.normal(jax.random.key(5), (3, 5, 4))
  codebook = jax.random.normal(jax.random.key(6), (K, 4)) * jnp.arange(1, K + 1)[:, None]
  variables = {"params": {"embedding": {"embedding": codebook}}}

  @jax.jit
  def run(z):
    out = {}
    for l2 in (False, True):
      q = VectorQuantizer(K, 4, l2_normalize=l2)
      z_q, codes, _, _ = q.apply(variables, z)
      out[l2] = (z_q, codes, q.apply(variables, codes, method=q.lookup))
    return out

  out = run(z)
  unit = lambda a: a / jnp.linalg.norm(a, axis=-1, keepdims=True)
  cosine = jnp.argmax(unit(z) @ unit(codebook).T, axis=-1)
  np.testing.assert_array_equal(np.asarray(out[True][1]), np.asarray(cosine))
  np.testing.assert_allclose(np.linalg.norm(np.asarray(out[True][2]), axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(out[True][0]), np.asarray(out[True][2]), atol=1e-6)
  np.testing.assert_array_equal(np.asarray(out[False][1]), np.asarray(nearest_code(z, codebook)))
  assert not np.array_equal(np.asarray(out[True][1]), np.asarray(out[False][1]))


def test_l2_norm_codes_is_off_for_emu3():
  import ml_collections
  assert vq_config.emu3_config().l2_norm_codes is False
  hf = vq_config.to_hf_dict(vq_config.tiny_config())
  assert "l2_norm_codes" not in hf and vq_config.from_hf_dict(hf).l2_norm_codes is False
  # A saved config without the field (written before it existed) reads as off.
  old = {k: v for k, v in vq_config.tiny_config().to_dict().items() if k != "l2_norm_codes"}
  assert vq_config.l2_norm_codes(ml_collections.FrozenConfigDict(old)) is False
  with pytest.raises(ValueError, match="l2_norm_codes"):
    vq_config.validate(ml_collections.ConfigDict(dict(old, l2_norm_codes="yes")))
