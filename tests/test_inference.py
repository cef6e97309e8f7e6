"""Inference: sampling filters, cached text decoding and folded image generation equal
the argmax of the full forward pass, CFG scale 1 == conditional only, determinism."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synergen_jax import image_grid
from synergen_jax.inference.decoding import generate_text
from synergen_jax.inference.image_generation import generate_image_codes, guided_logits
from synergen_jax.model.sampling import SamplingConfig, filter_logits, sample
from synergen_jax.model import SynerGenVL
from tests import model_utils as mu


def test_top_k_never_emits_outside_the_top_k():
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(4, 50)), jnp.float32)
  top = np.argsort(-np.asarray(logits), axis=-1)[:, :5]
  cfg = SamplingConfig(temperature=2.0, top_k=5)
  draws = jax.vmap(lambda k: sample(k, logits, cfg))(jax.random.split(jax.random.key(0), 400))
  for row in range(4):
    assert set(np.asarray(draws[:, row]).tolist()) <= set(top[row].tolist())
    assert len(set(np.asarray(draws[:, row]).tolist())) > 1  # it does sample


def test_top_p_keeps_the_nucleus_and_greedy_is_argmax():
  logits = jnp.log(jnp.array([[0.6, 0.25, 0.1, 0.05]]))
  kept = filter_logits(logits, top_p=0.8)
  assert np.isfinite(np.asarray(kept[0, :2])).all()
  assert (np.asarray(kept[0, 2:]) < -1e30).all()
  assert int(sample(jax.random.key(0), logits, SamplingConfig())[0]) == 0
  with pytest.raises(ValueError, match="top_p"):
    SamplingConfig(top_p=0.0)


def test_same_seed_same_samples():
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(8, 30)), jnp.float32)
  cfg = SamplingConfig(temperature=1.0, top_p=0.9)
  a = sample(jax.random.key(3), logits, cfg)
  np.testing.assert_array_equal(a, sample(jax.random.key(3), logits, cfg))
  assert not np.array_equal(a, sample(jax.random.key(4), logits, cfg))


@pytest.fixture(scope="module")
def tiny():
  config = mu.tiny_config()
  b = mu.batch(config)
  return config, SynerGenVL(config), {"params": mu.init(config, b)["params"]}


def _prompts(config, lengths, seed=0, end_with=None):
  """Right-padded text prompts: segment 1 on real tokens."""
  rows, width = len(lengths), max(lengths)
  rng = np.random.default_rng(seed)
  b = {k: np.zeros_like(v[:rows, :width]) for k, v in mu.batch(config, batch_size=rows,
                                                                length=width).items()}
  for r, n in enumerate(lengths):
    b["tokens"][r, :n] = rng.integers(3, config.vocab_size, n)
    if end_with is not None:
      b["tokens"][r, n - 1] = end_with
    b["segment_ids"][r, :n] = 1
    b["positions"][r, :n] = np.arange(n)
  return {k: v for k, v in b.items() if k not in ("text_target", "image_target")}


@pytest.mark.slow
def test_cached_text_decoding_equals_full_forward_argmax(tiny):
  config, model, v = tiny
  prompt = _prompts(config, [7, 4])
  out = generate_text(model, v, prompt, jax.random.key(0), max_new_tokens=6,
                      eos_id=config.vocab_size + 7)  # a token the model never picks first
  tokens, lengths = np.asarray(out["tokens"]), np.asarray(out["lengths"])
  assert tokens.shape == (2, 6)
  for r, n in enumerate([7, 4]):
    k = int(lengths[r])
    seq = np.concatenate([prompt["tokens"][r, :n], tokens[r, :k]])[None]
    full = mu.batch(config, batch_size=1, length=seq.shape[1])
    full = dict(full, tokens=seq.astype(np.int32), is_image=np.zeros_like(seq, bool),
                segment_ids=np.ones_like(seq), positions=np.arange(seq.shape[1])[None])
    h = mu.hidden(config, v, full)
    want = np.asarray(jnp.argmax(model.apply(v, h, method="text_logits"), -1))[0]
    np.testing.assert_array_equal(tokens[r, :k], want[n - 1:n - 1 + k])


@pytest.mark.slow
def test_text_decoding_stops_at_eos(tiny):
  config, model, v = tiny
  prompt = _prompts(config, [5, 5], seed=1)
  first = generate_text(model, v, prompt, jax.random.key(0), max_new_tokens=4, eos_id=-5)
  eos = int(first["tokens"][0, 1])  # make the second generated token of row 0 the EOS
  out = generate_text(model, v, prompt, jax.random.key(0), max_new_tokens=4, eos_id=eos,
                      pad_id=0)
  row = np.asarray(out["tokens"][0])
  stop = int(np.argmax(row == eos))
  assert int(out["lengths"][0]) == stop + 1
  assert (row[stop + 1:] == 0).all()
  # Several stop ids (`</s>` or the chat turn's end): a row stops at the first of either.
  other = int(first["tokens"][1, 0])
  both = generate_text(model, v, prompt, jax.random.key(0), max_new_tokens=4,
                       eos_id=(eos, other), pad_id=0)
  assert int(both["lengths"][1]) == 1 and int(both["lengths"][0]) <= stop + 1


def _teacher_forced_codes(config, model, v, prompt, lengths, grid):
  """Argmax of the head, teacher-forced on `grid`, for each patch (full forward pass)."""
  m, n = config.fold
  patches = np.asarray(image_grid.fold_grid(np.asarray(grid), m, n))  # [rows, P, mn]
  rows, num_p = patches.shape[:2]
  width = max(lengths) + num_p
  b = {k: np.zeros((rows, width) + v_.shape[2:], v_.dtype) for k, v_ in prompt.items()}
  for r, n_r in enumerate(lengths):
    for k in prompt:
      b[k][r, :n_r] = prompt[k][r, :n_r]
    sl = slice(n_r, n_r + num_p)
    b["tokens"][r, sl] = config.vocab_size + 3
    b["image_codes"][r, sl] = patches[r]
    b["is_image"][r, sl] = True
    b["patch_index"][r, sl] = np.arange(num_p)
    b["segment_ids"][r, :n_r + num_p] = 1
    b["positions"][r, :n_r + num_p] = np.arange(n_r + num_p)
  h = np.asarray(mu.hidden(config, v, b))
  h_prev = np.stack([h[r, n_r - 1:n_r - 1 + num_p] for r, n_r in enumerate(lengths)])
  head_h = model.apply(v, jnp.asarray(h_prev.reshape(rows * num_p, -1)),
                       jnp.asarray(patches.reshape(rows * num_p, -1)),
                       method=lambda mdl, hh, cc: mdl.unfold_head(hh, cc))
  logits = model.apply(v, head_h, method="image_logits")
  return np.asarray(jnp.argmax(logits, -1)).reshape(rows, num_p, -1)


@pytest.mark.slow
def test_cached_image_generation_equals_full_forward_argmax(tiny):
  config, model, v = tiny
  boi = config.vocab_size
  prompt = _prompts(config, [6, 3], end_with=boi)
  grid = generate_image_codes(model, v, prompt, jax.random.key(0),
                              image_id=config.vocab_size + 3, cfg_scale=None)
  assert grid.shape == (2, *config.tile_grid)
  want = _teacher_forced_codes(config, model, v, prompt, [6, 3], grid)
  got = np.asarray(image_grid.fold_grid(np.asarray(grid), *config.fold))
  np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_cfg_scale_one_equals_conditional_only(tiny):
  config, model, v = tiny
  boi = config.vocab_size
  cond = _prompts(config, [6, 5], seed=2, end_with=boi)
  uncond = _prompts(config, [4, 4], seed=3, end_with=boi)
  width = 6
  both = {k: np.concatenate([cond[k], np.pad(uncond[k], [(0, 0), (0, width - 4)]
                                             + [(0, 0)] * (uncond[k].ndim - 2))])
          for k in cond}
  kw = dict(image_id=config.vocab_size + 3)
  only = generate_image_codes(model, v, cond, jax.random.key(0), cfg_scale=None, **kw)
  guided1 = generate_image_codes(model, v, both, jax.random.key(0), cfg_scale=1.0, **kw)
  np.testing.assert_array_equal(guided1, only)
  guided = generate_image_codes(model, v, both, jax.random.key(0), cfg_scale=7.5, **kw)
  assert guided.shape == only.shape
  lc, lu = jnp.ones((1, 3)), jnp.zeros((1, 3))
  np.testing.assert_allclose(guided_logits(jnp.concatenate([lc, lu]), 3.0), 3 * lc)


@pytest.mark.slow
def test_no_fold_baseline_generates_one_code_per_llm_step():
  config = mu.tiny_config(fold=(1, 1), max_gen_patches=16)
  model = SynerGenVL(config)
  v = {"params": mu.init(config, mu.batch(config))["params"]}
  prompt = _prompts(config, [4], end_with=config.vocab_size)
  grid = generate_image_codes(model, v, prompt, jax.random.key(0),
                              image_id=config.vocab_size + 3, cfg_scale=None)
  assert grid.shape == (1, *config.tile_grid)
  want = _teacher_forced_codes(config, model, v, prompt, [4], grid)
  np.testing.assert_array_equal(np.asarray(grid).reshape(1, -1, 1), want)
