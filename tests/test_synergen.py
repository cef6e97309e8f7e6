"""SynerGenVL: shapes/dtypes, causality, packing, routing, loss masks, chunked CE, decode."""

import dataclasses
import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synergen_jax.model import ModelConfig, SynerGenVL
from synergen_jax.model.losses import chunked_cross_entropy, combine_task_losses
from synergen_jax.model.synergen import target_weights
from tests import model_utils as mu


@pytest.fixture(scope="module")
def setup():
  config = mu.tiny_config()
  b = mu.batch(config, "generation")
  return config, b, mu.init(config, b)


_hidden = mu.hidden


def test_shapes_and_dtypes(setup):
  config, b, v = setup
  model = SynerGenVL(config)
  hidden = _hidden(config, v, b)
  chex.assert_shape(hidden, (2, 32, config.embed_dim))
  logits = model.apply(v, hidden, method="text_logits")
  chex.assert_shape(logits, (2, 32, config.vocab_size + config.num_new_tokens))
  out = mu.apply(config, v, b)
  for key in ("text_nll", "text_weight", "image_nll", "image_weight", "image_correct"):
    chex.assert_shape(out[key], ())
    assert out[key].dtype == jnp.float32
  # bf16 compute: f32 params, bf16 states, f32 loss.
  cfg16 = dataclasses.replace(config, dtype="bfloat16")
  assert _hidden(cfg16, v, b).dtype == jnp.bfloat16
  assert mu.apply(cfg16, v, b)["text_nll"].dtype == jnp.float32


def test_decoder_is_causal(setup):
  config, b, v = setup
  h1 = _hidden(config, v, b)
  b2 = dict(b, tokens=b["tokens"].copy(), image_codes=b["image_codes"].copy())
  b2["tokens"][:, 20:] = 7
  b2["image_codes"][:, 20:] = 3
  h2 = _hidden(config, v, b2)
  np.testing.assert_allclose(h1[:, :20], h2[:, :20], atol=1e-5)
  assert float(jnp.abs(h1[:, 20:] - h2[:, 20:]).max()) > 1e-4


@pytest.mark.slow
def test_packed_examples_equal_each_alone(setup):
  config, _, v = setup
  config = dataclasses.replace(config, max_gen_patches=8)  # both examples' patches fit
  b = mu.batch(config, "generation", batch_size=1, length=32, examples_per_row=2)
  seg = b["segment_ids"][0]
  n1 = int((seg == 1).sum())
  n2 = int((seg == 2).sum())
  packed_h = _hidden(config, v, b)
  first = {k: x[:, :n1] for k, x in b.items()}
  second = {k: x[:, n1:n1 + n2] for k, x in b.items()}
  second["segment_ids"] = np.ones_like(second["segment_ids"])
  np.testing.assert_allclose(packed_h[:, :n1], _hidden(config, v, first), atol=1e-5)
  np.testing.assert_allclose(packed_h[:, n1:n1 + n2], _hidden(config, v, second), atol=1e-5)
  # Loss sums add up across the two examples.
  apply = functools.partial(mu.apply, config)
  full, a, c = apply(v, b), apply(v, first), apply(v, second)
  for key in ("text_nll", "text_weight", "image_nll", "image_weight"):
    np.testing.assert_allclose(full[key], a[key] + c[key], rtol=1e-4, atol=1e-4)


def test_without_image_tokens_vision_experts_change_nothing(setup):
  config, _, v = setup
  b = mu.batch(config, "understanding")
  b = dict(b, is_image=np.zeros_like(b["is_image"]))
  v2 = jax.tree.map(lambda x: x, v)
  layers = v2["params"]["decoder"]["layers"]["block"]["mmoe"]
  layers["vision_ffn"] = mu.perturb(layers["vision_ffn"], scale=1.0)
  np.testing.assert_allclose(_hidden(config, v, b), _hidden(config, v2, b), atol=1e-6)
  # ...while with image tokens they do.
  b_img = mu.batch(config, "understanding")
  assert float(jnp.abs(_hidden(config, v, b_img) - _hidden(config, v2, b_img)).max()) > 1e-4


@pytest.mark.slow
def test_plain_llm_baseline_has_no_vision_experts(setup):
  config, b, _ = setup
  cfg = dataclasses.replace(config, vision_experts=False)
  v = mu.init(cfg, b)
  assert "vision_ffn" not in v["params"]["decoder"]["layers"]["block"]["mmoe"]
  chex.assert_shape(_hidden(cfg, v, b), (2, 32, cfg.embed_dim))


@pytest.mark.slow
def test_no_target_across_segment_boundary_and_zero_weights_contribute_nothing(setup):
  config, _, v = setup
  apply = functools.partial(mu.apply, config)
  b = mu.batch(config, "understanding", batch_size=1)
  seg = b["segment_ids"][0]
  start2 = int(np.argmax(seg == 2))
  base = apply(v, b)
  # A target on the first token of segment 2 (predicted from segment 1) is ignored,
  # as is one on padding and one at position 0.
  b2 = dict(b, text_target=b["text_target"].copy(), image_target=b["image_target"].copy())
  b2["text_target"][0, [0, start2]] = 1.0
  b2["image_target"][0, [0, start2]] = 1.0
  out = apply(v, b2)
  for key in ("text_nll", "text_weight", "image_nll", "image_weight"):
    np.testing.assert_allclose(out[key], base[key], rtol=1e-6)
  # Padding after the segments: targets placed there are ignored and its tokens
  # (which only later padding attends to) change nothing.
  padded = {k: np.concatenate([x, np.zeros((1, 8) + x.shape[2:], x.dtype)], axis=1)
            for k, x in b.items()}
  base_p = apply(v, padded)
  np.testing.assert_allclose(base_p["text_nll"], base["text_nll"], rtol=1e-5)
  noisy = dict(padded, tokens=padded["tokens"].copy(), text_target=padded["text_target"].copy(),
               image_target=padded["image_target"].copy())
  noisy["tokens"][0, 32:] = 5
  noisy["text_target"][0, 32:] = 1.0
  noisy["image_target"][0, 32:] = 1.0
  out_p = apply(v, noisy)
  for key in ("text_nll", "text_weight", "image_nll", "image_weight"):
    np.testing.assert_allclose(out_p[key], base_p[key], rtol=1e-6)
  # A weighted target does change the loss.
  b4 = dict(b, text_target=b["text_target"] * 2.0)
  np.testing.assert_allclose(apply(v, b4)["text_nll"], 2 * base["text_nll"], rtol=1e-5)


def test_chunked_cross_entropy_equals_full_logits():
  rng = np.random.default_rng(0)
  h = jnp.asarray(rng.normal(size=(2, 13, 8)), jnp.float32)
  w_out = jnp.asarray(rng.normal(size=(8, 50)), jnp.float32)
  t = jnp.asarray(rng.integers(0, 50, (2, 13)))
  w = jnp.asarray(rng.random((2, 13)) < 0.6, jnp.float32)
  logits = h @ w_out
  nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), t[..., None], -1)[..., 0]
  want = jnp.sum(w * nll)
  got = chunked_cross_entropy(h, t, w, lambda x: x @ w_out, chunk_size=4)
  np.testing.assert_allclose(got["nll"], want, rtol=1e-5)
  np.testing.assert_allclose(got["correct"], jnp.sum(w * (logits.argmax(-1) == t)))
  g_want = jax.grad(lambda h: jnp.sum(w * -jnp.take_along_axis(
      jax.nn.log_softmax(h @ w_out), t[..., None], -1)[..., 0]))(h)
  g_got = jax.grad(lambda h: chunked_cross_entropy(h, t, w, lambda x: x @ w_out, 4)["nll"])(h)
  np.testing.assert_allclose(g_got, g_want, rtol=1e-5, atol=1e-6)


def test_loss_is_text_plus_lambda_image(setup):
  config, _, v = setup
  apply = functools.partial(mu.apply, config)
  outs = {"understanding": apply(v, mu.batch(config, "understanding", seed=1)),
          "generation": apply(v, mu.batch(config, "generation", seed=2))}
  loss, m = combine_task_losses(outs, 2.0)
  text = sum(o["text_nll"] for o in outs.values()) / sum(o["text_weight"] for o in outs.values())
  image = outs["generation"]["image_nll"] / outs["generation"]["image_weight"]
  np.testing.assert_allclose(loss, text + 2.0 * image, rtol=1e-6)
  assert outs["understanding"]["image_weight"] == 0
  assert float(m["generation/image_codes"]) == float(outs["generation"]["image_weight"])


def test_image_target_buffer_overflow_is_counted(setup):
  config, b, v = setup
  small = dataclasses.replace(config, max_gen_patches=2)
  out = mu.apply(small, v, b)
  n_targets = int(((b["image_target"][:, 1:] > 0)
                   & (b["segment_ids"][:, 1:] == b["segment_ids"][:, :-1])).sum())
  assert float(out["image_patches_dropped"]) == n_targets - 2 * 2
  assert float(out["image_weight"]) == 2 * 2 * config.patch_size


def test_zero_patch_budget_skips_the_head_and_counts_what_it_skipped(setup):
  config, b, v = setup
  model = SynerGenVL(config)
  full = mu.apply(config, v, b)
  none = jax.jit(lambda v, b: model.apply(v, b, max_gen_patches=0))(v, b)
  np.testing.assert_allclose(none["text_nll"], full["text_nll"], rtol=1e-6)
  assert float(none["image_weight"]) == 0.0 and float(none["image_nll"]) == 0.0
  assert float(none["image_patches_dropped"]) == (
      float(full["image_weight"]) / config.patch_size + float(full["image_patches_dropped"]))
  # An understanding batch loses nothing with budget 0.
  u = mu.batch(config, "understanding")
  a, c = mu.apply(config, v, u), jax.jit(lambda v, b: model.apply(v, b, max_gen_patches=0))(v, u)
  for key in ("text_nll", "image_nll", "image_weight", "image_patches_dropped"):
    np.testing.assert_allclose(c[key], a[key], rtol=1e-6)


def _text_targets_per_row(b) -> np.ndarray:
  pair = (b["segment_ids"][:, 1:] == b["segment_ids"][:, :-1]) & (b["segment_ids"][:, 1:] > 0)
  return ((b["text_target"][:, 1:] > 0) & pair).sum(axis=1)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["understanding", "generation"])
def test_lm_head_on_a_text_target_budget_equals_every_position(setup, task):
  """With a per-row budget that holds every text target, the LM head on the gathered
  targets gives the loss sums and gradients of the LM head on every position."""
  config, _, v = setup
  b = mu.batch(config, task)
  budget = int(_text_targets_per_row(b).max())
  assert budget > 0
  full_cfg, budget_cfg = config, dataclasses.replace(config, max_text_targets=budget)

  def loss(cfg, params):
    out = SynerGenVL(cfg).apply({"params": params}, b)
    return out["text_nll"] + 2.0 * out["image_nll"], out

  (lf, of), gf = jax.jit(jax.value_and_grad(functools.partial(loss, full_cfg), has_aux=True))(
      v["params"])
  (lb, ob), gb = jax.jit(jax.value_and_grad(functools.partial(loss, budget_cfg),
                                            has_aux=True))(v["params"])
  np.testing.assert_allclose(lb, lf, rtol=1e-5)
  for key in ("text_nll", "text_weight", "text_correct", "image_nll", "image_weight"):
    np.testing.assert_allclose(ob[key], of[key], rtol=1e-5, err_msg=key)
  assert float(ob["text_targets_dropped"]) == 0.0 == float(of["text_targets_dropped"])
  jax.tree.map(lambda a, c: np.testing.assert_allclose(a, c, rtol=2e-4, atol=1e-6), gb, gf)


@pytest.mark.slow
def test_text_target_buffer_overflow_is_counted_and_weighed_like_target_weights(setup):
  config, _, v = setup
  b = mu.batch(config, "understanding")
  per_row = _text_targets_per_row(b)
  budget = int(per_row.min()) - 1
  assert budget > 0
  small = dataclasses.replace(config, max_text_targets=budget)
  out = mu.apply(small, v, b)
  assert float(out["text_targets_dropped"]) == float(np.maximum(per_row - budget, 0).sum())
  text_w, _ = target_weights(b, small.max_gen_patches, budget)
  np.testing.assert_allclose(out["text_weight"], text_w, rtol=1e-6)
  np.testing.assert_allclose(out["text_weight"], budget * b["tokens"].shape[0], rtol=1e-6)
  # A call-time budget of 0 is every position, whatever the config says.
  every = jax.jit(lambda v, b: SynerGenVL(small).apply(v, b, max_text_targets=0))(v, b)
  np.testing.assert_allclose(every["text_nll"], mu.apply(config, v, b)["text_nll"], rtol=1e-6)


@pytest.mark.slow
def test_full_model_kv_cache_decode_equals_forward(setup):
  config, _, v = setup
  model = SynerGenVL(config)
  b = mu.batch(config, "generation", batch_size=1, length=16, examples_per_row=1)
  full = _hidden(config, v, b)
  cache = jax.jit(lambda v, b: model.apply(v, b, True, method="hidden_states",
                                           mutable=["cache"])[1]["cache"])(v, b)

  @jax.jit
  def run(v, cache, chunk):
    h, mut = model.apply({**v, "cache": cache}, chunk, True, method="hidden_states",
                         mutable=["cache"])
    return h, mut["cache"]

  p = 6
  h, cache = run(v, cache, {k: x[:, :p] for k, x in b.items()})  # prefill
  np.testing.assert_allclose(h, full[:, :p], atol=1e-5)
  for t in range(p, 16):  # one token at a time
    h, cache = run(v, cache, {k: x[:, t:t + 1] for k, x in b.items()})
    np.testing.assert_allclose(h[:, 0], full[:, t], atol=1e-5)


def test_config_errors_name_the_field():
  with pytest.raises(ValueError, match="unknown model config field"):
    ModelConfig.from_config_dict({"vocab_sise": 10})
  with pytest.raises(ValueError, match=r"model.fold"):
    ModelConfig.from_config_dict({"tile_grid": (8, 8), "fold": (3, 2)})
  with pytest.raises(ValueError, match="num_kv_heads"):
    ModelConfig(num_heads=4, num_kv_heads=3)
  with pytest.raises(ValueError, match="attention_backend"):
    ModelConfig(attention_backend="flash")


@pytest.mark.slow
def test_remat_and_attention_backend_do_not_change_gradients(setup):
  config, b, v = setup

  def grads(cfg, length=32):
    bb = {k: x[:, :length] for k, x in b.items()}
    model = SynerGenVL(cfg)
    f = jax.jit(jax.value_and_grad(lambda p: model.apply({"params": p}, bb)["text_nll"]))
    return f(v["params"])

  loss0, g0 = grads(config)
  for cfg in (dataclasses.replace(config, remat_policy="full"),
              dataclasses.replace(config, remat_policy="dots", mmoe_impl="reference"),
              dataclasses.replace(config, remat_policy="qkv_ffn"),
              dataclasses.replace(config, remat_policy="ffn", mmoe_impl="reference")):
    loss, g = grads(cfg)
    np.testing.assert_allclose(loss, loss0, rtol=1e-6)
    jax.tree.map(lambda a, c: np.testing.assert_allclose(a, c, rtol=1e-4, atol=2e-5), g, g0)


def test_first_code_weight_weighs_each_patchs_first_code(setup):
  """image_first_code_weight w: image_nll = w * A + B (A: the patches' first codes, B: the
  rest), image_weight = patches * (m*n - 1 + w), as target_weights counts them."""
  config, b, v = setup
  outs = {w: mu.apply(dataclasses.replace(config, image_first_code_weight=w), v, b)
          for w in (1.0, 3.0, 5.0)}
  first = (float(outs[3.0]["image_nll"]) - float(outs[1.0]["image_nll"])) / 2  # A
  assert 0 < first < float(outs[1.0]["image_nll"])
  np.testing.assert_allclose(float(outs[5.0]["image_nll"]),
                             float(outs[1.0]["image_nll"]) + 4 * first, rtol=1e-5)
  patches = float(outs[1.0]["image_weight"]) / config.patch_size
  for w, out in outs.items():
    assert float(out["image_weight"]) == patches * (config.patch_size - 1 + w)
    _, image = target_weights(b, config.max_gen_patches, first_code_weight=w)
    assert float(image) == float(out["image_weight"])
  with pytest.raises(ValueError, match="image_first_code_weight"):
    dataclasses.replace(config, image_first_code_weight=0.0)
