"""Token folding: grid <-> patch index math, the 2-D position embedding, errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synergen_jax import image_grid
from synergen_jax.model.folding import TokenFold


@pytest.mark.parametrize("h,w,m,n", [(4, 4, 2, 2), (8, 16, 2, 8), (6, 8, 3, 4), (4, 4, 1, 1)])
def test_fold_round_trips_a_grid(h, w, m, n):
  grid = np.arange(2 * h * w).reshape(2, h, w)
  patches = image_grid.fold_grid(grid, m, n)
  assert patches.shape == (2, (h // m) * (w // n), m * n)
  np.testing.assert_array_equal(image_grid.unfold_patches(patches, h, w, m, n), grid)
  # Same on JAX arrays.
  np.testing.assert_array_equal(image_grid.fold_grid(jnp.asarray(grid), m, n), patches)


def test_fold_layout_is_raster_of_patches_row_major_inside():
  grid = np.arange(16).reshape(4, 4)
  patches = image_grid.fold_grid(grid, 2, 2)
  np.testing.assert_array_equal(patches[0], [0, 1, 4, 5])  # top-left patch
  np.testing.assert_array_equal(patches[1], [2, 3, 6, 7])  # next patch to the right
  np.testing.assert_array_equal(patches[2], [8, 9, 12, 13])  # second patch row


def test_grid_not_divisible_is_a_clear_error():
  with pytest.raises(ValueError, match=r"not divisible by the fold \(m, n\) = \(2, 8\)"):
    image_grid.fold_grid(np.zeros((4, 12)), 2, 8)
  with pytest.raises(ValueError, match="tile grid"):
    TokenFold(16, 4, (4, 6), (2, 4), 8).init(
        jax.random.key(0), jnp.zeros((1, 2, 8), jnp.int32), jnp.zeros((1, 2), jnp.int32))
  with pytest.raises(ValueError, match="expects 4"):
    TokenFold(16, 4, (4, 4), (2, 2), 8).init(
        jax.random.key(0), jnp.zeros((1, 2, 3), jnp.int32), jnp.zeros((1, 2), jnp.int32))


@pytest.mark.slow
def test_token_fold_matches_manual_embedding_and_mlp():
  m, n, th, tw, dv, d, k = 2, 2, 4, 4, 3, 8, 10
  mod = TokenFold(k, dv, (th, tw), (m, n), d)
  rng = np.random.default_rng(0)
  grid = rng.integers(0, k, (th, tw))
  codes = image_grid.fold_grid(grid, m, n)[None]  # [1, 4 patches, 4]
  pidx = jnp.arange(4)[None]
  v = nn.unbox(mod.init(jax.random.key(0), codes, pidx))
  p = jax.tree.map(lambda a: a + 0.05 * jnp.arange(a.size).reshape(a.shape) / a.size,
                   v["params"])
  out = mod.apply({"params": p}, codes, pidx)
  assert out.shape == (1, 4, d)
  # Manual: embed the whole grid, add the per-cell PE, then fold and run the MLP.
  emb = p["code_embed"][grid] + p["position_embed"]  # [th, tw, dv]
  folded = image_grid.fold_grid(emb.transpose(2, 0, 1), m, n).transpose(1, 2, 0)
  x = folded.reshape(4, m * n * dv)
  mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
  x = (x - mu) / np.sqrt(var + 1e-5) * p["norm"]["scale"] + p["norm"]["bias"]
  x = jax.nn.gelu(x @ p["fc1"]["kernel"] + p["fc1"]["bias"])
  want = x @ p["fc2"]["kernel"] + p["fc2"]["bias"]
  np.testing.assert_allclose(out[0], want, rtol=1e-4, atol=1e-5)
  # The position embedding is per grid cell: the same codes at another patch index differ.
  moved = mod.apply({"params": p}, codes, jnp.array([[1, 0, 3, 2]]))
  assert float(jnp.abs(moved[0, 0] - out[0, 0]).max()) > 1e-4


def test_slot_shared_init_makes_the_fold_blind_to_which_slot_holds_a_code():
  """fold_slot_shared_init: fc1's slot blocks start equal, so with the position embedding
  zeroed the folded token depends on the multiset of its codes, not on their slots (an
  object shifted inside its token starts with the same embedding)."""
  from synergen_jax.model.folding import share_slots
  fold = TokenFold(16, 4, (4, 4), (2, 2), 8, slot_shared=True)
  codes = jnp.asarray([[[1, 2, 3, 4]], [[4, 3, 2, 1]]], jnp.int32)  # [2, 1, 4]: permuted
  index = jnp.zeros((2, 1), jnp.int32)
  params = nn.unbox(fold.init(jax.random.key(0), codes, index)["params"])
  kernel = np.asarray(params["fc1"]["kernel"])  # [4 slots * 4, 8]
  for s in range(1, 4):
    np.testing.assert_array_equal(kernel[4 * s:4 * s + 4], kernel[:4])
  params["position_embed"] = jnp.zeros_like(params["position_embed"])
  out = fold.apply({"params": params}, codes, index)
  np.testing.assert_allclose(out[0], out[1], rtol=1e-5, atol=1e-6)
  # The default init is slot-specific: the same permutation changes the embedding.
  plain = nn.unbox(TokenFold(16, 4, (4, 4), (2, 2), 8).init(jax.random.key(0), codes,
                                                              index)["params"])
  plain["position_embed"] = jnp.zeros_like(plain["position_embed"])
  out = TokenFold(16, 4, (4, 4), (2, 2), 8).apply({"params": plain}, codes, index)
  assert np.abs(np.asarray(out[0] - out[1])).max() > 1e-3
  np.testing.assert_array_equal(share_slots(kernel, 4), kernel)
  with pytest.raises(ValueError, match="slot blocks"):
    share_slots(kernel[:15], 4)


def test_code_shift_moves_whole_codes_and_fills_with_the_corner():
  from data_pipelines.pipeline import augment
  grid = np.arange(1, 17).reshape(1, 4, 4)
  rng = np.random.default_rng(0)
  for _ in range(20):
    out = augment.shift_codes(grid, 1, rng)
    # Some (dy, dx) in [-1, 1]^2 explains the output exactly.
    ok = False
    for dy in (-1, 0, 1):
      for dx in (-1, 0, 1):
        want = np.full((6, 6), 1)
        want[1:5, 1:5] = grid[0]
        ok |= np.array_equal(out[0], want[1 - dy:5 - dy, 1 - dx:5 - dx])
    assert ok
  np.testing.assert_array_equal(augment.shift_codes(grid, 0, rng), grid)
  with pytest.raises(ValueError, match="shift k"):
    augment.shift_codes(grid, -1, rng)
